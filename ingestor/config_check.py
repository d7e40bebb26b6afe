"""`nwsyslog check-config`: everything that can be known about a configuration without running it.

`check()` validates the file (every error at once, each naming file, line, key and reason),
loads every rule file it names (every file's errors at once) and reports which user rules
replace built-in ones, loads the TLS listeners' certificates and keys, and binds every port the
service would listen on, releasing each at once (a port already taken, or one that needs root,
is said so here rather than at start-up). With `connect=True` it also asks the Netwrix server
one read-only question (`ingestor.netwrix.probe`): a search that matches nothing, over the service's own
transport, TLS pinning and authentication, so that reaching the server, its certificate and the
credentials are proven without writing a record.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import click
from pydantic import ValidationError

from .config import RulesConfig, ServiceConfig, load_service_config, parse_host_port
from .errors import ConfigError
from .netwrix.config import NetwrixConfig

if TYPE_CHECKING:
    from parsers.rules.engine import RuleSet
    from parsers.yamlfile import YamlDocument


@dataclass
class CheckReport:
    """What `check()` found: `errors` (exit code 2 when any), `lines` describing what the service
    would do (meaningful only when there are no errors), what `--connect` proved (`connect`,
    up to the failure if there is one), `warnings` that do not stop it."""

    path: Path
    errors: list[ConfigError] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    connect: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def check(path: Path, *, connect: bool = False) -> CheckReport:
    """Check the configuration at `path` (and its rule files, certificates and ports; with
    `connect`, the Netwrix server too) and report every problem found."""
    from parsers.yamlfile import each_error, load_yaml

    report = CheckReport(path)
    doc: YamlDocument | None
    try:
        doc = load_yaml(path)
    except ConfigError:
        doc = None  # load_service_config says why
    try:
        config: ServiceConfig | None = load_service_config(path)
    except ConfigError as exc:
        config = None
        report.errors.extend(each_error(exc))
    rules = config.rules if config is not None else _rules_section(doc)
    ruleset = None
    if rules is not None:
        ruleset = _load_rules(rules, report, doc)
    if config is None:
        return report
    _check_tls_listeners(config, report, doc)
    free = check_ports(config, report, doc)
    _describe(config, ruleset, free, report)
    if connect:
        if config.emulator:
            report.connect.append("connect: the in-process emulator (emulator: true); there is no server to check")
        else:
            probe_report(config.netwrix, report, doc)
    return report


def _rules_section(doc: YamlDocument | None) -> RulesConfig | None:
    """The `rules:` section of a configuration that failed validation, when that section itself
    is valid: its rule files are still worth checking in the same run."""
    if doc is None or not isinstance(doc.data, dict):
        return None
    try:
        return RulesConfig.model_validate(doc.data.get("rules") or {})
    except ValidationError:
        return None


def _placed(error: ConfigError, report: CheckReport, doc: YamlDocument | None, key: str | None = None) -> ConfigError:
    """`error` at the configuration file's line of `key` (its own key when None) if it names no file."""
    key = key or error.key
    if error.path is not None:
        return error
    line = None
    if doc is not None and key:
        loc: list[str | int] = []
        for part in key.replace("[", ".[").split("."):
            if part:
                loc.append(int(part[1:-1]) if part.startswith("[") else part)
        line = doc.key_line(loc)
    return ConfigError(error.reason, path=str(report.path), line=line, key=key)


def _load_rules(rules: RulesConfig, report: CheckReport, doc: YamlDocument | None) -> RuleSet | None:
    from parsers.rules.loader import load_ruleset
    from parsers.yamlfile import each_error

    try:
        ruleset = load_ruleset(list(rules.paths), builtin=rules.builtin, enable=rules.enable, announce=False)
    except ConfigError as exc:
        report.errors.extend(_placed(e, report, doc) for e in each_error(exc))
        return None
    return ruleset


def _check_tls_listeners(config: ServiceConfig, report: CheckReport, doc: YamlDocument | None) -> None:
    from .tls_server import server_context

    for index, listener in enumerate(config.listeners):
        if listener.scheme == "tls":
            try:
                server_context(listener)  # certificate, key and client CA load
            except ConfigError as exc:
                key = (exc.key or "listeners").replace("listeners", f"listeners[{index}]", 1)
                report.errors.append(_placed(ConfigError(exc.reason, key=key), report, doc))


# --- Ports ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Port:
    """A port the service would bind: the configuration key naming it, how it is shown."""

    key: str
    shown: str
    proto: Literal["udp", "tcp"]
    host: str
    port: int


def service_ports(config: ServiceConfig) -> list[Port]:
    """Every port `nwsyslog run` with `config` binds (port 0, "any free one", left out)."""
    ports = [
        Port(
            f"listeners[{i}]", listener.url, "udp" if listener.scheme == "udp" else "tcp", listener.host, listener.port
        )
        for i, listener in enumerate(config.listeners)
    ]
    if config.metrics.listen is not None:
        host, port = parse_host_port(config.metrics.listen)
        ports.append(Port("metrics.listen", config.metrics.listen, "tcp", host, port))
    if config.emulator:
        host, port = parse_host_port(config.emulator_listen)
        ports.append(Port("emulator_listen", config.emulator_listen, "tcp", host, port))
    return [p for p in ports if p.port != 0]


def check_ports(config: ServiceConfig, report: CheckReport, doc: YamlDocument | None) -> list[Port]:
    """Bind every port of `config` as the service would (all at once, so that two keys naming one
    port clash here too) and release them; errors and warnings go to `report`. Returns the
    ports proven free."""
    free: list[Port] = []
    held: dict[tuple[str, int], Port] = {}
    with ExitStack() as stack:
        for port in service_ports(config):
            try:
                stack.enter_context(_bound(port))
            except OSError as exc:
                problem = _bind_problem(port, exc, held.get((port.proto, port.port)))
                if problem is None:
                    continue
                kind, reason = problem
                if kind == "error":
                    report.errors.append(_placed(ConfigError(reason), report, doc, port.key))
                else:
                    report.warnings.append(f"{port.key}: {reason}")
                continue
            held[(port.proto, port.port)] = port
            free.append(port)
    return free


class _bound:
    """A socket bound (and for TCP listening) on `port` for the `with` block."""

    def __init__(self, port: Port) -> None:
        self._port = port
        self._sock: socket.socket | None = None

    def __enter__(self) -> socket.socket:
        p = self._port
        kind = socket.SOCK_DGRAM if p.proto == "udp" else socket.SOCK_STREAM
        family, _, _, _, address = socket.getaddrinfo(p.host, p.port, type=kind, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind)
        try:
            if p.proto == "tcp":
                # As servers do: a port with connections in TIME_WAIT is free to listen on.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            if p.proto == "tcp":
                sock.listen(1)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        return sock

    def __exit__(self, *_exc: object) -> None:
        if self._sock is not None:
            self._sock.close()


def _bind_problem(port: Port, exc: OSError, clash: Port | None) -> tuple[str, str] | None:
    """("error" or "warning", why) for a failed bind of `port`; `clash` is the port of this
    configuration already holding the same protocol and number."""
    where = f"{port.shown}: {port.proto.upper()} port {port.port}"
    if isinstance(exc, socket.gaierror):
        return "error", f"{port.shown}: cannot resolve {port.host!r} ({exc.strerror})"
    if exc.errno == errno.EADDRINUSE:
        if clash is not None:
            return "error", f"{where} is also used by {clash.key} ({clash.shown})"
        holder = port_holder(port.proto, port.port)
        if holder is not None and holder[1]:
            return "warning", (
                f"{where} is taken by a running nwsyslog (pid {holder[0]}); free once it stops, "
                "but a second service could not start beside it"
            )
        by = f" by pid {holder[0]} ({holder[2]})" if holder is not None else " by another program"
        return "error", f"{where} is already taken{by}; the service could not start"
    if exc.errno == errno.EACCES:
        return "warning", (
            f"{where} needs root or CAP_NET_BIND_SERVICE, which this process lacks (the systemd unit "
            "in deploy/ grants it); not proven free"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return "error", f"{port.shown}: {port.host} is not an address of this machine"
    return "error", f"{where}: cannot bind: {exc.strerror or exc}"


def port_holder(proto: str, port: int) -> tuple[int, bool, str] | None:
    """(pid, whether it is an `nwsyslog run`, its command line) of a process holding `port`,
    from /proc (Linux; processes of other users only when run as root), or None if unknown."""
    inodes: set[str] = set()
    for table in (proto, f"{proto}6"):
        try:
            rows = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            # TCP: only a listening socket (state 0A) holds the port against a new listener.
            listening = proto == "udp" or (len(fields) > 3 and fields[3] == "0A")
            if listening and len(fields) > 9 and int(fields[1].rpartition(":")[2], 16) == port and fields[9] != "0":
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for pid, args in _processes_holding(inodes):
        names = [os.path.basename(a) for a in args[:2]]
        service = ("nwsyslog" in names or "ingestor.cli" in args) and "run" in args
        shown = " ".join(" ".join(args).split())
        return pid, service, shown if len(shown) <= 100 else shown[:99] + "…"
    return None


def _processes_holding(targets: set[str]) -> Iterator[tuple[int, list[str]]]:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fds = list((proc / "fd").iterdir())
            if any(_link(fd) in targets for fd in fds):
                raw = (proc / "cmdline").read_bytes().rstrip(b"\0")
                yield int(proc.name), raw.decode("utf-8", "replace").split("\0")
        except OSError:
            continue  # gone, or another user's


def _link(fd: Path) -> str | None:
    try:
        return os.readlink(fd)
    except OSError:  # closed meanwhile (the listing's own descriptor, in this process)
        return None


def probe_report(nw: NetwrixConfig, report: CheckReport, doc: YamlDocument | None) -> None:
    """Run `probe()` and put what it proved, or why it failed, into `report`."""
    from .netwrix.probe import probe

    result = probe(nw)
    report.connect.append(f"connect: {result.url} (a search that matches nothing; no record is written)")
    report.connect.extend(f"  {line}" for line in result.proven)
    if result.error is None:
        report.connect.append("  not proven: that the account may write records (the Contributor role)")
    else:
        report.errors.append(_placed(ConfigError(f"--connect: {result.error}"), report, doc, result.key))


# --- The report --------------------------------------------------------------------------------


def _describe(config: ServiceConfig, ruleset: RuleSet | None, free: Sequence[Port], report: CheckReport) -> None:
    from .service import default_spool_path
    from .spool_health import space_warning

    nw = config.netwrix
    auth = nw.auth
    if auth.method == "none":
        credentials = "none"
    else:
        origin = (
            f"from ${auth.password_env}"
            if auth.password_env
            else f"from {auth.password_file}"
            if auth.password_file
            else "set in the file"
            if auth.password.get_secret_value()
            else "empty"
        )
        credentials = f"{auth.method} as {auth.username} (password {origin})"
    spool = config.spool.path or default_spool_path()
    rules = len(ruleset) if ruleset is not None else "?"
    report.lines += [
        f"{report.path}: ok",
        "  listeners: " + ", ".join(listener.url for listener in config.listeners),
        f"  netwrix: {'in-process emulator' if config.emulator else nw.write_url} ({nw.format})",
        f"  auth: {credentials}; tls: {nw.tls.mode}",
        f"  rules: {rules} ({'built-in + ' if config.rules.builtin else ''}{len(config.rules.paths)} user path(s))",
        *(f"  {override}" for override in (ruleset.overrides if ruleset is not None else ())),
        f"  spool: {spool} (max {config.spool.max_records:,} records, overflow {config.spool.overflow})",
        f"  accept list: {', '.join(config.accept) if config.accept else 'everyone'}; "
        f"{len(config.sources)} per-source setting(s); time zone {config.timezone}",
        f"  metrics: {config.metrics.listen or 'off'}",
    ]
    if free:
        report.lines.append("  ports free (bound and released): " + ", ".join(_port_name(p) for p in free))
    warning = space_warning(spool, config.spool.max_bytes)
    if warning is not None:
        report.warnings.append(warning)


def _port_name(port: Port) -> str:
    return port.shown if port.key.startswith("listeners") else f"{port.key} {port.shown}"


def echo_errors(errors: Sequence[ConfigError]) -> None:
    """Each error as one line on stderr, as the CLI's own errors are (a JSON object each under
    --log-format json)."""
    from .logs import error_line

    for error in errors:
        click.echo(error_line(str(error)), err=True)
