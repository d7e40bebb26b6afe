"""The `nwsyslog` command. Exit codes: 0 ok, 1 runtime error, 2 configuration error, 3 startup failure."""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path

import click

from .errors import ConfigError, StartupError
from .loop import run

EXIT_RUNTIME = 1
EXIT_CONFIG = 2
EXIT_STARTUP = 3


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT` or `[IPv6]:PORT` into (host, port); raises ConfigError."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"expected HOST:PORT (e.g. 127.0.0.1:9699 or [::1]:9699), got {value!r}", key="--listen")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nwsyslog")
@click.option(
    "--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"])
)
def main(log_level: str) -> None:
    """Syslog from Cisco IOS and Linux hosts into Netwrix Auditor Activity Records."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


@main.command()
@click.option("--listen", default="127.0.0.1:9699", show_default=True, help="HOST:PORT; port 0 picks a free one.")
@click.option("--db", default=":memory:", show_default=True, help="SQLite file keeping records across restarts.")
@click.option("--user", default=None, metavar="NAME:PASSWORD", help="Require this user (401 otherwise).")
@click.option("--auth-scheme", type=click.Choice(["basic", "digest"]), default="basic", show_default=True)
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
@click.option("--latency-ms", type=click.FloatRange(min=0), default=0.0, show_default=True)
@click.option("--page-size", type=click.IntRange(min=1), default=1000, show_default=True, help="enum page size.")
@click.option("--tls", is_flag=True, help="Serve HTTPS with a generated self-signed certificate.")
@click.option("--tls-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help="Keep the cert here.")
@click.option("--seed", type=int, default=None, help="Seed for the fault dice (repeatable runs).")
def emulator(
    listen: str,
    db: str,
    user: str | None,
    auth_scheme: str,
    max_body_bytes: int | None,
    fail_rate: float,
    fail_status: str,
    fail_phase: str,
    latency_ms: float,
    page_size: int,
    tls: bool,
    tls_dir: Path | None,
    seed: int | None,
) -> None:
    """Run a Netwrix Auditor Integration API emulator (write, enum, search)."""
    from .emulator import EmulatorServer, EmulatorSettings, self_signed_certificate
    from .emulator.app import API
    from .tls import colon_hex

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
            latency_ms=latency_ms,
            page_size=page_size,
            seed=seed,
        )
        with tempfile.TemporaryDirectory(prefix="nwsyslog-emulator-") as tmp:
            cert = self_signed_certificate(tls_dir or Path(tmp), [host]) if tls else None
            server = EmulatorServer(settings, host, port, cert)
            click.echo(f"nwsyslog emulator listening on {server.base_url}")
            click.echo(f"  write: POST {server.base_url}{API}/   (also {API}/write)")
            click.echo(f"  enum:  GET  {server.base_url}{API}/enum?format=json&count=1000")
            click.echo(f"  stats: GET  {server.base_url}/_emulator/stats")
            if cert is not None:
                click.echo(f"  certificate: {cert.cert_file}")
                click.echo(f"  thumbprint SHA-1:   {colon_hex(cert.sha1)}")
                click.echo(f"  thumbprint SHA-256: {colon_hex(cert.sha256)}")
            sys.stdout.flush()
            run(server.serve())
    except ConfigError as exc:
        click.echo(f"nwsyslog: {exc}", err=True)
        sys.exit(EXIT_CONFIG)
    except StartupError as exc:
        click.echo(f"nwsyslog: {exc}", err=True)
        sys.exit(EXIT_STARTUP)


if __name__ == "__main__":  # pragma: no cover
    main()
