"""Configuration models (pydantic v2, frozen, unknown keys rejected); defaults live here only."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError
from .netwrix.config import BatchConfig, NetwrixConfig
from .netwrix.records import check_item_name

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


class ListenerConfig(BaseModel):
    """One listener: `udp://0.0.0.0:514`, `tcp://[::]:514`, `tls://0.0.0.0:6514` (+ cert_file and key_file)."""

    model_config = _STRICT

    url: str
    receive_buffer: int | None = Field(None, ge=4096, description="UDP SO_RCVBUF bytes")
    max_message: int = Field(65536, ge=480, le=16 * 1024 * 1024, description="TCP: longest frame kept")
    idle_timeout: float = Field(300.0, gt=0, description="TCP: seconds before a silent connection is closed")
    cert_file: Path | None = None
    key_file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: object) -> object:
        return {"url": value} if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parse_listener_url(value)
        return value.strip()

    @model_validator(mode="after")
    def _tls_needs_files(self) -> Self:
        if self.scheme == "tls" and (self.cert_file is None or self.key_file is None):
            raise ValueError("a tls:// listener needs cert_file and key_file")
        for name in ("cert_file", "key_file"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: {path} is not a readable file")
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


class SourceConfig(RecordFieldsConfig):
    """Settings for senders in `cidr`: their time zone and record fields (first match wins)."""

    cidr: str
    timezone: str | None = None

    @field_validator("cidr")
    @classmethod
    def _check_cidr(cls, value: str) -> str:
        ipaddress.ip_network(value, strict=False)  # ValueError names it
        return value

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


class MetricsConfig(BaseModel):
    """The Prometheus endpoint, with /healthz and /readyz beside it."""

    model_config = _STRICT

    listen: str | None = Field("127.0.0.1:9102", description="HOST:PORT, or null for no endpoint")

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str | None) -> str | None:
        if value is not None:
            parse_host_port(value)
        return value


class ServiceConfig(BaseModel):
    """Everything `nwsyslog run` reads from its YAML file; see samples/ and README.md."""

    model_config = _STRICT

    listeners: tuple[ListenerConfig, ...] = Field(min_length=1)
    netwrix: NetwrixConfig = NetwrixConfig()
    batching: BatchConfig = BatchConfig()
    records: RecordFieldsConfig = RecordFieldsConfig()
    sources: tuple[SourceConfig, ...] = ()
    accept: tuple[str, ...] = Field((), description="CIDRs allowed to send; empty = everyone")
    timezone: str = Field("UTC", description="zone of timestamps without one, unless a source says otherwise")
    rules: RulesConfig = RulesConfig()
    spool: SpoolConfig = SpoolConfig()
    metrics: MetricsConfig = MetricsConfig()
    shutdown_timeout: float = Field(10.0, ge=0, description="seconds to flush on SIGTERM; the rest stays spooled")
    emulator: bool = Field(False, description="run the Netwrix API emulator in-process and write to it (demo)")
    emulator_listen: str = Field("127.0.0.1:0", description="where the in-process emulator listens")

    @field_validator("emulator_listen")
    @classmethod
    def _check_emulator_listen(cls, value: str) -> str:
        parse_host_port(value)
        return value

    @field_validator("accept")
    @classmethod
    def _check_accept(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for cidr in value:
            ipaddress.ip_network(cidr, strict=False)
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
    raises ConfigError naming the file, line, key and reason."""
    from parsers.yamlfile import load_yaml  # parsers import ingestor.errors: import lazily

    doc = load_yaml("<embedded default>", EMBEDDED_DEFAULT) if path is None else load_yaml(path)
    if not isinstance(doc.data, dict):
        raise ConfigError("the configuration must be a mapping (listeners:, netwrix:, ...)", path=doc.path, line=1)
    try:
        return ServiceConfig.model_validate(doc.data)
    except ValidationError as exc:
        raise doc.error(exc) from None
