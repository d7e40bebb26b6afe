"""`nwsyslog import`'s core over real files and a real spool: rotation, period, host, dry run."""

from __future__ import annotations

import gzip
import io
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from ingestor.config import load_service_config
from ingestor.importing.command import ImportOptions, run_import
from ingestor.spool import Spool

LINES = [
    f"Mar  {d} 10:00:0{d} web1 sudo:    alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/echo {d}"
    for d in range(1, 6)
] + ["Mar  6 10:00:00 web1 kernel: eth0: link up"]


def setup(tmp_path: Path) -> tuple[Path, Path]:
    config = tmp_path / "nwsyslog.yaml"
    config.write_text(f"listeners: [udp://127.0.0.1:0]\nspool: {{path: {tmp_path / 'spool.db'}}}\n")
    log = tmp_path / "auth.log"
    log.write_text("\n".join(LINES) + "\n")
    mtime = datetime(2026, 3, 7, tzinfo=UTC).timestamp()
    os.utime(log, (mtime, mtime))
    return config, log


def records(tmp_path: Path) -> list[bytes]:
    with Spool(tmp_path / "spool.db", fmt="xml") as spool:
        return [data for _, data in spool.read_after(0, 1000)]


def test_a_rotated_and_compressed_copy_of_an_imported_file_adds_nothing(tmp_path: Path) -> None:
    config_path, log = setup(tmp_path)
    config = load_service_config(config_path)
    options = ImportOptions(patterns=[str(log)], tz=UTC, progress=False)
    stats = run_import(config, options, out=io.StringIO())
    assert (stats.lines, stats.records, stats.written, stats.unmatched) == (6, 5, 5, 1)
    assert all(
        b"<When>2026-03-0" in r and b"<PropertyName>Import fingerprint</PropertyName>" in r for r in records(tmp_path)
    )
    # logrotate: auth.log -> auth.log.1 -> auth.log.2.gz; the same content under a new name.
    rotated = tmp_path / "auth.log.2.gz"
    rotated.write_bytes(gzip.compress(log.read_bytes()))
    log.unlink()
    again = run_import(config, ImportOptions(patterns=[str(rotated)], tz=UTC, progress=False), out=io.StringIO())
    assert again.written == 0 and len(records(tmp_path)) == 5


def test_period_host_and_dry_run(tmp_path: Path) -> None:
    config_path, log = setup(tmp_path)
    log.write_text("\n".join(line.replace(" web1 ", " ") if "echo 1" in line else line for line in LINES) + "\n")
    config = load_service_config(config_path)
    out = io.StringIO()
    options = ImportOptions(
        patterns=[str(log)], tz=UTC, host="imported-host", dry_run=True, progress=False,
        since=datetime(2026, 3, 2, tzinfo=UTC), until=datetime(2026, 3, 5, tzinfo=UTC),
    )  # fmt: skip
    stats = run_import(config, options, out=out)
    assert (stats.records, stats.outside) == (3, 3)  # Mar 2, 3, 4 inside; Mar 1, 5, 6 outside
    assert "would be written" in out.getvalue() and "privileged" in out.getvalue()
    assert not (tmp_path / "spool.db").exists()  # a dry run writes nothing
    wide = ImportOptions(patterns=[str(log)], tz=UTC, host="imported-host", progress=False)
    run_import(config, wide, out=io.StringIO())
    first = next(r for r in records(tmp_path) if b"/bin/echo 1<" in r)
    assert b"<Where>imported-host</Where>" in first  # the line named no host


def test_a_file_out_of_time_order_dates_each_line_by_its_mtime(tmp_path: Path) -> None:
    """Concatenated logs: the month goes down too often for New Years, so each line is dated on
    its own, no later than the file's mtime (Mar 7, 2026): March to January in 2026, December
    in 2025, whatever the order."""
    config_path, log = setup(tmp_path)
    months = ["Mar", "Feb", "Jan"] * 6 + ["Dec"]
    log.write_text("".join(LINES[0].replace("Mar ", f"{m} ").replace("echo 1", f"echo {i}") + "\n"
                           for i, m in enumerate(months)))  # fmt: skip
    os.utime(log, (datetime(2026, 3, 7, tzinfo=UTC).timestamp(),) * 2)
    out = io.StringIO()
    stats = run_import(load_service_config(config_path), ImportOptions([str(log)], tz=UTC, progress=False), out=out)
    assert stats.records == len(months) and "out of time order" in out.getvalue()
    when = {m.group(2): m.group(1) for r in records(tmp_path) if (m := re.search(rb"<When>(\d{4}).*echo (\d+)<", r))}
    assert when == {str(i).encode(): b"2025" if m == "Dec" else b"2026" for i, m in enumerate(months)}


def test_worker_processes_import_exactly_what_one_process_does(tmp_path: Path) -> None:
    """`--jobs 3` (forked workers mapping chunks) and `--jobs 1` spool the same records in the
    same order, over files of more chunks than workers."""
    from ingestor.importing.importer import BATCH_LINES

    logs = tmp_path / "logs"
    logs.mkdir()
    count = BATCH_LINES * 4 + 7
    lines = [LINES[i % len(LINES)].replace("echo", f"echo {i} ") for i in range(count)]
    (logs / "auth.log.1.gz").write_bytes(gzip.compress(("\n".join(lines[: count // 2]) + "\n").encode()))
    (logs / "auth.log").write_text("\n".join(lines[count // 2 :]) + "\n")
    spooled = {}
    for jobs in ("1", "3"):
        folder = tmp_path / jobs
        folder.mkdir()
        config = folder / "nwsyslog.yaml"
        config.write_text(f"listeners: [udp://127.0.0.1:0]\nspool: {{path: {folder / 'spool.db'}}}\ntimezone: UTC\n")
        done = subprocess.run(
            [sys.executable, "-m", "ingestor.cli", "import", "--config", str(config), "--no-progress", "--jobs", jobs,
             "--year", "2026", str(logs / "auth.log*")],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert ("3 worker processes" in done.stdout) == (jobs == "3")
        with Spool(folder / "spool.db", fmt="xml") as spool:
            spooled[jobs] = [data for _, data in spool.read_after(0, count)]
    sudo = sum(1 for i in range(count) if "sudo" in LINES[i % len(LINES)])
    assert len(spooled["1"]) == sudo and spooled["1"] == spooled["3"]


def test_a_file_with_the_same_first_line_as_an_imported_one_is_imported_from_its_start(tmp_path: Path) -> None:
    """The first line is a file's identity through rotation; two different files that share it
    (here a banner) are told apart by their first bytes, and the second is not skipped as
    "imported before"."""
    config_path, log = setup(tmp_path)
    banner = "Mar  1 00:00:00 web1 syslogd: restart"
    log.write_text(banner + "\n" + "\n".join(LINES[:2]) + "\n")
    config = load_service_config(config_path)
    assert run_import(config, ImportOptions([str(log)], tz=UTC, progress=False), out=io.StringIO()).written == 2
    other = tmp_path / "other.log"
    other.write_text(banner + "\n" + "\n".join(line.replace("alice", "bob") for line in LINES[2:5]) + "\n")
    out = io.StringIO()
    stats = run_import(config, ImportOptions([str(other)], tz=UTC, progress=False), out=out)
    assert stats.written == 3 and "is another file" in out.getvalue()
    assert sum(b"<Who>bob</Who>" in r for r in records(tmp_path)) == 3
    # The first file, grown since: the progress kept is the other's now, so it is read from its
    # start again, and only its new line is written.
    log.write_text(log.read_text() + LINES[4] + "\n")
    again = run_import(config, ImportOptions([str(log)], tz=UTC, progress=False), out=io.StringIO())
    assert (again.lines, again.records, again.written) == (4, 3, 1)
    # Imported once more, it continues where it stopped.
    log.write_text(log.read_text() + LINES[0].replace("alice", "dave") + "\n")
    out = io.StringIO()
    last = run_import(config, ImportOptions([str(log)], tz=UTC, progress=False), out=out)
    assert (last.lines, last.written) == (1, 1) and "continuing at byte" in out.getvalue()


def test_an_unfinished_last_line_of_a_file_being_written_waits_for_its_rest(tmp_path: Path) -> None:
    """A plain file modified a moment ago whose last line has no newline yet: that line is left
    for the next import, which reads it whole; the same line in a file untouched for long is a line."""
    config_path, log = setup(tmp_path)
    whole = LINES[1]
    log.write_text(LINES[0] + "\n" + whole[:40])  # mtime now: being written
    config = load_service_config(config_path)
    out = io.StringIO()
    stats = run_import(config, ImportOptions([str(log)], tz=UTC, progress=False), out=out)
    assert (stats.lines, stats.written) == (1, 1) and "no newline yet" in out.getvalue()
    log.write_text(LINES[0] + "\n" + whole + "\n")
    again = run_import(config, ImportOptions([str(log)], tz=UTC, progress=False), out=io.StringIO())
    assert (again.lines, again.written) == (1, 1)
    assert sum(b"/bin/echo 2<" in r for r in records(tmp_path)) == 1
    # Untouched for a day, a last line without a newline is a line.
    old = tmp_path / "old.log"
    old.write_text(LINES[2].replace("alice", "carol"))
    os.utime(old, (datetime(2026, 3, 7, tzinfo=UTC).timestamp(),) * 2)
    assert run_import(config, ImportOptions([str(old)], tz=UTC, progress=False), out=io.StringIO()).written == 1
