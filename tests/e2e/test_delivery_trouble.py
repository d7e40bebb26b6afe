"""Netwrix down, then up, as an operator watching `nwsyslog run` sees it: the log, /readyz and
the delivery-state gauge (the service and the emulator as real processes)."""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path

import httpx

from ingestor.emulator.process import EmulatorProcess
from ingestor.sender import Sender
from tests.conftest import enum_all
from tests.e2e.test_service import ServiceProcess, free_port, sudo_lines, wait_for


def readyz(port: int) -> tuple[int, str]:
    r = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
    return r.status_code, r.text.strip()


def state(port: int) -> str:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    [current] = re.findall(r'^nwsyslog_delivery_state\{state="(\w+)"\} 1\.0$', text, re.MULTILINE)
    return current


def test_netwrix_down_then_up_is_one_warning_a_retrying_state_and_one_recovery_line(tmp_path: Path) -> None:
    netwrix, metrics = free_port(), free_port()
    config = tmp_path / "nwsyslog.yaml"
    config.write_text(
        f"""
listeners: [tcp://127.0.0.1:0]
netwrix: {{url: "http://127.0.0.1:{netwrix}", retry: {{base: 0.05, cap: 0.5}}, max_in_flight: 4}}
batching: {{linger: 0.1, max_batch_records: 50}}
records: {{monitoring_plan: Syslog, item: e2e}}
spool: {{path: {tmp_path / "spool.db"}}}
metrics: {{listen: "127.0.0.1:{metrics}"}}
shutdown_timeout: 5
"""
    )
    service = ServiceProcess(config)
    emulator: EmulatorProcess | None = None
    try:
        assert readyz(metrics) == (200, "ready") and state(metrics) == "running", "no write failed yet"
        before = time.time()
        with Sender("tcp", "127.0.0.1", service.ports["tcp"]) as sender:
            sender.replay(sudo_lines(0, 300))
        wait_for(lambda: state(metrics) == "retrying", 30, "the retrying state")
        status, why = readyz(metrics)
        match = re.fullmatch(r"delivery retrying since (\S+) \((.*)\)", why)
        assert status == 503 and match is not None, why
        assert match.group(1).endswith("+00:00") and f"127.0.0.1:{netwrix}" in match.group(2)
        assert before - 2 <= datetime.fromisoformat(match.group(1)).timestamp() <= time.time()
        time.sleep(2)  # many failed attempts on 4 workers meanwhile
        emulator = EmulatorProcess("--db", str(tmp_path / "emulator.db"), listen=f"127.0.0.1:{netwrix}")
        wait_for(lambda: len(enum_all(emulator.url)) >= 300, 60, "the 300 records")
        wait_for(lambda: state(metrics) == "running", 10, "the running state")
        assert readyz(metrics) == (200, "ready")
    finally:
        code, err = service.stop()
        if emulator is not None:
            emulator.stop()
    assert code == 0, err
    lines = [line for line in err.splitlines() if "nwsyslog.delivery" in line]
    failing = [line for line in lines if "Netwrix writes failing" in line]
    assert len(failing) == 1 and " WARNING nwsyslog.delivery: Netwrix writes failing (" in failing[0], lines
    assert failing[0].endswith("): retrying with backoff; 300 records waiting"), failing[0]
    [recovered] = [line for line in lines if "delivering again" in line]
    assert re.search(
        r" WARNING nwsyslog.delivery: delivering again; 300 records waited \d+\.\ds \(\d+ failed", recovered
    )
    assert lines.index(failing[0]) < lines.index(recovered)
    assert not [line for line in lines if "write of" in line], "each retry is not a line at the default level"
    # The shutdown's two counts say the same about the spool.
    assert re.search(r"delivery flushed in \d+\.\ds: 0 records stay spooled for the next start \(0 of them", err), err
    assert "spool closed with 0 records waiting" in err
