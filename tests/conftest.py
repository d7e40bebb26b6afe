"""Shared fixtures: records to send and real emulators on loopback."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from ingestor.emulator import EmulatorServer, EmulatorSettings
from ingestor.emulator.app import API
from ingestor.netwrix.records import ActivityRecord

BASE_TIME = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parent.parent


def find_corpus() -> Path:
    """The syslog corpus the tests read: $NWSYSLOG_CORPUS when set, else the copy vendored in
    tests/corpus (see its SOURCES.md)."""
    override = os.environ.get("NWSYSLOG_CORPUS")
    candidate = Path(override) if override else REPO / "tests" / "corpus"
    if not (candidate / "SOURCES.md").is_file():
        raise RuntimeError(f"no syslog corpus at {candidate} (a folder with SOURCES.md): check NWSYSLOG_CORPUS")
    return candidate


def make_record(i: int = 0, **fields: Any) -> ActivityRecord:
    """A realistic record; `What` carries `i` so tests can recognise every record."""
    values: dict[str, Any] = {
        "Who": f"user{i % 50}",
        "Action": "Successful Logon",
        "What": f"session #{i} on vty0",
        "When": BASE_TIME + timedelta(seconds=i),
        "Where": "core-sw1.example.net",
        "ObjectType": "Logon",
        "Workstation": "10.0.0.5",
        "MonitoringPlan": {"Name": "Network devices"},
        "Item": {"Name": "Linux"},
        "DetailList": [{"PropertyName": "Line", "After": "vty0"}],
    }
    values.update(fields)
    return ActivityRecord(**values)


EmulatorFactory = Callable[..., EmulatorServer]


@pytest.fixture
def emulator() -> Iterator[EmulatorFactory]:
    """Start real emulators (background thread, loopback socket): `emulator(fail_rate=0.2, ...)`."""
    with ExitStack() as stack:

        def start(tls: bool = False, **settings: Any) -> EmulatorServer:
            return stack.enter_context(EmulatorServer.running(EmulatorSettings(**settings), tls=tls))

        yield start


def enum_all(base_url: str, *, auth: tuple[str, str] | None = None, verify: Any = True) -> list[dict[str, Any]]:
    """Every record the emulator holds, read page by page through the enum endpoint (JSON)."""
    records: list[dict[str, Any]] = []
    with httpx.Client(base_url=base_url, auth=auth, verify=verify, timeout=30) as http:
        page = http.get(f"{API}/enum", params={"format": "json", "count": 1000})
        while True:
            page.raise_for_status()
            doc = page.json()
            records.extend(doc["ActivityRecordList"])
            mark = doc.get("ContinuationMark")
            if mark is None:
                return records
            page = http.post(f"{API}/enum", params={"format": "json", "count": 1000}, json=mark)
