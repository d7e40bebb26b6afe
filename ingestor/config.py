"""Configuration models (pydantic v2, frozen, unknown keys rejected); defaults live here only."""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError
from .netwrix.config import BatchConfig, NetwrixConfig
from .netwrix.records import check_item_name
from .tls_server import normalize_peer

_STRICT = ConfigDict(frozen=True, extra="forbid")


# --- The service (`nwsyslog run`) ------------------------------------------------------------

_SCHEMES = ("udp", "tcp", "tls")
_LISTEN = re.compile(r"(?P<scheme>[a-z]+)://(?P<host>\[[0-9A-Fa-f:.]+\]|[^:/\s\[\]]+):(?P<port>\d{1,5})/?")


def parse_host_port(value: str) -> tuple[str, int]:
    """`HOST:PORT` or `[IPv6]:PORT` into (host, port), host defaulting to 127.0.0.1; ValueError."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT (e.g. 127.0.0.1:9699 or [::1]:9699), got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def parse_listener_url(url: str) -> tuple[str, str, int]:
    """`udp://HOST:PORT` (tcp, tls; `[IPv6]` in brackets) into (scheme, host, port); ValueError."""
    m = _LISTEN.fullmatch(url.strip())
    if m is None or m["scheme"] not in _SCHEMES or int(m["port"]) > 65535:
        raise ValueError(f"expected udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT, got {url!r}")
    return m["scheme"], m["host"].strip("[]"), int(m["port"])


def check_network(value: str) -> str:
    """A CIDR (or a single address) as `accept` and `sources[].cidr` take it; ValueError when
    it is none, or when it has host bits set (10.20.30.0/8), saying what it would mean and what
    was likely meant: a host-bit typo would otherwise silently widen or shift the range."""
    try:
        ipaddress.ip_network(value.strip())
    except ValueError as exc:
        if "has host bits set" not in str(exc):
            raise
        loose = ipaddress.ip_network(value.strip(), strict=False)
        address = ipaddress.ip_interface(value.strip()).ip
        # The shortest prefix at which the address written is a network boundary, rounded up to
        # whole octets (IPv4) or groups (IPv6), the boundaries people write CIDRs at.
        bits, step = loose.max_prefixlen, 8 if loose.version == 4 else 16
        trailing = (int(address) & -int(address)).bit_length() - 1
        prefix = min(bits, -(-(bits - trailing) // step) * step)
        meant = f"{address}/{prefix}" + (f" (only {address})" if prefix == bits else "")
        raise ValueError(
            f"{value.strip()} has host bits set; did you mean {loose} ({_spans(loose)}) or {meant}?"
        ) from None
    return value


def _spans(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    """What a network covers, as people say it: `all of 10.x.x.x`, or its first and last address."""
    if network.version == 4 and network.prefixlen % 8 == 0 and network.prefixlen:
        kept = str(network.network_address).split(".")[: network.prefixlen // 8]
        return "all of " + ".".join(kept + ["x"] * (4 - len(kept)))
    return f"{network[0]} to {network[-1]}"


Cidr = Annotated[str, AfterValidator(check_network)]

_TLS_CLIENT_KEYS = ("ca_file", "verify_client", "permitted_peers")


class ListenerConfig(BaseModel):
    """One listener: `udp://0.0.0.0:514`, `tcp://[::]:514`, `tls://0.0.0.0:6514` (+ cert_file and key_file).

    A tls:// listener verifies client certificates (RFC 5425 section 5.2) when it has a
    `ca_file`: `verify_client` required (the default then) refuses a client without a
    certificate the CA signed, optional admits one without a certificate (a certificate shown
    must still verify); `permitted_peers` narrows who is admitted to certificates whose subject
    CN or a DNS subjectAltName matches a pattern (`*.example.com`) or whose SHA-256 fingerprint
    is listed (`sha256:AB:CD:...`); empty, any certificate the CA signed."""

    model_config = _STRICT

    url: str
    receive_buffer: int | None = Field(None, ge=4096, description="UDP SO_RCVBUF bytes")
    max_message: int = Field(65536, ge=480, le=16 * 1024 * 1024, description="TCP: longest frame kept")
    idle_timeout: float = Field(300.0, gt=0, description="TCP: seconds before a silent connection is closed")
    cert_file: Path | None = None
    key_file: Path | None = None
    ca_file: Path | None = Field(None, description="TLS: the CA(s) client certificates must be signed by")
    verify_client: Literal["required", "optional", "none"] = Field(
        "none", description="TLS: default required with a ca_file, none without"
    )
    permitted_peers: tuple[str, ...] = Field(
        (), description="TLS: client certificate CN/DNS name patterns or sha256: fingerprints; empty = any"
    )

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: object) -> object:
        if isinstance(value, str):
            return {"url": value}
        if (
            isinstance(value, dict)
            and str(value.get("url", "")).strip().startswith("tls://")
            and value.get("ca_file") is not None
            and "verify_client" not in value
        ):
            # A CA given means client certificates are checked: required unless said otherwise.
            return {**value, "verify_client": "required"}
        return value

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parse_listener_url(value)
        return value.strip()

    @field_validator("permitted_peers")
    @classmethod
    def _check_peers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(normalize_peer(p) for p in value)

    @model_validator(mode="after")
    def _tls_needs_files(self) -> Self:
        if self.scheme == "tls" and (self.cert_file is None or self.key_file is None):
            raise ValueError("a tls:// listener needs cert_file and key_file")
        for name in ("cert_file", "key_file"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: {path} is not a readable file")
        return self

    @model_validator(mode="after")
    def _check_client_verification(self) -> Self:
        given = [k for k in _TLS_CLIENT_KEYS if getattr(self, k) not in (None, "none", ())]
        if self.scheme != "tls":
            if given:
                raise ValueError(
                    f"{', '.join(given)}: client certificates are checked on tls:// listeners only, "
                    f"not on {self.scheme}://"
                )
            return self
        if self.ca_file is None:
            if self.verify_client != "none":
                raise ValueError(
                    f"verify_client {self.verify_client} needs ca_file (the CA that signs client certificates)"
                )
            if self.permitted_peers:
                raise ValueError("permitted_peers needs ca_file (client certificates are only checked against a CA)")
            return self
        if self.verify_client == "none":
            raise ValueError("ca_file with verify_client none: no client certificate would be asked for")
        if not self.ca_file.is_file() or not os.access(self.ca_file, os.R_OK):
            raise ValueError(f"ca_file: {self.ca_file} is not a readable file")
        return self

    @property
    def scheme(self) -> str:
        return parse_listener_url(self.url)[0]

    @property
    def host(self) -> str:
        return parse_listener_url(self.url)[1]

    @property
    def port(self) -> int:
        return parse_listener_url(self.url)[2]


def _check_zone(value: str | None) -> str | None:
    if value is not None:
        from parsers.syslog import zone_for  # parsers import ingestor.errors: import lazily

        zone_for(value)  # ValueError names the zone
    return value


class RecordFieldsConfig(BaseModel):
    """The record fields configuration supplies (a rule never sets these).

    Item (the Integration item Netwrix tells sources apart by, as it sets DataSource itself):
    `items[pack]`, else `item`, else the pack's own (Cisco IOS, Linux, Privileged Linux). A
    source's `item` or `items` replace the global ones for its senders. Names are plain: the
    server adds " (Integration)" itself."""

    model_config = _STRICT

    data_source: str | None = Field(None, min_length=1, max_length=255, description="default: the rule pack's")
    monitoring_plan: str | None = Field(None, min_length=1, max_length=255)
    monitoring_plan_id: str | None = None
    item: str | None = Field(None, min_length=1, description="one Item for every pack's records")
    items: dict[str, str] = Field(default_factory=dict, description="Item per rule pack: {cisco_ios: Core switches}")
    when: Literal["seconds", "fractional"] | None = Field(
        None,
        description="seconds (default): When in whole seconds as Netwrix documents it, the exact time in "
        "the 'Exact time' detail; fractional: When keeps the device's fraction of a second",
    )

    @field_validator("item")
    @classmethod
    def _plain_item(cls, value: str | None) -> str | None:
        return check_item_name(value)

    @field_validator("items")
    @classmethod
    def _plain_items(cls, value: dict[str, str]) -> dict[str, str]:
        for pack, name in value.items():
            if not name:
                raise ValueError(f"items.{pack}: an empty Item name")
            check_item_name(name)
        return value

    def as_mapping(self) -> dict[str, object]:
        """The fields in `RecordDefaults.from_mapping` form."""
        out: dict[str, object] = {}
        if self.items:
            out["Items"] = {pack: {"Name": name} for pack, name in self.items.items()}
        if self.when is not None:
            out["FractionalWhen"] = self.when == "fractional"
        if self.data_source is not None:
            out["DataSource"] = self.data_source
        if self.monitoring_plan is not None:
            plan = {"Name": self.monitoring_plan}
            if self.monitoring_plan_id is not None:
                plan["ID"] = self.monitoring_plan_id
            out["MonitoringPlan"] = plan
        if self.item is not None:
            out["Item"] = {"Name": self.item}
        return out


class RateLimitConfig(BaseModel):
    """A token bucket per sender: `burst` messages at once, refilled at `messages_per_second`."""

    model_config = _STRICT

    messages_per_second: float = Field(gt=0, description="sustained rate each sender of the CIDR may send")
    burst: int = Field(ge=1, description="messages a sender may send at once above that rate")


class SourceConfig(RecordFieldsConfig):
    """Settings for senders in `cidr`: their time zone, record fields and rate limit (first match wins)."""

    cidr: Cidr
    timezone: str | None = None
    rate_limit: RateLimitConfig | None = Field(
        None, description="per sender address; what exceeds it is dropped and counted per address"
    )

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str | None) -> str | None:
        return _check_zone(value)


class RulesConfig(BaseModel):
    """Rule packs: the built-in ones (unless turned off) and user files or folders, which add
    rules and override built-in ones by id."""

    model_config = _STRICT

    builtin: bool = True
    paths: tuple[Path, ...] = ()
    # Optional packs to load (off by default): cisco_ios_security (ACL hits, IPS signatures,
    # zone-firewall session starts, SSH server state: network telemetry, not user activity).
    enable: tuple[str, ...] = ()


class SpoolConfig(BaseModel):
    """The durable spool between rules and delivery."""

    model_config = _STRICT

    path: Path | None = Field(None, description="default: $STATE_DIRECTORY or ~/.local/state/nwsyslog, spool.db")
    max_records: int = Field(5_000_000, ge=1000)
    max_bytes: int = Field(4 * 1024**3, ge=1024 * 1024)
    overflow: Literal["block", "drop_newest"] = "block"
    sync: Literal["normal", "full"] = "normal"
    secure_delete: bool = Field(
        False,
        description="true: every delivered record's bytes are zeroed in the file when its delivery is "
        "committed (a row delivered in part is written again; more spool work); false: only where "
        "that costs no extra write (SQLite's FAST): delivered records stay until their row goes and "
        "pages freed whole keep them until reused",
    )
    max_in_memory: int = Field(
        20_000,
        ge=100,
        description="records produced but not yet committed to the spool; at this bound the listeners "
        "pause until the next commit (UDP datagrams are then discarded and counted, TCP senders wait)",
    )
    lock_timeout: float = Field(
        60.0, gt=0, description="seconds a commit waits for the other process's write lock before it is retried"
    )


class WatchdogConfig(BaseModel):
    """How long the delivery process may stay silent (it reports every 0.5 s) before it counts
    as stalled (logged, /readyz 503) and then before it is killed and started again."""

    model_config = _STRICT

    stalled_after: float = Field(10.0, gt=0)
    restart_after: float = Field(30.0, gt=0)

    @model_validator(mode="after")
    def _order(self) -> Self:
        if self.restart_after < self.stalled_after:
            raise ValueError("restart_after must not be shorter than stalled_after")
        return self


class UnmatchedConfig(BaseModel):
    """`unmatched:`: the inventory of messages no rule maps (`nwsyslog unmatched`, the status page)."""

    model_config = _STRICT

    enabled: bool = True
    samples: bool = Field(True, description="keep a few sample lines per shape (off: no message text is kept)")
    max_shapes: int = Field(1000, ge=1, le=100_000, description="shapes kept in all; beyond, messages are only counted")
    max_samples: int = Field(3, ge=0, le=20)
    max_hosts: int = Field(5, ge=0, le=100)
    mine_per_second: int = Field(
        5000, ge=1, description="unmatched messages mined a second at most; the rest are only counted"
    )


def read_secret_file(path: Path, key: str) -> str:
    """The first line of a secret file (surrounding whitespace removed); ValueError naming `key`
    when it cannot be read or the line is empty. The secret itself is never in the message."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ValueError(f"{key}: cannot read {path}: {reason}") from None
    secret = lines[0].strip() if lines else ""
    if not secret:
        raise ValueError(f"{key}: {path} is empty (the secret is its first line)")
    return secret


class MetricsBasicAuthConfig(BaseModel):
    """`metrics.basic_auth`: the one user (HTTP Basic) a browser gives for the status page."""

    model_config = _STRICT

    username: str = Field(min_length=1, description="no colon")
    password_file: Path = Field(description="file holding the password (first line); read at start")

    @field_validator("username")
    @classmethod
    def _no_colon(cls, value: str) -> str:
        if ":" in value:
            raise ValueError("a Basic username cannot contain ':'")
        return value

    @model_validator(mode="after")
    def _readable(self) -> Self:
        read_secret_file(self.password_file, "password_file")
        return self


class MetricsConfig(BaseModel):
    """The metrics listener: Prometheus `/metrics`, `/healthz`, `/readyz`, the status page `/`
    and `/api/status`. With `auth_token_file` or `basic_auth` every path but `/healthz` needs
    them; a `listen` address beyond loopback without either logs a warning at start unless
    `allow_unauthenticated` says that is meant."""

    model_config = _STRICT

    listen: str | None = Field("127.0.0.1:9102", description="HOST:PORT, or null for no endpoint")
    auth_token_file: Path | None = Field(
        None, description="file holding a bearer token (first line; read at start): Authorization: Bearer TOKEN"
    )
    basic_auth: MetricsBasicAuthConfig | None = Field(None, description="{username, password_file}: HTTP Basic")
    allow_unauthenticated: bool = Field(
        False, description="true: a listen address beyond loopback without authentication is meant (no warning)"
    )

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str | None) -> str | None:
        if value is not None:
            parse_host_port(value)
        return value

    @field_validator("auth_token_file")
    @classmethod
    def _check_token_file(cls, value: Path | None) -> Path | None:
        if value is not None:
            read_secret_file(value, "auth_token_file")
        return value

    @property
    def authenticated(self) -> bool:
        """True when a bearer token or a Basic user is configured."""
        return self.auth_token_file is not None or self.basic_auth is not None

    @property
    def loopback_only(self) -> bool:
        """True when `listen` is a loopback address (or localhost), reachable from this host only."""
        if self.listen is None:
            return True
        host = parse_host_port(self.listen)[0]
        if host.lower() == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False  # a host name: it may resolve to anything

    def exposure_warning(self) -> str | None:
        """What to log at start when the listener is open beyond loopback to anyone, else None."""
        if self.listen is None or self.loopback_only or self.authenticated or self.allow_unauthenticated:
            return None
        return (
            f"metrics.listen {self.listen} is reachable beyond this host without authentication: anyone who "
            "reaches it reads the status page (hosts, senders, unmatched messages, delivery errors); set "
            "metrics.auth_token_file or metrics.basic_auth, or metrics.allow_unauthenticated: true if that is meant"
        )


class ServiceConfig(BaseModel):
    """Everything `nwsyslog run` reads from its YAML file; see samples/ and README.md."""

    model_config = _STRICT

    listeners: tuple[ListenerConfig, ...] = Field(min_length=1)
    netwrix: NetwrixConfig = NetwrixConfig()
    batching: BatchConfig = BatchConfig()
    records: RecordFieldsConfig = RecordFieldsConfig()
    sources: tuple[SourceConfig, ...] = ()
    accept: tuple[Cidr, ...] = Field((), description="CIDRs allowed to send; empty = everyone")
    timezone: str = Field("UTC", description="zone of timestamps without one, unless a source says otherwise")
    rules: RulesConfig = RulesConfig()
    spool: SpoolConfig = SpoolConfig()
    metrics: MetricsConfig = MetricsConfig()
    shutdown_timeout: float = Field(10.0, ge=0, description="seconds to flush on SIGTERM; the rest stays spooled")
    watchdog: WatchdogConfig = WatchdogConfig()
    unmatched: UnmatchedConfig = UnmatchedConfig()
    emulator: bool = Field(False, description="run the Netwrix API emulator in-process and write to it (demo)")
    emulator_listen: str = Field("127.0.0.1:0", description="where the in-process emulator listens")

    @field_validator("emulator_listen")
    @classmethod
    def _check_emulator_listen(cls, value: str) -> str:
        parse_host_port(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        _check_zone(value)
        return value


# The configuration `nwsyslog run` uses without --config: everything on loopback, no root needed,
# and the emulator in-process, so a newcomer sees records arrive.
EMBEDDED_DEFAULT = """\
listeners:
  - udp://127.0.0.1:5514
emulator: true
emulator_listen: 127.0.0.1:9699
netwrix:
  format: xml
records:
  monitoring_plan: Syslog
metrics:
  listen: 127.0.0.1:9102
"""


def load_service_config(path: str | Path | None) -> ServiceConfig:
    """The service configuration from a YAML file (or the embedded default when `path` is None);
    raises ConfigError naming the file, line, key and reason, ConfigErrors (one line each) when
    there are several."""
    from parsers.yamlfile import combine, load_yaml  # parsers import ingestor.errors: import lazily

    doc = load_yaml("<embedded default>", EMBEDDED_DEFAULT) if path is None else load_yaml(path)
    if not isinstance(doc.data, dict):
        raise ConfigError("the configuration must be a mapping (listeners:, netwrix:, ...)", path=doc.path, line=1)
    try:
        return ServiceConfig.model_validate(doc.data)
    except ValidationError as exc:
        raise combine(doc.errors(exc, ServiceConfig)) from None
