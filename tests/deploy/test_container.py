"""deploy/Dockerfile says what the image does: its default configuration is valid and listens
where EXPOSE and HEALTHCHECK say, and the build context leaves the clutter out.

No Docker engine runs here, so the image itself is not built; the files it is made of are
checked against each other, and the configuration it runs by default is started for real."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml
from click.testing import CliRunner

from ingestor.cli import main
from ingestor.config import parse_host_port, parse_listener_url
from tests.e2e.test_service import wait_for

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "deploy" / "Dockerfile").read_text()


def final_stage() -> str:
    return DOCKERFILE.rsplit("\nFROM ", 1)[1]


def exposed() -> set[tuple[int, str]]:
    (line,) = [line for line in final_stage().splitlines() if line.startswith("EXPOSE ")]
    ports = {(int(p.split("/")[0]), p.split("/")[1] if "/" in p else "tcp") for p in line.split()[1:]}
    return ports


def default_config() -> tuple[Path, dict[str, object]]:
    """The file the image copies to the path its CMD reads."""
    (copy,) = re.findall(r"^COPY (deploy/\S+) (\S+)$", final_stage(), re.M)
    cmd = re.search(r"^CMD \[(.*)\]$", final_stage(), re.M)
    assert cmd is not None and f'"{copy[1]}"' in cmd[1]
    path = ROOT / copy[0]
    return path, yaml.safe_load(path.read_text())


def test_the_default_configuration_is_valid_and_listens_where_expose_says() -> None:
    path, config = default_config()
    result = CliRunner().invoke(main, ["check-config", str(path)])
    assert result.exit_code == 0, result.output
    listeners = {parse_listener_url(url) for url in config["listeners"]}  # type: ignore[union-attr]
    wanted = {(port, "udp" if scheme == "udp" else "tcp") for scheme, _, port in listeners}
    metrics = parse_host_port(config["metrics"]["listen"])  # type: ignore[index]
    emulator = parse_host_port(config["emulator_listen"])  # type: ignore[arg-type]
    wanted |= {(metrics[1], "tcp"), (emulator[1], "tcp")}
    assert wanted == exposed()
    # Reachable from outside the container: every address, not loopback.
    assert {host for _, host, _ in listeners} == {"0.0.0.0"} and metrics[0] == emulator[0] == "0.0.0.0"
    health = re.search(r"HEALTHCHECK .*http://127\.0\.0\.1:(\d+)/healthz", final_stage())
    assert health is not None and int(health[1]) == metrics[1]


def test_the_comments_name_the_ports_the_image_uses() -> None:
    header = DOCKERFILE.split("\nFROM ", 1)[0]
    for port, _ in exposed():
        assert str(port) in header


def test_the_build_context_leaves_out_git_venvs_caches_and_build_output() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv", "build", "dist", "*.egg-info", "**/__pycache__", "tests"} <= ignored
    # What the build stage needs stays in.
    for needed in ("pyproject.toml", "README.md", "LICENSE", "ingestor", "parsers", "rules", "samples", "deploy"):
        assert needed not in ignored and (ROOT / needed).exists()


def test_the_default_configuration_runs_the_demo(tmp_path: Path) -> None:
    """The image's default, started as the image starts it (ports moved to free ones, since
    this machine may use the image's): syslog in, records at the emulator, /healthz on the
    metrics port."""
    path, _ = default_config()
    free = []
    for _ in range(3):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            free.append(s.getsockname()[1])
    syslog, metrics, api = free
    text = path.read_text().replace(":5514", f":{syslog}").replace(":9102", f":{metrics}").replace(":9699", f":{api}")
    config = tmp_path / "nwsyslog.yaml"
    config.write_text(text + f"spool:\n  path: {tmp_path / 'spool.db'}\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingestor.cli", "run", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:

        def ready() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{metrics}/readyz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, 30, "/readyz")
        assert httpx.get(f"http://127.0.0.1:{metrics}/healthz").status_code == 200
        lines = [
            b"<86>Mar  4 10:00:01 app01 sudo:  alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/ls",
            b"<189>12: core-sw1: *Mar  4 10:00:02.345: %SYS-5-CONFIG_I: Configured from console by bob on vty0",
        ]
        with socket.create_connection(("127.0.0.1", syslog)) as tcp:
            tcp.sendall(b"".join(line + b"\n" for line in lines))
        enum = f"http://127.0.0.1:{api}/netwrix/api/v1/activity_records/enum?format=json"
        wait_for(lambda: len(httpx.get(enum).json()["ActivityRecordList"]) >= 2, 30, "two records at the emulator")
        records: list[dict[str, Any]] = httpx.get(enum).json()["ActivityRecordList"]
        # As a real Netwrix server keeps what the default configuration writes: When in whole
        # seconds, a plain Item naming the source kind (shown with its type), DataSource set
        # by the server.
        assert [r["Who"] for r in records] == ["alice", "bob"]
        assert [r["When"][-10:] for r in records] == ["T10:00:01Z", "T10:00:02Z"]
        assert [r["Item"]["Name"] for r in records] == ["Privileged Linux (Integration)", "Cisco IOS (Integration)"]
        assert {r["DataSource"] for r in records} == {"Netwrix API"}
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
