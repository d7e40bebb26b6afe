"""`nwsyslog import` end to end: a rotated, partly gzip'ed set of real files, interrupted with
SIGINT in its first run, imported again with --direct, and a third time: the emulator holds every
record exactly once, each with the year its file implies."""

from __future__ import annotations

import gzip
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ingestor.emulator.process import EmulatorProcess
from tests.conftest import enum_all

# (file, first line's time, lines, modification time): Dec 2025 -> Feb 2026, a year boundary
# inside the oldest file, which is gzip'ed like the next one.
FILES = [
    ("auth.log.3.gz", datetime(2025, 12, 31, 12, 0, tzinfo=UTC), 9000, datetime(2026, 1, 7, tzinfo=UTC)),
    ("auth.log.2.gz", datetime(2026, 1, 7, 0, 0, tzinfo=UTC), 9000, datetime(2026, 1, 14, tzinfo=UTC)),
    ("auth.log.1", datetime(2026, 1, 14, 0, 0, tzinfo=UTC), 9000, datetime(2026, 1, 21, tzinfo=UTC)),
    ("auth.log", datetime(2026, 2, 1, 0, 0, tzinfo=UTC), 9000, datetime(2026, 2, 8, tzinfo=UTC)),
]
STEP = timedelta(seconds=30)


def sudo_line(when: datetime, i: int) -> str:
    return (
        f"{when:%b %e %H:%M:%S} web1 sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/echo {i}\n"
    )


def make_files(folder: Path) -> dict[str, datetime]:
    """The set, and each command's (What's) time."""
    expected: dict[str, datetime] = {}
    i = 0
    for name, start, count, mtime in FILES:
        lines = []
        for k in range(count):
            when = start + k * STEP
            lines.append(sudo_line(when, i))
            expected[f"/bin/echo {i}"] = when
            i += 1
        data = "".join(lines).encode()
        path = folder / name
        path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
        os.utime(path, (mtime.timestamp(), mtime.timestamp()))
    return expected


def nwsyslog_import(config: Path, folder: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ingestor.cli", "import", "--config", str(config), "--no-progress", *extra,
         str(folder / "auth.log*")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_an_interrupted_then_repeated_import_delivers_every_record_once_with_its_files_year(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    expected = make_files(logs)
    spool = tmp_path / "spool.db"
    with EmulatorProcess("--db", str(tmp_path / "emulator.db")) as emulator:
        config = tmp_path / "nwsyslog.yaml"
        config.write_text(
            "listeners: [udp://127.0.0.1:0]\n"
            f"netwrix: {{url: {emulator.url}, retry: {{base: 0.05, cap: 0.5}}}}\n"
            f"spool: {{path: {spool}}}\n"
            "timezone: UTC\n"
        )
        # First run: SIGINT as soon as it committed its first batch (mid-way through the set).
        first = nwsyslog_import(config, logs)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and first.poll() is None:
            try:
                with sqlite3.connect(f"file:{spool}?mode=ro", uri=True, timeout=1) as db:
                    if db.execute("SELECT count(*) FROM import_files").fetchone()[0]:
                        break
            except sqlite3.Error:
                pass
            time.sleep(0.005)
        first.send_signal(signal.SIGINT)
        out, err = first.communicate(timeout=60)
        assert first.returncode == 130, out + err
        assert "interrupted" in err and "continues where it stopped" in err
        with sqlite3.connect(spool) as db:
            spooled = db.execute("SELECT inserted FROM counts").fetchone()[0]
        assert 0 < spooled < len(expected)

        # Second run, delivering: it continues, and the emulator gets everything.
        second = nwsyslog_import(config, logs, "--direct")
        out, err = second.communicate(timeout=300)
        assert second.returncode == 0, out + err
        assert "continuing at byte" in out and "delivered: the spool is empty" in out

        # Third run: nothing new.
        third = nwsyslog_import(config, logs, "--direct")
        out, err = third.communicate(timeout=300)
        assert third.returncode == 0, out + err
        assert out.count("imported before (nothing new)") == len(FILES)

        records = enum_all(emulator.url)
    whats = Counter(r["What"] for r in records)
    assert len(records) == len(expected) and set(whats) == set(expected)
    assert max(whats.values()) == 1  # exactly once
    for record in records:
        want = expected[record["What"]]
        assert record["When"] == want.strftime("%Y-%m-%dT%H:%M:%SZ"), record
    prints = {d["After"] for r in records for d in r["DetailList"] if d["PropertyName"] == "Import fingerprint"}
    assert len(prints) == len(records)
    years = Counter(r["When"][:4] for r in records)
    assert years["2025"] == 12 * 60 * 2  # Dec 31 12:00-24:00, a line every 30 s: the rest is 2026
