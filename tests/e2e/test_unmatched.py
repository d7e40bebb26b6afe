"""The unmatched inventory end to end: a running service, `nwsyslog unmatched`, a drafted rule.

Lines of a program no rule knows go to a real service over UDP; `nwsyslog unmatched` (a separate
process asking the service's metrics listener) lists their shape with its count and samples;
`--draft` gives a rule which, with its TODOs filled in here, passes `nwsyslog test-rules` and maps
those lines; after SIGHUP with that rule folder the shape leaves the inventory and the lines
become records; the inventory survives a restart.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from ingestor.emulator.process import EmulatorProcess
from ingestor.sender import Sender
from tests.conftest import enum_all
from tests.e2e.test_service import ServiceProcess, emulator, wait_for, write_config

__all__ = ["emulator"]  # the fixture, imported for the tests below

LINES = [
    b"<13>Dec  2 10:00:01 web1 frobnicator[12]: user alice frobbed widget 41 from 192.0.2.7",
    b"<13>Dec  2 10:00:02 web2 frobnicator[13]: user bob frobbed widget 42 from 192.0.2.8",
    b"<13>Dec  2 10:00:03 web1 frobnicator[14]: user carol frobbed widget 43 from 192.0.2.9",
]


def nwsyslog(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ingestor.cli", *args], capture_output=True, text=True, timeout=120)


def start(config: Path) -> tuple[ServiceProcess, str]:
    service = ServiceProcess(config)
    port = service.metrics_port
    assert port is not None, "the service announced no metrics port"
    return service, f"127.0.0.1:{port}"


def send(service: ServiceProcess, lines: list[bytes]) -> None:
    with Sender("udp", "127.0.0.1", service.ports["udp"]) as sender:
        sender.replay(lines)


def inventory(address: str) -> dict[str, Any]:
    data: dict[str, Any] = httpx.get(f"http://{address}/api/unmatched", timeout=10).json()
    return data


def fill_todos(draft: str) -> str:
    """What a person decides: the Action, the ObjectType and the description."""
    return (
        draft.replace("Action: TODO", "Action: Modified")
        .replace("ObjectType: TODO", "ObjectType: Widget")
        .replace("'TODO: what this event is'", "A widget was frobbed")
    )


def test_unmatched_lists_a_new_programs_shape_and_its_draft_rule_maps_it(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    config = write_config(tmp_path, emulator.url, accept="[127.0.0.1/32]")
    service, address = start(config)
    try:
        send(service, LINES)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
            other.bind(("127.0.0.2", 0))  # a sender the accept list refuses
            other.sendto(LINES[0], ("127.0.0.1", service.ports["udp"]))
        wait_for(lambda: inventory(address)["total"] == 3, 20, "three unmatched messages in the inventory")
        wait_for(lambda: bool(inventory(address)["refused"]), 20, "the refused sender")

        listing = nwsyslog("unmatched", "--config", str(config), "--url", address)
        assert listing.returncode == 0, listing.stderr
        rows = [line for line in listing.stdout.splitlines() if "frobnicator" in line and "e.g." not in line]
        assert len(rows) == 1, listing.stdout
        shape_id, count, kind, key = rows[0].split()[:4]
        assert (count, kind, key) == ("3", "syslog", "frobnicator")
        assert "user <*> frobbed widget <*> from <*>" in rows[0]
        for line in LINES:  # the samples, as received
            assert f"e.g. {line.decode()}" in listing.stdout
        assert re.search(r"^127\.0\.0\.2\s+1\s+\S+\s+udp://127\.0\.0\.1:\d+$", listing.stdout, re.M), listing.stdout

        draft = nwsyslog("unmatched", "--config", str(config), "--url", address, "--draft", shape_id)
        assert draft.returncode == 0, draft.stderr
        assert "Action: TODO" in draft.stdout and "ObjectType: TODO" in draft.stdout
        folder = tmp_path / "my-rules"
        folder.mkdir()
        (folder / "frobnicator.yaml").write_text(draft.stdout)
        unfinished = nwsyslog("test-rules", str(folder))
        assert unfinished.returncode != 0  # TODOs left: refused

        (folder / "frobnicator.yaml").write_text(fill_todos(draft.stdout))
        tested = nwsyslog("test-rules", str(folder))
        assert tested.returncode == 0, tested.stdout + tested.stderr
        assert "ok: " in tested.stdout

        parsed = subprocess.run(
            [sys.executable, "-m", "ingestor.cli", "parse", "--rules", str(folder), "--explain", "-"],
            input=b"\n".join(LINES),
            capture_output=True,
            timeout=120,
        )
        objects = [json.loads(line) for line in parsed.stdout.splitlines()]
        assert [o.get("rule") for o in objects] == ["local.frobnicator.user_frobbed_widget"] * 3
        assert [o["record"]["Who"] for o in objects] == ["alice", "bob", "carol"]
        assert [o["record"]["Workstation"] for o in objects] == ["192.0.2.7", "192.0.2.8", "192.0.2.9"]

        # The rule folder in the configuration, SIGHUP: the shape is mapped now, so it leaves the
        # inventory, and the same lines become records.
        config.write_text(config.read_text() + f"rules: {{paths: [{folder}]}}\n")
        service.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: inventory(address)["shapes_total"] == 0, 20, "the mapped shape to leave the inventory")
        send(service, LINES)
        wait_for(
            lambda: sum(r.get("ObjectType") == "Widget" for r in enum_all(emulator.url)) == 3,
            30,
            "three Widget records",
        )
    finally:
        code, err = service.stop()
    assert code == 0, err


def test_the_inventory_survives_a_restart_and_is_read_from_disk_when_the_service_is_down(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    config = write_config(tmp_path, emulator.url)
    service, address = start(config)
    try:
        send(service, LINES)
        wait_for(lambda: inventory(address)["total"] == 3, 20, "three unmatched messages")
        before = inventory(address)["shapes"]
    finally:
        code, err = service.stop()
    assert code == 0, err

    # Down: the CLI says so and lists what the service saved beside its spool.
    offline = nwsyslog("unmatched", "--config", str(config), "--url", address, "--json")
    assert offline.returncode == 0, offline.stderr
    assert "does not answer" in offline.stderr
    saved = json.loads(offline.stdout)["shapes"]
    assert [(s["id"], s["count"], s["template"]) for s in saved] == [
        (s["id"], s["count"], s["template"]) for s in before
    ]

    service, address = start(config)
    try:
        send(service, LINES[:1])
        wait_for(lambda: inventory(address)["total"] == 4, 20, "the fourth message counted on the restored shape")
        after = inventory(address)["shapes"]
        assert [(s["id"], s["count"]) for s in after] == [(before[0]["id"], 4)]
    finally:
        code, err = service.stop()
    assert code == 0, err
