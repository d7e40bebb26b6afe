"""End to end over real sockets and processes: emulator + `nwsyslog run` + `nwsyslog send`.

Each test runs the service as a separate process with its own spool file, sends syslog over
UDP or TCP, and reads what arrived through the emulator's enum endpoint.
"""

from __future__ import annotations

import collections
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ingestor.emulator.process import EmulatorProcess
from ingestor.sender import Sender
from ingestor.spool import Spool
from parsers.rules.loader import load_ruleset
from parsers.rules.testing import ExplainOptions, explain_lines
from tests.conftest import enum_all

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServiceProcess:
    """`nwsyslog run --config FILE` in its own process, with the ports it announced."""

    def __init__(self, config: Path, *, new_session: bool = False) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ingestor.cli", "run", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=new_session,  # its own process group, as a terminal's job
        )
        assert self.proc.stdout is not None
        self.ports: dict[str, int] = {}
        self.metrics_port: int | None = None
        for line in self.proc.stdout:
            m = re.search(r"listening on (\w+)://[^:]+:(\d+)", line)
            if m:
                self.ports[m.group(1)] = int(m.group(2))
            m = re.search(r"metrics on port (\d+)", line)
            if m:
                self.metrics_port = int(m.group(1))
            if "nwsyslog: spool" in line:
                break
        else:
            self.proc.wait(10)
            raise AssertionError(f"the service did not start: {self.proc.stderr.read() if self.proc.stderr else ''}")

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return self.proc.returncode, err


def write_config(tmp: Path, emulator_url: str, **extra: str) -> Path:
    path = tmp / "nwsyslog.yaml"
    path.write_text(
        f"""
listeners: [udp://127.0.0.1:0, tcp://127.0.0.1:0]
netwrix:
  url: {emulator_url}
  retry: {{base: 0.05, cap: 0.5}}
batching: {{linger: 0.1}}
records: {{monitoring_plan: Syslog, item: e2e}}
spool: {{path: {tmp / "spool.db"}}}
metrics: {{listen: "127.0.0.1:0"}}
shutdown_timeout: 5
"""
        + "".join(f"{k}: {v}\n" for k, v in extra.items())
    )
    return path


def expected_records(*files: Path) -> int:
    ruleset = load_ruleset()
    lines = [line for f in files for line in f.read_bytes().splitlines() if line.strip()]
    return sum("record" in obj for obj in explain_lines(ruleset, lines, ExplainOptions()))


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def sudo_lines(start: int, n: int) -> list[bytes]:
    """n distinct lines, each mapping to one record whose What is "/bin/echo <i>"."""
    return [
        b"<86>Mar  4 10:00:01 app01 sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/echo %d" % i
        for i in range(start, start + n)
    ]


def whats(records: list[dict[str, Any]]) -> collections.Counter[str]:
    return collections.Counter(r["What"] for r in records)


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorProcess]:
    with EmulatorProcess("--db", str(tmp_path / "emulator.db")) as emu:
        yield emu


def test_udp_and_tcp_syslog_arrive_as_records(tmp_path: Path, emulator: EmulatorProcess) -> None:
    service = ServiceProcess(write_config(tmp_path, emulator.url))
    try:
        samples = sorted(SAMPLES.glob("*.log"))
        for scheme in ("udp", "tcp"):
            for sample in samples:
                subprocess.run(
                    [sys.executable, "-m", "ingestor.cli", "send", "--to", f"{scheme}://127.0.0.1:{service.ports[scheme]}",
                     str(sample)],
                    check=True, capture_output=True, timeout=60,
                )  # fmt: skip
        expected = 2 * expected_records(*samples)
        wait_for(lambda: len(enum_all(emulator.url)) >= expected, 60, f"{expected} records")
        records = enum_all(emulator.url)
        assert len(records) == expected
        assert all(
            r["MonitoringPlan"] == {"Name": "Syslog"} and r["Item"] == {"Name": "e2e (Integration)"} for r in records
        )
        assert {r["ObjectType"] for r in records} >= {"sudo", "Configuration", "Logon"} or records
    finally:
        code, err = service.stop()
    assert code == 0, err
    assert "0 records not yet acknowledged" in err or "spool closed with 0 records" in err


def test_an_outage_of_30_s_loses_nothing(tmp_path: Path) -> None:
    port = free_port()
    emulator = EmulatorProcess("--db", str(tmp_path / "emulator.db"), listen=f"127.0.0.1:{port}")
    service = ServiceProcess(write_config(tmp_path, emulator.url))
    try:
        with Sender("tcp", "127.0.0.1", service.ports["tcp"]) as sender:
            sender.replay(sudo_lines(0, 500))
            wait_for(lambda: len(enum_all(emulator.url)) >= 500, 60, "the first 500 records")
            emulator.stop()
            sender.replay(sudo_lines(500, 1500))  # sent while Netwrix is down: spooled, retried
            time.sleep(30)
        emulator = EmulatorProcess("--db", str(tmp_path / "emulator.db"), listen=f"127.0.0.1:{port}")
        wait_for(lambda: len(enum_all(emulator.url)) >= 2000, 90, "all 2,000 records after the outage")
        got = whats(enum_all(emulator.url))
        assert set(got) == {f"/bin/echo {i}" for i in range(2000)}, "nothing lost"
        assert sum(got.values()) - len(got) <= 1000, "duplicates bounded by what was in flight"
    finally:
        code, err = service.stop()
        emulator.stop()
    assert code == 0, err


def test_kill_9_under_load_then_restart_delivers_everything_spooled(tmp_path: Path, emulator: EmulatorProcess) -> None:
    config = write_config(tmp_path, emulator.url)
    service = ServiceProcess(config)
    total = 20000
    lines = sudo_lines(0, total)
    errors: list[BaseException] = []

    def load() -> None:
        try:
            with Sender("tcp", "127.0.0.1", service.ports["tcp"]) as sender:
                sender.replay(lines, rate=8000)
        except OSError as exc:  # the connection dies with the service
            errors.append(exc)

    sender = threading.Thread(target=load)
    sender.start()
    time.sleep(1.5)
    os.kill(service.proc.pid, signal.SIGKILL)
    service.proc.wait(10)
    sender.join(60)
    service.stop()
    # What the killed process had committed: delivered already, or still in the spool file.
    delivered_before = whats(enum_all(emulator.url))
    with Spool(tmp_path / "spool.db", fmt="xml") as spool:
        left = [data for _, data in spool.read_after(0, 10**6)]
    spooled = set(delivered_before) | {re.search(rb"<What>([^<]*)</What>", d).group(1).decode() for d in left}  # type: ignore[union-attr]
    assert len(spooled) > 1000, "the kill came under load"
    restarted = ServiceProcess(config)
    try:
        wait_for(lambda: set(whats(enum_all(emulator.url))) >= spooled, 90, "every spooled record")
        with Spool(tmp_path / "spool.db", fmt="xml") as spool:
            wait_for(lambda: spool.stats().records == 0, 30, "an empty spool")
    finally:
        code, err = restarted.stop()
    assert code == 0, err
    got = whats(enum_all(emulator.url))
    duplicates = sum(got.values()) - len(got)
    assert duplicates <= 5000, f"{duplicates} duplicates: more than a few batches were resent"


def delivery_process(service: ServiceProcess) -> int:
    """The pid of the service's delivery process (a multiprocessing child, among its children)."""
    for child in Path(f"/proc/{service.proc.pid}/task/{service.proc.pid}/children").read_text().split():
        if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
            return int(child)
    raise AssertionError("no delivery process")


def test_ctrl_c_right_after_a_burst_delivers_everything_that_reached_the_sockets(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    """A terminal's Ctrl-C (SIGINT to the process group) the moment the senders are done: the
    listeners read what is still in the socket buffers before closing, and the delivery process
    (which the signal reaches too) waits for the service's order, so all of it is delivered
    before the exit."""
    config = write_config(tmp_path, emulator.url)
    text = config.read_text().replace("udp://127.0.0.1:0", "{url: 'udp://127.0.0.1:0', receive_buffer: 4194304}")
    config.write_text(text)
    service = ServiceProcess(config, new_session=True)
    with Sender("tcp", "127.0.0.1", service.ports["tcp"]) as sender:
        sender.replay(sudo_lines(0, 3000))
    with Sender("udp", "127.0.0.1", service.ports["udp"]) as sender:
        sender.replay(sudo_lines(3000, 2000))  # as fast as it goes: most of it still in the socket
    os.killpg(service.proc.pid, signal.SIGINT)
    code, err = service.stop()
    assert code == 0, err
    assert "spool closed with 0 records waiting" in err, err
    assert len(whats(enum_all(emulator.url))) == 5000


def test_if_the_delivery_process_is_killed_a_new_one_takes_over(tmp_path: Path, emulator: EmulatorProcess) -> None:
    """The watchdog starts a new delivery process (the service keeps running), says so, and a
    stop still ends with exit code 0."""
    service = ServiceProcess(write_config(tmp_path, emulator.url))
    first = delivery_process(service)
    os.kill(first, signal.SIGKILL)

    def current() -> int | None:
        try:
            return delivery_process(service)
        except (AssertionError, OSError):
            return None

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and current() in (first, None):
        time.sleep(0.2)
    assert service.proc.poll() is None, "the service keeps running"
    assert current() not in (first, None)
    code, err = service.stop()
    assert code == 0, err
    assert "the delivery process ended (exit code -9); starting a new one" in err


def test_a_bad_config_is_one_clear_message_and_exit_code_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("listeners:\n  - udp://127.0.0.1:5514\nnetwrix:\n  url: ftp://nowhere\n")
    for command in (["run", "--config", str(bad)], ["check-config", str(bad)]):
        proc = subprocess.run(
            [sys.executable, "-m", "ingestor.cli", *command], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 2
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert f"{bad}:4: netwrix.url:" in lines[0] and "https://HOST:9699" in lines[0]


def test_workers_share_the_udp_port_and_lose_nothing(tmp_path: Path, emulator: EmulatorProcess) -> None:
    port = free_port()
    config = tmp_path / "workers.yaml"
    config.write_text(
        f"listeners: [udp://127.0.0.1:{port}]\nnetwrix: {{url: {emulator.url}}}\nbatching: {{linger: 0.1}}\n"
        f"spool: {{path: {tmp_path / 'spool.db'}}}\nmetrics: {{listen: null}}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingestor.cli", "run", "--config", str(config), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        seen = 0
        for line in proc.stdout:
            seen += "nwsyslog: spool" in line
            if seen == 2:
                break
        for i in range(20):  # a new socket (source port) each time: the kernel spreads them
            with Sender("udp", "127.0.0.1", port) as sender:
                sender.replay(sudo_lines(i * 10, 10))
        wait_for(lambda: len(enum_all(emulator.url)) >= 200, 60, "200 records")
        assert set(whats(enum_all(emulator.url))) == {f"/bin/echo {i}" for i in range(200)}
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert (tmp_path / "spool.db").exists() and (tmp_path / "spool-w1.db").exists()
