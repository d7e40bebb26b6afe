"""Faults of the host, not of Netwrix: a full or failing disk, a stalled delivery process, a stop
under back-pressure, a damaged spool, kill -9. Numbered sudo lines go in over TCP and every
number is counted at the emulator; "accepted" is what the service read (its own count), and
none of it may be lost (kill -9: at most the last commit interval and what TCP had in flight).

The filesystem faults run the service as a process of its own on a filesystem made for it
(`tests/e2e/hostfs.py`: tmpfs, or ext4 on a loop image, in a private mount namespace)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ingestor.emulator import EmulatorServer, EmulatorSettings
from ingestor.loop import run
from ingestor.spool import Spool
from tests.e2e.fault_matrix import LINE, _numbers, _texts
from tests.e2e.hostfs import HostFs
from tests.e2e.test_service import free_port, wait_for
from tests.ingestor.test_service import config, running, until

ROOT = Path(__file__).resolve().parents[2]


def figures(fault: str, sent: int, got: Counter[int], *, accepted: int | None = None, reported_lost: int = 0) -> None:
    """Record a row of the host-fault table (`python3 -m tests.e2e.fault_matrix --host` prints
    them) when NWSYSLOG_FIGURES names a file."""
    target = os.environ.get("NWSYSLOG_FIGURES")
    if not target:
        return
    import json

    base = accepted if accepted is not None else sent
    delivered_n = len(got)
    row = {
        "fault": fault,
        "sent": sent,
        "accepted": base,
        "delivered": delivered_n,
        "duplicated": sum(n - 1 for n in got.values()),
        "reported_lost": reported_lost,
        "lost": max(0, base - delivered_n - reported_lost),
    }
    with open(target, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def write_config(path: Path, spool_path: Path, url: str, tcp: int, metrics: int, **extra: Any) -> Path:
    doc: dict[str, Any] = {
        "listeners": [f"tcp://127.0.0.1:{tcp}"],
        "netwrix": {"url": url, "retry": {"base": 0.05, "factor": 2, "cap": 0.5}, "timeout": 10},
        "batching": {"max_batch_records": 200, "linger": 0.05},
        "spool": {"path": str(spool_path)},
        "metrics": {"listen": f"127.0.0.1:{metrics}"},
        "shutdown_timeout": 5,
    }
    for key, value in extra.items():
        doc[key] = {**doc.get(key, {}), **value} if isinstance(value, dict) else value
    path.write_text(yaml.safe_dump(doc))
    return path


SERVICE = [sys.executable, "-m", "ingestor.cli", "run", "--config"]


class Sender(threading.Thread):
    """Numbered lines over one TCP connection (blocking: a paused service holds it back)."""

    def __init__(self, port: int, numbers: range, rate: float | None = None, reconnect: bool = False) -> None:
        super().__init__(daemon=True)
        self.port, self.numbers, self.rate, self.reconnect = port, numbers, rate, reconnect
        self.written: list[int] = []  # numbers whose bytes the kernel took
        self.error: BaseException | None = None

    def run(self) -> None:
        sock: socket.socket | None = None
        started = time.monotonic()
        try:
            for i, n in enumerate(self.numbers):
                if self.rate:
                    delay = started + i / self.rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                while True:
                    try:
                        if sock is None:
                            sock = socket.create_connection(("127.0.0.1", self.port), timeout=120)
                        sock.sendall(LINE.format(n=n).encode() + b"\n")
                        self.written.append(n)
                        break
                    except OSError:
                        if sock is not None:
                            sock.close()
                            sock = None
                        if not self.reconnect:
                            raise
                        time.sleep(0.05)
                        break  # this line is lost to the kill; the next goes to the new service
        except BaseException as exc:
            self.error = exc
        finally:
            if sock is not None:
                sock.close()


def metric(port: int, name: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    m = re.search(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? ([0-9.e+]+)$", text, re.MULTILINE)
    return float(m.group(1)) if m else 0.0


def ready(port: int) -> tuple[int, str]:
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
    except httpx.HTTPError:
        return 0, ""
    return r.status_code, r.text


def delivered(store: Any) -> Counter[int]:
    return Counter(_numbers(_texts(store)))


@contextmanager
def emulator(down: bool = False) -> Iterator[EmulatorServer]:
    with EmulatorServer.running(EmulatorSettings(fail_rate=1.0 if down else 0.0)) as server:
        yield server


def set_up(server: EmulatorServer) -> None:
    """Netwrix comes back."""
    server.emulator.settings = dataclasses.replace(server.emulator.settings, fail_rate=0.0)


def service_ready(metrics: int, host: HostFs | subprocess.Popen[bytes], timeout: float = 60) -> None:
    wait_for(lambda: ready(metrics)[0] == 200, timeout, "the service to be ready")


def needs_mount_namespaces() -> None:
    """These tests make filesystems: root, or user namespaces (unshare -r)."""
    probe = ["unshare", "--mount", "true"] if os.geteuid() == 0 else ["unshare", "--user", "--map-root-user", "true"]
    result = subprocess.run(probe, capture_output=True, check=False)
    assert result.returncode == 0, f"cannot make a mount namespace here: {result.stderr.decode().strip()}"


# --- a full disk ------------------------------------------------------------------------------


def test_a_full_disk_with_netwrix_down_pauses_and_loses_nothing(tmp_path: Path) -> None:
    """The spool on a 4 MB filesystem and Netwrix down: the disk fills, the service keeps what it
    read in memory, pauses (TCP senders wait), says so once and in /readyz, and when Netwrix is
    back it drains the spool (the reserve it released lets the deletions commit), takes in what
    waited, and every line arrives."""
    needs_mount_namespaces()
    count = 9000
    tcp, mport = free_port(), free_port()
    with emulator(down=True) as server:
        cfg = write_config(tmp_path / "c.yaml", tmp_path / "fs" / "spool.db", server.base_url, tcp, mport)
        host = HostFs("tmpfs", "4m", tmp_path / "fs", [*SERVICE, str(cfg)], tmp_path / "service.log")
        try:
            service_ready(mport, host)
            sender = Sender(tcp, range(count))
            sender.start()
            wait_for(lambda: "SPOOL WRITE FAILED" in host.text(), 60, "the spool to fill the disk")
            assert "disk is full" in host.text()
            status, why = ready(mport)
            assert status == 503 and "spool not writable" in why
            assert metric(mport, "nwsyslog_spool_write_failing") == 1
            set_up(server)
            sender.join(120)
            assert sender.error is None and len(sender.written) == count
            wait_for(lambda: set(delivered(server.emulator.store)) >= set(range(count)), 180, "every line delivered")
            wait_for(lambda: metric(mport, "nwsyslog_spool_write_failing") == 0, 30, "the spool to recover")
            assert "writable again" in host.text()
            got = delivered(server.emulator.store)
            duplicates = sum(n - 1 for n in got.values())
            assert duplicates <= 200, f"{duplicates} records sent twice"
            assert ready(mport)[0] == 200
            assert "Traceback" not in host.text()
            figures("4 MB filesystem, Netwrix down then up", count, got)
        finally:
            host.close()


def test_a_small_disk_with_netwrix_up_keeps_the_wal_small(tmp_path: Path) -> None:
    """1,000 lines/s through a spool on a 4 MB filesystem with Netwrix up: the WAL is
    checkpointed and truncated as it goes, so the spool never fills the disk."""
    needs_mount_namespaces()
    count = 6000
    tcp, mport = free_port(), free_port()
    with emulator() as server:
        cfg = write_config(tmp_path / "c.yaml", tmp_path / "fs" / "spool.db", server.base_url, tcp, mport)
        host = HostFs("tmpfs", "4m", tmp_path / "fs", [*SERVICE, str(cfg)], tmp_path / "service.log")
        try:
            service_ready(mport, host)
            sender = Sender(tcp, range(count), rate=1000)
            sender.start()
            largest = 0
            while sender.is_alive():
                largest = max(largest, host.size("spool.db-wal"))
                time.sleep(0.2)
            wait_for(lambda: set(delivered(server.emulator.store)) >= set(range(count)), 60, "every line delivered")
            assert largest <= 2 * 1024 * 1024, f"the WAL grew to {largest} bytes"
            assert "SPOOL WRITE FAILED" not in host.text()
            figures(f"4 MB filesystem, Netwrix up, 1,000/s (largest WAL {largest // 1024} KiB)", count,
                    delivered(server.emulator.store))  # fmt: skip
        finally:
            host.close()


def test_a_disk_that_fails_mid_run_holds_what_was_read_and_the_next_start_delivers_it(tmp_path: Path) -> None:
    """ext4 (errors=remount-ro) fails under the spool mid-run and turns read-only: commits fail,
    the service keeps what it read in memory, pauses and stays up (/readyz 503); stopped, it
    writes what it held outside the failed filesystem; the next start, on the repaired disk,
    takes that in beside what the spool had committed: every line it read is delivered, once."""
    needs_mount_namespaces()
    tcp, mport = free_port(), free_port()
    image = tmp_path / "disk.img"
    with emulator(down=True) as server:
        # sync: full: a commit is on the disk before it counts (with normal, what the page cache
        # had not written yet dies with a disk that fails, as in a power loss).
        cfg = write_config(
            tmp_path / "c.yaml", tmp_path / "fs" / "spool.db", server.base_url, tcp, mport, spool={"sync": "full"}
        )
        host = HostFs("ext4", "32m", tmp_path / "fs", [*SERVICE, str(cfg)], tmp_path / "service.log", image)
        try:
            service_ready(mport, host)
            sender = Sender(tcp, range(0, 3000), rate=600)
            sender.start()
            time.sleep(2)
            assert host.ask("fserror") == "ok"
            wait_for(lambda: "SPOOL WRITE FAILED" in host.text(), 30, "the failure to be seen")
            sender.join(60)
            wait_for(lambda: metric(mport, "nwsyslog_spool_held_in_memory") > 0, 30, "records held in memory")
            assert ready(mport)[0] == 503
            time.sleep(1)
            accepted = int(metric(mport, "nwsyslog_records_total"))
            assert accepted > 1000
            assert host.ask("term") == "ok" and host.ask("wait") == "0"
            assert "the next start takes them in" in host.text()
            assert "Traceback" not in host.text()
        finally:
            host.close()
        set_up(server)
        host = HostFs("ext4", "32m", tmp_path / "fs", [*SERVICE, str(cfg)], tmp_path / "service2.log", image)
        try:
            service_ready(mport, host)
            assert "taking in" in host.text()
            wait_for(
                lambda: len(delivered(server.emulator.store)) >= accepted,
                60,
                f"every line read delivered ({accepted} read, {len(delivered(server.emulator.store))} delivered)",
            )
            wait_for(lambda: metric(mport, "nwsyslog_spool_depth") == 0, 60, "the spool to drain")
        finally:
            host.close()
        got = delivered(server.emulator.store)
        assert len(got) >= accepted and set(got) <= set(sender.written)
        assert len(got) == len(sender.written) == 3000, "the stop read what the paused sender had queued"
        assert max(got.values()) == 1, "nothing twice"
        figures("ext4 fails mid-run (read-only), stop, repair, start", len(sender.written), got)


# --- back-pressure and stop --------------------------------------------------------------------


def test_a_stop_under_back_pressure_reads_what_paused_senders_queued(tmp_path: Path) -> None:
    """overflow block, the spool at its bound, listeners paused, then a stop: the stop reads what
    the TCP senders had queued into the spool (past its bound) instead of resetting them, and
    the next run delivers every line the senders wrote."""
    count = 4000

    async def scenario() -> None:
        with emulator(down=True) as server:
            cfg = config(tmp_path, server.base_url, spool={"path": str(tmp_path / "spool.db"), "max_records": 1000})
            async with running(cfg) as service:
                port = next(s.port for s in service.sources if s.kind == "tcp")
                sender = Sender(port, range(count))
                sender.start()
                await until(lambda: service._spool_full, 30)
                assert service._ready()[0] is False
                await asyncio.sleep(0.5)
            await asyncio.to_thread(sender.join, 30)
            assert sender.error is None and len(sender.written) == count
            with Spool(tmp_path / "spool.db", fmt="xml") as spool:
                assert spool.records == count
            set_up(server)
            async with running(cfg) as service:
                await until(lambda: set(delivered(server.emulator.store)) >= set(range(count)), 60)
            figures("overflow block at the bound, then SIGTERM", count, delivered(server.emulator.store))

    run(scenario())


# --- a stalled delivery process -----------------------------------------------------------------


def test_a_stopped_delivery_process_is_seen_and_replaced(tmp_path: Path) -> None:
    """The delivery process SIGSTOPped (it may hold the spool's write lock): the watchdog logs it,
    /readyz says 503, the listening side's commits wait or retry without failing, and after
    `restart_after` a new delivery process takes over; every line arrives."""
    count = 5000

    async def scenario() -> None:
        with emulator() as server:
            cfg = config(
                tmp_path,
                server.base_url,
                spool={"path": str(tmp_path / "spool.db"), "lock_timeout": 1},
                watchdog={"stalled_after": 1, "restart_after": 4},
            )
            async with running(cfg) as service:
                port = next(s.port for s in service.sources if s.kind == "tcp")
                sender = Sender(port, range(count), rate=500)
                sender.start()
                await asyncio.sleep(2)
                assert service.delivery is not None and service.delivery.pid is not None
                stopped = service.delivery.pid
                os.kill(stopped, signal.SIGSTOP)
                await until(lambda: service.host.delivery_state == "stalled", 10)
                assert service._ready() == (False, "delivery process stalled")
                await until(lambda: service.host.delivery_restarts == 1, 20)
                await asyncio.to_thread(sender.join, 60)
                await until(lambda: set(delivered(server.emulator.store)) >= set(range(count)), 60)
                assert service.failure is None
                got = delivered(server.emulator.store)
                assert sum(n - 1 for n in got.values()) <= 1000  # at most what the stopped one had in flight
                figures("delivery process SIGSTOPped (replaced after 4 s)", count, got)
                with __import__("contextlib").suppress(ProcessLookupError):
                    os.kill(stopped, signal.SIGCONT)

    run(scenario())


def test_a_held_write_lock_makes_commits_wait_and_retry_not_fail(tmp_path: Path) -> None:
    """Another process holds the spool's write lock for longer than `spool.lock_timeout`: the
    listening side's commits fail with "database is locked", are retried, and nothing is lost."""
    count = 2000

    async def scenario() -> None:
        with emulator() as server:
            cfg = config(tmp_path, server.base_url, spool={"path": str(tmp_path / "spool.db"), "lock_timeout": 0.5})
            async with running(cfg) as service:
                port = next(s.port for s in service.sources if s.kind == "tcp")
                holder = sqlite3.connect(tmp_path / "spool.db", isolation_level=None, timeout=10)
                holder.execute("BEGIN IMMEDIATE")
                sender = Sender(port, range(count), rate=1000)
                sender.start()
                await until(lambda: service.host.spool_write_failures > 0, 20)
                await asyncio.sleep(2)
                holder.execute("COMMIT")
                holder.close()
                await asyncio.to_thread(sender.join, 60)
                await until(lambda: set(delivered(server.emulator.store)) >= set(range(count)), 60)
                assert service.failure is None and service._store_error is None
                figures("write lock held by another process", count, delivered(server.emulator.store))

    run(scenario())


# --- a damaged spool ---------------------------------------------------------------------------


def _spooled_then_killed(tmp_path: Path, count: int) -> tuple[Path, Path]:
    """A service (its own process) spools `count` lines with Netwrix down and is killed -9."""
    tcp, mport = free_port(), free_port()
    spool = tmp_path / "spool.db"
    with emulator(down=True) as server:
        cfg = write_config(tmp_path / "c.yaml", spool, server.base_url, tcp, mport)
        log = (tmp_path / "first.log").open("wb")
        process = subprocess.Popen([*SERVICE, str(cfg)], stderr=log, cwd=ROOT)
        try:
            wait_for(lambda: ready(mport)[0] == 200, 60, "the service")
            sender = Sender(tcp, range(count))
            sender.start()
            sender.join(60)
            wait_for(lambda: metric(mport, "nwsyslog_spool_depth") == count, 60, "everything spooled")
        finally:
            process.kill()
            process.wait()
            log.close()
    return spool, cfg


def _restart_and_count(tmp_path: Path, spool: Path, count: int) -> tuple[int, int, str]:
    """Start a service on the spool with Netwrix up; (distinct lines delivered, records it
    reports lost, its log)."""
    tcp, mport = free_port(), free_port()
    with emulator() as server:
        cfg = write_config(tmp_path / "c2.yaml", spool, server.base_url, tcp, mport)
        log_path = tmp_path / "second.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen([*SERVICE, str(cfg)], stderr=log, cwd=ROOT)
            try:
                wait_for(lambda: ready(mport)[0] == 200, 60, "the service")
                lost = int(metric(mport, "nwsyslog_spool_lost_records_total"))
                wait_for(lambda: metric(mport, "nwsyslog_spool_depth") == 0, 60, "the spool to drain")
                got = delivered(server.emulator.store)
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(30)
        assert max(got.values(), default=1) == 1, "nothing twice"
        _last_delivered[:] = [got]
        return len(set(got) & set(range(count))), lost, log_path.read_text()


_last_delivered: list[Counter[int]] = []


@pytest.mark.parametrize("damage", ["wal deleted", "wal truncated", "wal overwritten"])
def test_a_lost_or_damaged_wal_is_detected_and_its_loss_reported(tmp_path: Path, damage: str) -> None:
    """After kill -9, the -wal file is deleted, cut in half or partly overwritten: the next start
    does not use the spool silently; it reports how many committed records went missing, and
    everything else is delivered (delivered + reported lost = all)."""
    count = 6000
    spool, _ = _spooled_then_killed(tmp_path, count)
    wal = Path(f"{spool}-wal")
    if damage == "wal deleted":
        wal.unlink(missing_ok=True)
    elif damage == "wal truncated" and wal.exists():
        os.truncate(wal, wal.stat().st_size // 2)
    elif wal.exists():
        with wal.open("r+b") as f:
            f.seek(32 * 1024)
            f.write(os.urandom(64 * 1024))
    got, lost, text = _restart_and_count(tmp_path, spool, count)
    assert got + lost == count, (got, lost)
    figures(f"-wal {damage.split()[1]} after kill -9", count, _last_delivered[0], reported_lost=lost)
    if lost:
        assert "committed records are missing" in text and "salvaged" in text


def test_a_truncated_spool_is_salvaged_reported_and_not_a_crash_loop(tmp_path: Path) -> None:
    """After kill -9 the spool file is cut in half: `spool check` and `spool stats` say so in one
    line (exit 2), the service moves it aside, salvages what can be read, reports the rest as
    lost, and starts; what it salvaged is delivered once."""
    count = 6000
    spool, cfg = _spooled_then_killed(tmp_path, count)
    with Spool(spool, fmt="xml"):
        pass  # (checkpoints the WAL into the file, as a later start would)
    os.truncate(spool, spool.stat().st_size // 2)
    for command in (["spool", "stats"], ["spool", "check"]):
        result = subprocess.run(
            [sys.executable, "-m", "ingestor.cli", *command, "--config", str(cfg)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )
        assert result.returncode == 2, result
        assert "damaged" in result.stderr and "Traceback" not in result.stderr
    got, lost, text = _restart_and_count(tmp_path, spool, count)
    assert got + lost == count, (got, lost)
    assert 0 < got < count and lost > 0
    figures("spool file cut in half after kill -9", count, _last_delivered[0], reported_lost=lost)
    assert "spool salvaged" in text and list(tmp_path.glob("spool.db.damaged-*"))


def test_spool_salvage_on_demand(tmp_path: Path) -> None:
    """`nwsyslog spool salvage FILE` does what a start does, and says what it recovered."""
    spool = tmp_path / "spool.db"
    with Spool(spool, fmt="xml") as s:
        for i in range(20):
            s.apply([LINE.format(n=i * 100 + j).encode() * 50 for j in range(100)])
    os.truncate(spool, spool.stat().st_size // 2)
    result = subprocess.run(
        [sys.executable, "-m", "ingestor.cli", "spool", "salvage", str(spool)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result
    m = re.search(r"(\d+) records recovered", result.stdout)
    assert m and 0 < int(m.group(1)) < 2000
    with Spool(spool, fmt="xml") as s:
        assert s.records == int(m.group(1))


def _alive(pid: int) -> bool:
    """Whether the process runs (an orphan that ended may stay a zombie where nothing reaps it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_one_service_per_spool_and_a_restart_after_kill_9_waits_for_the_old_delivery_process(
    tmp_path: Path,
) -> None:
    """A second service on a spool a live one uses exits at start, naming it (two would send
    every record twice); a start right after kill -9 waits until the killed service's delivery
    process (it outlives it, flushing) has ended, and only then opens the spool."""
    spool = tmp_path / "spool.db"
    with emulator(down=True) as server:
        tcp, mport = free_port(), free_port()
        # A flush long enough that the next start (a new interpreter, slow on a loaded machine)
        # surely begins while the killed service's delivery process is still at it.
        cfg = write_config(tmp_path / "c.yaml", spool, server.base_url, tcp, mport, shutdown_timeout=15)
        first = subprocess.Popen([*SERVICE, str(cfg)], stderr=subprocess.PIPE, cwd=ROOT)
        try:
            wait_for(lambda: ready(mport)[0] == 200, 60, "the service")
            delivery = [int(p) for p in subprocess.run(["pgrep", "-P", str(first.pid)], capture_output=True,
                                                       text=True).stdout.split()]  # fmt: skip
            assert delivery, "the delivery process"
            cfg2 = write_config(tmp_path / "c2.yaml", spool, server.base_url, free_port(), free_port(),
                                shutdown_timeout=0)  # fmt: skip
            second = subprocess.run([*SERVICE, str(cfg2)], capture_output=True, text=True, cwd=ROOT, timeout=60)
            assert second.returncode != 0 and "Traceback" not in second.stderr
            assert f"another nwsyslog process (pid {first.pid}, a service)" in second.stderr, second.stderr
            # Records for the delivery process to be retrying when its service dies.
            sender = Sender(tcp, range(2000))
            sender.start()
            sender.join(60)
            wait_for(lambda: metric(mport, "nwsyslog_spool_depth") == 2000, 60, "everything spooled")
        finally:
            first.kill()
            first.wait()
            assert first.stderr is not None
            first.stderr.close()
        # The killed service's delivery process is still flushing; a new start waits for it.
        assert any(_alive(pid) for pid in delivery)
        third = subprocess.Popen([*SERVICE, str(cfg)], stderr=subprocess.PIPE, text=True, cwd=ROOT)
        try:
            wait_for(lambda: ready(mport)[0] == 200, 60, "the new service")
            assert not any(_alive(pid) for pid in delivery), "started beside the old one"
        finally:
            third.send_signal(signal.SIGTERM)
            _, err = third.communicate(timeout=30)
        assert "is in use by another nwsyslog process" in err and "has ended; its delivery process" in err, err


# --- kill -9 -----------------------------------------------------------------------------------


def test_repeated_kill_9_loses_at_most_the_last_commit_interval(tmp_path: Path) -> None:
    """Three kill -9 of the whole service under a 700 lines/s TCP stream, each followed by a new
    start on the same spool: what is lost per kill is at most the 50 ms a commit waits plus what
    TCP had in flight (README), and nothing delivered is sent again by the next start beyond the
    deletions the kill cut short."""
    tcp, mport = free_port(), free_port()
    kills = 3
    with emulator() as server:
        cfg = write_config(tmp_path / "c.yaml", tmp_path / "spool.db", server.base_url, tcp, mport)
        process = subprocess.Popen([*SERVICE, str(cfg)], stderr=subprocess.DEVNULL, cwd=ROOT)
        wait_for(lambda: ready(mport)[0] == 200, 60, "the service")
        sender = Sender(tcp, range(700 * 12), rate=700, reconnect=True)
        sender.start()
        try:
            for _ in range(kills):
                time.sleep(2.5)
                process.kill()
                process.wait()
                process = subprocess.Popen([*SERVICE, str(cfg)], stderr=subprocess.DEVNULL, cwd=ROOT)
                wait_for(lambda: ready(mport)[0] == 200, 60, "the service again")
            sender.join(60)
            wait_for(lambda: metric(mport, "nwsyslog_spool_depth") == 0, 60, "the spool to drain")
            time.sleep(1)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
        got = delivered(server.emulator.store)
    written = set(sender.written)
    lost = len(written - set(got))
    assert lost <= kills * 150, f"{lost} lines lost over {kills} kills"
    assert sum(n - 1 for n in got.values()) <= kills * 400
    figures(f"{kills} x kill -9 under 700/s", len(written), Counter({n: c for n, c in got.items() if n in written}))


@pytest.fixture(autouse=True)
def _no_stash_left(tmp_path: Path) -> Iterator[None]:
    yield
    for leftover in Path("/tmp").glob("nwsyslog-unwritten-*"):
        if shutil.os.path.getmtime(leftover) > time.time() - 600:  # (this run's)
            leftover.unlink(missing_ok=True)
