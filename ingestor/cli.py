"""The `nwsyslog` command. Exit codes: 0 ok, 1 runtime error, 2 configuration error, 3 startup failure."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn

import click

from .errors import ConfigError, StartupError
from .logs import setup_logging
from .loop import run

if TYPE_CHECKING:
    from .config import ServiceConfig
    from .netwrix.encoding import XmlEncoder
    from .spool import Spool

EXIT_RUNTIME = 1
EXIT_CONFIG = 2
EXIT_STARTUP = 3


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT` or `[IPv6]:PORT` into (host, port); raises ConfigError."""
    from .config import parse_host_port

    try:
        return parse_host_port(value)
    except ValueError as exc:
        raise ConfigError(str(exc), key="--listen") from None


def _version_message() -> str:
    """`nwsyslog --version`: the package version, the Python running it, the built-in rules."""
    import platform

    from parsers.rules.loader import load_ruleset

    from . import __version__

    try:
        rules = f"{len(load_ruleset().rules)} built-in rules"
    except ConfigError as exc:  # a damaged install still says what it is
        rules = f"built-in rules not loadable: {exc}"
    return f"nwsyslog {__version__} (Python {platform.python_version()}, {rules})"


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(_version_message())
        ctx.exit()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
    help="Print the version, the Python version and the built-in rule count, and exit.",
)  # fmt: skip
@click.option(
    "--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"])
)
@click.option(
    "--log-format",
    default="text",
    show_default=True,
    type=click.Choice(["text", "json"]),
    help="json: one object per line (time, level, logger, message), for log collectors.",
)
def main(log_level: str, log_format: str) -> None:
    """Syslog from Cisco IOS and Linux hosts into Netwrix Auditor Activity Records."""
    setup_logging(log_level, log_format)  # type: ignore[arg-type]  # (click.Choice: "text" or "json")


@main.command()
@click.option("--listen", default="127.0.0.1:9699", show_default=True, help="HOST:PORT; port 0 picks a free one.")
@click.option("--db", default=":memory:", show_default=True, help="SQLite file keeping records across restarts.")
@click.option("--user", default=None, metavar="NAME:PASSWORD", help="Require this user (401 otherwise).")
@click.option("--auth-scheme", type=click.Choice(["basic", "digest", "ntlm"]), default="basic", show_default=True)
@click.option("--max-body-bytes", type=click.IntRange(min=1), default=None, help="Answer 413 above this size.")
@click.option("--fail-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True, help="Writes to fail (0-1).")
@click.option("--fail-status", type=click.Choice(["500", "503"]), default="503", show_default=True)
@click.option(
    "--fail-phase",
    type=click.Choice(["before", "after"]),
    default="before",
    show_default=True,
    help="Fail before storing, or after (the records are kept, so a retry duplicates them).",
)
@click.option(
    "--outage", type=click.FloatRange(min=0), default=0.0, show_default=True,
    help="Fail every write with --fail-status for this many seconds from the first one.",
)  # fmt: skip
@click.option(
    "--poison", default=None, metavar="TEXT",
    help="Answer 500 (a ServerError ErrorList, nothing stored) to every write whose body holds TEXT.",
)  # fmt: skip
@click.option("--latency-ms", type=click.FloatRange(min=0), default=0.0, show_default=True)
@click.option("--page-size", type=click.IntRange(min=1), default=1000, show_default=True, help="enum page size.")
@click.option("--tls", is_flag=True, help="Serve HTTPS with a generated self-signed certificate.")
@click.option("--tls-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help="Keep the cert here.")
@click.option("--seed", type=int, default=None, help="Seed for the fault dice (repeatable runs).")
@click.option(
    "--validate-every",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Check every Nth write body against the schema; count the others unchecked (benchmarks).",
)
@click.option(
    "--as-sent",
    is_flag=True,
    help="Read records back exactly as written, not as the real server shows them (DataSource "
    '"Netwrix API", Item "name (Integration)").',
)
def emulator(
    listen: str,
    db: str,
    user: str | None,
    auth_scheme: str,
    max_body_bytes: int | None,
    fail_rate: float,
    fail_status: str,
    fail_phase: str,
    outage: float,
    poison: str | None,
    latency_ms: float,
    page_size: int,
    tls: bool,
    tls_dir: Path | None,
    seed: int | None,
    validate_every: int,
    as_sent: bool,
) -> None:
    """Run a Netwrix Auditor Integration API emulator (write, enum, search)."""
    from .emulator import EmulatorServer, EmulatorSettings, self_signed_certificate
    from .emulator.app import API
    from .emulator.server import existing_certificate
    from .netwrix.tls import colon_hex

    try:
        host, port = parse_listen(listen)
        credentials = None
        if user is not None:
            name, sep, password = user.partition(":")
            if not sep or not name:
                raise ConfigError("expected NAME:PASSWORD", key="--user")
            credentials = (name, password)
        settings = EmulatorSettings(
            db=db,
            user=credentials,
            auth_scheme=auth_scheme,  # type: ignore[arg-type]
            max_body_bytes=max_body_bytes,
            fail_rate=fail_rate,
            fail_status=int(fail_status),
            fail_phase=fail_phase,  # type: ignore[arg-type]
            outage_s=outage,
            poison=poison,
            latency_ms=latency_ms,
            page_size=page_size,
            seed=seed,
            validate_every=validate_every,
            as_sent=as_sent,
        )
        with tempfile.TemporaryDirectory(prefix="nwsyslog-emulator-") as tmp:
            cert = None
            if tls:
                # --tls-dir keeps the certificate: reused at the next start, so a pinned thumbprint holds.
                cert = (existing_certificate(tls_dir) if tls_dir is not None else None) or self_signed_certificate(
                    tls_dir or Path(tmp), [host]
                )
            server = EmulatorServer(settings, host, port, cert)
            click.echo(f"nwsyslog emulator listening on {server.base_url}")
            click.echo(f"  write: POST {server.base_url}{API}/   (also {API})")
            click.echo(f"  enum:  GET  {server.base_url}{API}/enum?format=json&count=1000")
            click.echo(f"  stats: GET  {server.base_url}/_emulator/stats")
            if cert is not None:
                click.echo(f"  certificate: {cert.cert_file}")
                click.echo(f"  thumbprint SHA-1:   {colon_hex(cert.sha1)}")
                click.echo(f"  thumbprint SHA-256: {colon_hex(cert.sha256)}")
            sys.stdout.flush()
            run(server.serve())
    except (ConfigError, StartupError) as exc:
        _fail(exc)


def _fail(error: Exception | str, code: int | None = None) -> NoReturn:
    """One line on stderr (a JSON object under --log-format json), then the exit code: 2 for a
    ConfigError, 3 for a StartupError, else `code`."""
    from .logs import error_line

    click.echo(error_line(str(error)), err=True)
    if code is None:
        code = (
            EXIT_CONFIG
            if isinstance(error, ConfigError)
            else EXIT_STARTUP
            if isinstance(error, StartupError)
            else EXIT_RUNTIME
        )
    sys.exit(code)


@main.command()
@click.argument("file", default="-", type=click.File("rb"))
@click.option("--explain", is_flag=True, help='One {"line", "rule", "record"} object per line, unmatched too.')
@click.option("--format", "fmt", type=click.Choice(["json", "xml"]), default="json", show_default=True)
@click.option(
    "--rules", "rule_paths", multiple=True, type=click.Path(path_type=Path), help="A user rule file or folder."
)
@click.option("--no-builtin", is_flag=True, help="Leave out the built-in packs.")
@click.option(
    "--enable", "enable", multiple=True, metavar="PACK", help="An optional pack to load (cisco_ios_security)."
)
@click.option("--source", default="", help="The sender address to attribute (Workstation when a rule sets none).")
@click.option("--timezone", default="UTC", show_default=True, help="Zone of timestamps that carry none.")
@click.option("--received-at", default=None, help="ISO time the lines count as received (default: now).")
@click.option("--data-source", default=None, help="DataSource for every record (default: each pack's own).")
@click.option("--monitoring-plan", default=None, help="MonitoringPlan name for every record.")
@click.option("--item", default=None, help="Item name for every record.")
@click.option(
    "--summary", is_flag=True, help="Print the unmatched lines grouped by shape (as `nwsyslog unmatched`) instead."
)
def parse(
    file: BinaryIO,
    explain: bool,
    fmt: str,
    rule_paths: tuple[Path, ...],
    no_builtin: bool,
    enable: tuple[str, ...],
    source: str,
    timezone: str,
    received_at: str | None,
    data_source: str | None,
    monitoring_plan: str | None,
    item: str | None,
    summary: bool,
) -> None:
    """Map syslog lines (FILE or - for stdin, with or without PRI) to Activity Records.

    Prints one JSON record per matched line, or with --explain one object per line saying which
    rule matched it (or "unmatched": true); --format xml prints an ActivityRecordList. A summary
    goes to stderr. This is the rule author's playground: `test-rules --generate` writes exactly
    this output.
    """
    from datetime import UTC, datetime

    from ingestor.netwrix.encoding import XmlEncoder
    from parsers.rules.loader import load_ruleset
    from parsers.rules.testing import ExplainOptions, dump_line, explain_lines
    from parsers.syslog import parse_syslog, zone_for

    from .unmatched import Inventory, format_listing, mine

    if explain and fmt == "xml":
        raise click.UsageError("--explain prints JSON; leave out --format xml")
    try:
        ruleset = load_ruleset(rule_paths, builtin=not no_builtin, enable=enable)
        when = datetime.now(UTC)
        if received_at is not None:
            try:
                when = datetime.fromisoformat(received_at)
            except ValueError:
                raise ConfigError(f"not an ISO 8601 time: {received_at!r}", key="--received-at") from None
            when = when if when.tzinfo else when.replace(tzinfo=UTC)
        try:
            tz = zone_for(timezone)
        except ValueError as exc:
            raise ConfigError(str(exc), key="--timezone") from None
    except ConfigError as exc:
        _fail(exc)
    defaults: dict[str, object] = {}
    if data_source:
        defaults["DataSource"] = data_source
    if monitoring_plan:
        defaults["MonitoringPlan"] = {"Name": monitoring_plan}
    if item:
        defaults["Item"] = {"Name": item}
    options = ExplainOptions(received_at=when, source=source, tz=tz, defaults=defaults)
    counts = {"record": 0, "unmatched": 0, "error": 0, "dropped": 0}
    xml = XmlEncoder() if fmt == "xml" else None
    fragments: list[bytes] = []
    lines: list[bytes] = list(file) if summary else []
    inventory = Inventory() if summary else None
    for obj in explain_lines(ruleset, lines if summary else file, options):
        kind = next(k for k in ("record", "unmatched", "error", "dropped") if k in obj)
        counts[kind] += 1
        if kind == "error":
            click.echo(f"line {obj['line']}: rule {obj['rule']}: {obj['error']}", err=True)
        if inventory is not None:
            if kind == "unmatched":
                raw = lines[obj["line"] - 1]
                mine([(parse_syslog(raw, source=source, received_at=when, tz=tz), raw)], inventory)
        elif explain:
            click.echo(dump_line(obj))
        elif kind == "record":
            if xml is not None:
                fragments.append(_xml_fragment(xml, obj["record"]))
            else:
                click.echo(dump_line(obj["record"]))
    if xml is not None:
        click.echo(xml.join(fragments).decode("utf-8"))
    if inventory is not None:
        from .status import unmatched_json

        click.echo(format_listing(unmatched_json(inventory)))
    total = sum(counts.values())
    click.echo(
        f"{total} lines: {counts['record']} records, {counts['unmatched']} unmatched, "
        f"{counts['dropped']} dropped by rules, {counts['error']} errors",
        err=True,
    )


def _xml_fragment(encoder: XmlEncoder, record: dict[str, object]) -> bytes:
    from ingestor.netwrix.records import ActivityRecord

    return encoder.encode(ActivityRecord.model_validate(record))


@main.command("samples")
@click.argument("name", required=False)
def samples(name: str | None) -> None:
    """List the sample files shipped with nwsyslog (one path a line), or print NAME's path.

    For example: nwsyslog parse --explain "$(nwsyslog samples cisco-ios.log)"
    """
    from .resources import sample_files, samples_dir

    files = sample_files()
    if name is None:
        for path in files:
            click.echo(str(path))
        return
    for path in files:
        if path.name == name:
            click.echo(str(path))
            return
    known = ", ".join(p.name for p in files)
    _fail(f"no sample named {name!r} in {samples_dir()} (there are: {known})", EXIT_CONFIG)


@main.command("test-rules")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--no-builtin", is_flag=True, help="Test PATHs on their own, without the built-in packs around them.")
@click.option("--generate", is_flag=True, help="Write each golden log's -expected.jsonl from the current rules.")
def test_rules(paths: tuple[Path, ...], no_builtin: bool, generate: bool) -> None:
    """Run rule packs' inline examples and golden logs (the built-in packs when no PATH).

    User packs are tested inside the RuleSet they will run in: the built-in packs, then PATHs,
    so an example shadowed by another rule fails. Exit code 1 when anything fails.
    """
    from parsers.rules.testing import run_rule_tests
    from parsers.yamlfile import each_error

    from .config_check import echo_errors

    try:
        report = run_rule_tests(paths, builtin=not no_builtin, generate=generate)
    except ConfigError as exc:
        echo_errors(each_error(exc))  # every rule file's errors, one line each
        sys.exit(EXIT_CONFIG)
    for override in report.overrides:
        click.echo(str(override))
    for failure in report.failures:
        click.echo(str(failure))
    for path in report.generated:
        click.echo(f"wrote {path}")
    click.echo(report.summary())
    if not report.ok:
        sys.exit(EXIT_RUNTIME)


def _config_or_exit(path: Path | None) -> ServiceConfig:
    from parsers.yamlfile import each_error

    from .config import load_service_config
    from .config_check import echo_errors

    try:
        return load_service_config(path)
    except ConfigError as exc:
        echo_errors(each_error(exc))  # every error of the file, one line each
        sys.exit(EXIT_CONFIG)


_CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="YAML configuration (default: the embedded demo configuration; see README).",
)


@main.command("run")
@_CONFIG_OPTION
@click.option(
    "--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Processes sharing the ports."
)
@click.option("--worker-index", type=click.IntRange(0, 63), default=0, hidden=True)
def run_command(config_path: Path | None, workers: int, worker_index: int) -> None:
    """Run the service: listen for syslog, map it with the rules, spool it, write it to Netwrix.

    Without --config it listens on udp://127.0.0.1:5514 and writes to a Netwrix API emulator it
    runs in-process, so `nwsyslog send --to udp://127.0.0.1:5514 FILE` shows records arriving.
    SIGTERM/SIGINT stop gracefully, SIGHUP reloads the rule files.
    """
    config = _config_or_exit(config_path)
    if workers > 1:
        if config.emulator:
            _fail("--workers: the in-process emulator runs with one worker only", EXIT_CONFIG)
        sys.exit(_supervise(config_path, config, workers))
    from .service import Service

    service = Service(config, worker=worker_index, reuse_port=_is_worker(), config_path=config_path)

    async def serve() -> None:
        service.install_signals()
        task = asyncio.create_task(service.run())
        started = asyncio.create_task(service.started.wait())
        await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
        from .logs import current_settings

        # With --log-format json, stdout and stderr carry nothing but JSON (the log says the same).
        if service.started.is_set() and current_settings()[1] == "text":
            for source in service.sources:
                click.echo(f"nwsyslog: listening on {source.kind}://{source.host}:{source.port}")
            if service.emulator is not None:
                base = service.emulator.base_url
                click.echo(f"nwsyslog: writing to the in-process Netwrix API emulator at {base}")
                click.echo(f"nwsyslog:   records: curl '{base}/netwrix/api/v1/activity_records/enum?format=json'")
            else:
                click.echo(f"nwsyslog: writing to {service.netwrix.write_url}")
            if service.metrics_port is not None:
                click.echo(f"nwsyslog: metrics on port {service.metrics_port} (/metrics, /healthz, /readyz)")
            click.echo(f"nwsyslog: spool {service.spool_path}")
            sys.stdout.flush()
        started.cancel()
        await task

    try:
        run(serve())
    except ConfigError as exc:
        from parsers.yamlfile import each_error

        from .config_check import echo_errors

        echo_errors(each_error(exc))  # a rule set's errors, one line each
        sys.exit(EXIT_CONFIG)
    except StartupError as exc:
        _fail(exc)
    if service.failure is not None:  # a stage failed (logged); exit 1 so a supervisor restarts it
        _fail(f"stopped: {service.failure}", EXIT_RUNTIME)


def _is_worker() -> bool:
    return os.environ.get("NWSYSLOG_WORKER") == "1"


def _supervise(config_path: Path | None, config: ServiceConfig, workers: int) -> int:
    """Run `workers` processes of `nwsyslog run` on the same ports (SO_REUSEPORT), each with its
    own spool; forward SIGTERM/SIGINT/SIGHUP; exit with the first non-zero code."""
    import signal
    import subprocess

    args = [sys.executable, "-m", "ingestor.cli", "run"]
    if config_path is not None:
        args += ["--config", str(config_path)]
    env = {**os.environ, "NWSYSLOG_WORKER": "1"}
    procs = [subprocess.Popen([*args, "--worker-index", str(i)], env=env) for i in range(workers)]

    def forward(signum: int, _frame: object) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    codes = [proc.wait() for proc in procs]
    return next((c for c in codes if c), 0)


@main.command("check-config")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--connect",
    is_flag=True,
    help="Also ask the Netwrix server one read-only question (a search matching nothing): proves the URL, "
    "TLS trust or pinned thumbprint and the credentials, without writing a record.",
)
def check_config(file: Path, connect: bool) -> None:
    """Validate a configuration file (and the rule files it names) without starting anything.

    Reports every error at once (file:line: key: reason), which user rules replace built-in
    ones, and binds every port the service would listen on (releasing it at once). Prints what
    the service would do; secrets are never printed. Exit code 2 on any error.
    """
    from .config_check import check, echo_errors

    report = check(file, connect=connect)
    lines = [*report.lines, *report.connect] if report.ok else report.connect
    if lines:
        click.echo("\n".join(lines))
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    if not report.ok:
        echo_errors(report.errors)
        sys.exit(EXIT_CONFIG)


@main.command("send")
@click.option("--to", "target", required=True, help="udp://HOST:PORT or tcp://HOST:PORT")
@click.argument("files", nargs=-1, type=click.File("rb"), required=True)
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=None, help="Messages per second.")
@click.option("--repeat", type=click.IntRange(min=1), default=1, show_default=True, help="Send the files N times.")
@click.option("--pri", default="<13>", show_default=True, help="PRI added to lines that have none.")
def send(target: str, files: tuple[BinaryIO, ...], rate: float | None, repeat: int, pri: str) -> None:
    """Replay log files to a syslog listener, one message per line (for demos, tests, benchmarks).

    Lines without a PRI get one. TCP uses RFC 6587 octet counting. Progress goes to stderr every
    few seconds, and a summary line at the end.
    """
    from .config import parse_listener_url
    from .sender import Sender

    try:
        scheme, host, port = parse_listener_url(target)
        if scheme == "tls":
            raise ValueError("send speaks udp:// and tcp:// only")
    except ValueError as exc:
        _fail(f"--to: {exc}", EXIT_CONFIG)
    lines = [line for f in files for line in f.read().splitlines() if line.strip()]
    try:
        with Sender(scheme, host, port, pri=pri.encode()) as sender:
            summary = sender.replay(lines * repeat, rate=rate, progress=lambda text: click.echo(text, err=True))
    except OSError as exc:
        _fail(f"cannot send to {target}: {exc.strerror or exc}", EXIT_RUNTIME)
    click.echo(summary, err=True)


@main.group("spool")
def spool_group() -> None:
    """Inspect the spool: what waits, what is quarantined and why; send quarantined records again."""


_SPOOL_OPTIONS = [
    _CONFIG_OPTION,
    click.option("--path", "spool_path", type=click.Path(path_type=Path, dir_okay=False), default=None),
]


def _spool_options(fn: Any) -> Any:
    for option in reversed(_SPOOL_OPTIONS):
        fn = option(fn)
    return fn


def _spool_target(config_path: Path | None, spool_path: Path | None) -> tuple[Path, Any]:
    """The spool's path (which must exist) and the options to open it with."""
    from .service import default_spool_path, spool_options

    config = _config_or_exit(config_path)
    path = spool_path or config.spool.path or default_spool_path()
    if not path.exists():
        _fail(f"no spool at {path}", EXIT_CONFIG)
    return path, spool_options(config)


def _open_spool(config_path: Path | None, spool_path: Path | None) -> Spool:
    from .spool import Spool
    from .spool_health import check

    path, options = _spool_target(config_path, spool_path)
    health = check(path)
    if not health.sound:
        _fail(
            f"the spool {path} is damaged ({health.problems[0]}); see `nwsyslog spool check`, "
            "and `nwsyslog spool salvage` (the service salvages it by itself when it starts)",
            EXIT_CONFIG,
        )
    try:
        return Spool(path, **options)
    except StartupError as exc:
        _fail(exc)


@spool_group.command("stats")
@_spool_options
def spool_stats(config_path: Path | None, spool_path: Path | None) -> None:
    """Records waiting, their bytes, the oldest one's age, and the quarantine count."""
    import time

    with _open_spool(config_path, spool_path) as spool:
        stats = spool.stats()
        age = f"{time.time() - stats.oldest:.0f} s" if stats.oldest else "-"
        click.echo(
            f"{spool.path}: {stats.records} records waiting ({stats.bytes} bytes, oldest {age}), "
            f"{stats.quarantined} quarantined"
        )


@spool_group.command("check")
@_spool_options
def spool_check(config_path: Path | None, spool_path: Path | None) -> None:
    """Check the spool file: SQLite's quick_check, its tables, and whether committed records went
    missing with its WAL. Exit 0 when sound, 2 when damaged (`spool salvage` repairs it)."""
    from .spool_health import check

    path, _ = _spool_target(config_path, spool_path)
    health = check(path)
    if health.sound:
        click.echo(f"{path}: sound ({health.waiting if health.waiting is not None else '?'} records waiting)")
        return
    for problem in health.problems:
        click.echo(f"{path}: damaged: {problem}", err=True)
    raise SystemExit(EXIT_CONFIG)


@spool_group.command("salvage")
@_CONFIG_OPTION
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--into", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the salvaged spool here (default: FILE itself, the damaged one moved aside).")  # fmt: skip
def spool_salvage(config_path: Path | None, file: Path, into: Path | None) -> None:
    """Move a damaged spool FILE aside (FILE.damaged-<time>) and copy every record that can still
    be read into a fresh spool; says how many were recovered and how many are known lost. Stop
    the service first: it must not have the file open."""
    import sqlite3

    from .service import spool_options
    from .spool_health import salvage

    config = _config_or_exit(config_path)
    try:
        result = salvage(file, spool_options(config), into=into)
    except (OSError, sqlite3.Error, StartupError) as exc:
        _fail(f"cannot salvage {file}: {exc}", EXIT_RUNTIME)
    click.echo(
        f"{into or file}: {result.recovered} records recovered ({result.method}), {result.quarantined} "
        f"quarantined recovered, {result.lost} known lost; the damaged file is "
        f"{result.damaged}"
    )


@spool_group.command("list")
@_spool_options
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
def spool_list(config_path: Path | None, spool_path: Path | None, limit: int) -> None:
    """Quarantined records, oldest first: id, time, reason and the record itself."""
    import json
    from datetime import UTC, datetime

    with _open_spool(config_path, spool_path) as spool:
        for q in spool.quarantined(limit):
            when = datetime.fromtimestamp(q.created, UTC).isoformat(timespec="seconds")
            click.echo(json.dumps({"id": q.id, "when": when, "reason": q.reason, "record": q.data.decode("utf-8")}))


@spool_group.command("retry")
@_spool_options
@click.argument("ids", nargs=-1, type=int)
def spool_retry(config_path: Path | None, spool_path: Path | None, ids: tuple[int, ...]) -> None:
    """Move quarantined records (IDS, or all) back to the waiting records to be sent again."""
    with _open_spool(config_path, spool_path) as spool:
        moved = spool.retry(list(ids) if ids else None)
        click.echo(f"{moved} records moved back to the spool; the service sends them next")


@main.command("unmatched")
@_CONFIG_OPTION
@click.option(
    "--from",
    "from_file",
    type=click.File("rb"),
    default=None,
    help="Group the unmatched lines of this log file (- for stdin) instead of asking the service.",
)
@click.option("--url", default=None, help="The service's metrics address (default: metrics.listen).")
@click.option("--draft", "draft_id", default=None, metavar="ID", help="Print a YAML rule drafted for this shape.")
@click.option("--json", "as_json", is_flag=True, help="Print the inventory as JSON.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Shapes to list.")
def unmatched_command(
    config_path: Path | None,
    from_file: BinaryIO | None,
    url: str | None,
    draft_id: str | None,
    as_json: bool,
    limit: int,
) -> None:
    """List the shapes of messages no rule maps, most frequent first, with counts, hosts and
    samples: from the running service (its metrics listener), else from the inventory it saved
    beside its spool, or with --from from a log file. --draft ID prints a rule for one shape."""
    import json

    from .status import unmatched_json

    config = _config_or_exit(config_path)
    data = unmatched_json(_mine_file(config, from_file)) if from_file is not None else _service_inventory(config, url)
    if draft_id is not None:
        shape = next((s for s in data["shapes"] if str(s["id"]).upper() == draft_id.upper()), None)
        if shape is None:
            known = ", ".join(str(s["id"]) for s in data["shapes"][:20]) or "none"
            _fail(f"no unmatched shape {draft_id!r} (shapes: {known})", EXIT_CONFIG)
        click.echo(shape["draft"], nl=False)
        return
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    from .unmatched import format_listing

    click.echo(format_listing(data, samples=bool(data.get("samples_allowed", True)), limit=limit))


def _mine_file(config: ServiceConfig, file: BinaryIO) -> Any:
    """The unmatched inventory of a log file's lines under the configuration's rules."""
    from datetime import UTC, datetime

    from parsers.syslog import parse_syslog, zone_for

    from .service import load_rules
    from .unmatched import Inventory, mine

    try:
        ruleset = load_rules(config)
    except ConfigError as exc:
        _fail(exc)
    inventory = Inventory.from_settings(config.unmatched)
    now, tz = datetime.now(UTC), zone_for(config.timezone)
    parsed = ((parse_syslog(line, received_at=now, tz=tz), line) for line in file if line.strip())
    return mine(((m, line) for m, line in parsed if ruleset.match(m) is None), inventory)


def _service_inventory(config: ServiceConfig, url: str | None) -> dict[str, Any]:
    """The running service's inventory (GET /api/unmatched), else the one saved beside its spool."""
    import base64

    import httpx

    from .config import read_secret_file
    from .service import default_spool_path
    from .status import unmatched_json
    from .unmatched import Inventory, inventory_path

    listen = url or config.metrics.listen
    problem = "metrics.listen is off"
    if listen:
        base = listen if "://" in listen else f"http://{listen}"
        base = base.replace("://0.0.0.0:", "://127.0.0.1:").replace("://[::]:", "://[::1]:")
        headers = {}
        metrics = config.metrics
        try:
            if metrics.auth_token_file is not None:
                headers["Authorization"] = "Bearer " + read_secret_file(metrics.auth_token_file, "auth_token_file")
            elif metrics.basic_auth is not None:
                secret = read_secret_file(metrics.basic_auth.password_file, "password_file")
                pair = f"{metrics.basic_auth.username}:{secret}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        except ValueError as exc:
            _fail(str(exc), EXIT_CONFIG)
        try:
            response = httpx.get(f"{base.rstrip('/')}/api/unmatched", headers=headers, timeout=10)
        except httpx.HTTPError as exc:
            problem = f"the service does not answer at {base} ({exc})"
        else:
            if response.status_code == 200:
                data: dict[str, Any] = response.json()
                return data
            problem = f"{base}/api/unmatched answered {response.status_code}"
    path = inventory_path(config.spool.path or default_spool_path())
    inventory = Inventory.from_settings(config.unmatched)
    try:
        found = inventory.load(path)
    except (OSError, ValueError) as exc:
        _fail(f"{problem}, and {exc}", EXIT_CONFIG)
    if not found:
        _fail(f"{problem}, and no inventory was saved at {path} (is the service configured with this file?)",
              EXIT_CONFIG)  # fmt: skip
    import time

    age = time.time() - path.stat().st_mtime
    click.echo(f"({problem}: showing the inventory it saved in {path}, {age:.0f} s ago)", err=True)
    return unmatched_json(inventory)


@main.command("import")
@_CONFIG_OPTION
@click.argument("files", nargs=-1, required=True)
@click.option("--year", type=click.IntRange(1970, 9999), default=None, help="The year of every yearless timestamp.")
@click.option("--timezone", default=None, help="Zone of timestamps that carry none (default: the configuration's).")
@click.option("--host", default="", help="The host for lines that name none (Where).")
@click.option("--since", default=None, help="Import lines from this ISO date/time on.")
@click.option("--until", default=None, help="Import lines before this ISO date/time.")
@click.option("--dry-run", is_flag=True, help="Write nothing; print what would be imported.")
@click.option("--direct", is_flag=True, help="Deliver the spooled records too (only when no service runs).")
@click.option("--no-progress", is_flag=True, help="No progress bars (they are off when stderr is not a terminal).")
@click.option(
    "--jobs",
    type=click.IntRange(1, 256),
    default=None,
    help="Worker processes parsing and mapping lines (default: one per core; 1: none, this process does it).",
)
def import_command(
    config_path: Path | None,
    files: tuple[str, ...],
    year: int | None,
    timezone: str | None,
    host: str,
    since: str | None,
    until: str | None,
    dry_run: bool,
    direct: bool,
    no_progress: bool,
    jobs: int | None,
) -> None:
    """Import existing log files (globs; - for stdin; .gz, .bz2, .xz read as they are) into the
    spool with the configuration's rules, resumable and without duplicates.

    Rotated sets go oldest first. A timestamp without a year takes the year its file implies
    (backwards from the file's modification time). Each record carries an `Import fingerprint`
    detail; a fingerprint already spooled is never written again, so a repeated or interrupted
    import is safe to run again. A running service delivers what is spooled; --direct does it
    here.
    """
    from datetime import datetime

    from parsers.syslog import zone_for

    from .importing.command import ImportOptions, run_import
    from .importing.workers import default_jobs

    config = _config_or_exit(config_path)

    def moment(value: str | None, key: str) -> datetime | None:
        if value is None:
            return None
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            _fail(ConfigError(f"not an ISO 8601 date or time: {value!r}", key=key))
        return when if when.tzinfo else when.replace(tzinfo=tz)

    try:
        tz = zone_for(timezone or config.timezone)
    except ValueError as exc:
        _fail(ConfigError(str(exc), key="--timezone"))
    options = ImportOptions(
        patterns=files,
        tz=tz,
        year=year,
        host=host,
        since=moment(since, "--since"),
        until=moment(until, "--until"),
        dry_run=dry_run,
        direct=direct,
        progress=not no_progress and sys.stderr.isatty(),
        jobs=jobs if jobs is not None else default_jobs(),
    )
    if dry_run and direct:
        raise click.UsageError("--dry-run writes nothing for --direct to deliver")
    try:
        run_import(config, options)
    except (ConfigError, StartupError) as exc:
        _fail(exc)
    except KeyboardInterrupt:
        click.echo(
            "nwsyslog: import interrupted; what was read so far is spooled, and the same command continues "
            "where it stopped",
            err=True,
        )
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
