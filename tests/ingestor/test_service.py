"""The service in-process: metrics and health endpoints, SIGHUP reload, spool bound, restart."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from ingestor.cli import main
from ingestor.config import ServiceConfig
from ingestor.emulator import EmulatorServer, EmulatorSettings
from ingestor.errors import StartupError
from ingestor.loop import run
from ingestor.sender import Sender
from ingestor.service import Service
from ingestor.sources import Source, udp_drops
from ingestor.spool import Spool, SpoolStats
from ingestor.spool_health import _stash_prefix, stash, unstash

SUDO = b"<86>Mar  4 10:00:01 app01 sudo:    alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/echo %d"


def config(tmp: Path, url: str, **extra: Any) -> ServiceConfig:
    return ServiceConfig.model_validate(
        {
            "listeners": ["udp://127.0.0.1:0", "tcp://127.0.0.1:0"],
            "netwrix": {"url": url, "retry": {"base": 0.05, "cap": 0.2}},
            "batching": {"linger": 0.05},
            "spool": {"path": str(tmp / "spool.db")},
            "metrics": {"listen": "127.0.0.1:0"},
            **extra,
        }
    )


@asynccontextmanager
async def running(cfg: ServiceConfig, config_path: Path | None = None) -> AsyncIterator[Service]:
    """The service in-process until the block ends; `config_path` is what SIGHUP's reload reads."""
    service = Service(cfg, config_path=config_path)
    task = asyncio.create_task(service.run())
    started = asyncio.create_task(service.started.wait())
    await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        started.cancel()
        await task  # raises the startup error
    try:
        yield service
    finally:
        service.stop()
        await task


async def until(predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 20) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def listener(service: Service, kind: str) -> Source:
    """The service's first listener of `kind` ("udp", "tcp", "tls")."""
    return next(s for s in service.sources if s.kind == kind)


def tcp_port(service: Service) -> int:
    return listener(service, "tcp").port


async def send(service: Service, lines: list[bytes]) -> None:
    def replay() -> None:
        with Sender("tcp", "127.0.0.1", tcp_port(service)) as sender:
            sender.replay(lines)

    await asyncio.to_thread(replay)


def test_metrics_health_and_delivery(tmp_path: Path) -> None:
    async def scenario() -> None:
        with EmulatorServer.running(EmulatorSettings()) as emulator:
            async with running(config(tmp_path, emulator.base_url)) as service, httpx.AsyncClient() as http:
                base = f"http://127.0.0.1:{service.metrics_port}"
                assert (await http.get(f"{base}/healthz")).status_code == 200
                assert (await http.get(f"{base}/readyz")).status_code == 200
                await send(service, [SUDO % i for i in range(50)] + [b"<13>Mar  4 10:00:01 h prog: nothing here"])
                await until(lambda: emulator.emulator.store.total == 50)
                await until(lambda: service.spool is not None and service.spool.records == 0)
                text = (await http.get(f"{base}/metrics")).text
                assert 'nwsyslog_received_total{listener="tcp://127.0.0.1:' in text
                expected = [
                    "nwsyslog_records_total 50.0",
                    "nwsyslog_parsed_total 51.0",
                    "nwsyslog_unmatched_total 1.0",
                    "nwsyslog_sent_total 50.0",
                    "nwsyslog_spool_depth 0.0",
                    "nwsyslog_spooled_total 50.0",
                ]
                for line in expected:
                    assert line in text, line
                assert "nwsyslog_request_seconds_bucket" in text and "nwsyslog_batch_records_count" in text

    run(scenario())


def wrong_password(tmp_path: Path, emulator: EmulatorServer) -> ServiceConfig:
    """A service writing to `emulator` (which wants writer:right) with a wrong password: it halts."""
    auth = {"method": "basic", "username": "writer", "password": "wrong"}
    return config(tmp_path, emulator.base_url, netwrix={"url": emulator.base_url, "auth": auth})


def test_a_halted_delivery_keeps_records_and_is_not_ready(tmp_path: Path) -> None:
    async def scenario() -> None:
        with EmulatorServer.running(EmulatorSettings(user=("writer", "right"))) as emulator:
            cfg = wrong_password(tmp_path, emulator)
            async with running(cfg) as service, httpx.AsyncClient() as http:
                await send(service, [SUDO % i for i in range(20)])
                await until(lambda: service.halted is not None)
                ready = await http.get(f"http://127.0.0.1:{service.metrics_port}/readyz")
                assert ready.status_code == 503 and "401" in ready.text
                assert emulator.emulator.store.total == 0
                await until(lambda: service.spool is not None and service.spool.records == 20)
        with Spool(tmp_path / "spool.db", fmt="xml") as spool:
            assert spool.stats().records == 20, "everything stays spooled after a halt and a stop"

    run(scenario())


def test_records_left_in_the_spool_are_sent_after_a_restart(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool.db", fmt="xml") as spool:
        fragment = b"<ActivityRecord><Who>a</Who><Action>Read</Action><What>w</What><When>2026-01-01T00:00:00Z</When>"
        spool.apply(inserts=[fragment + b"<Where>h</Where><ObjectType>o</ObjectType></ActivityRecord>"] * 7)

    async def scenario() -> None:
        with EmulatorServer.running(EmulatorSettings()) as emulator:
            async with running(config(tmp_path, emulator.base_url)) as service:
                await until(lambda: emulator.emulator.store.total == 7)
                await until(lambda: service.spool is not None and service.spool.records == 0)

    run(scenario())


def stashed_record(i: int) -> bytes:
    return (
        b"<ActivityRecord><Who>a</Who><Action>Read</Action><What>w%d</What><When>2026-01-01T00:00:00Z</When>"
        b"<Where>h</Where><ObjectType>o</ObjectType></ActivityRecord>" % i
    )


def test_stashed_records_that_a_failed_commit_had_written_after_all_go_out_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run whose commit of records 3..7 was reported failed (yet reached the disk) stashed
    3..11 at its stop: the next start takes in 8..11 only, and deletes the stash file."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with Spool(tmp_path / "spool.db", fmt="xml") as spool:
        spool.apply(inserts=[stashed_record(i) for i in range(3)])
        since = spool.inserted
        spool.apply(inserts=[stashed_record(i) for i in range(3, 8)])
    held = stash(tmp_path / "spool.db", [stashed_record(i) for i in range(3, 12)], since=since)
    assert held is not None

    async def scenario() -> None:
        with EmulatorServer.running(EmulatorSettings()) as emulator:
            async with running(config(tmp_path, emulator.base_url)) as service:
                await until(lambda: emulator.emulator.store.total >= 12)
                await until(lambda: service.spool is not None and service.spool.records == 0)
                await asyncio.sleep(0.3)
                assert emulator.emulator.store.total == 12
                assert not held.exists()

    run(scenario())


def test_a_stash_file_of_an_earlier_version_is_taken_in_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    old = tmp_path / f"{_stash_prefix(tmp_path / 'spool.db')}1.records"
    old.write_bytes(b"".join(struct.pack("<I", len(r)) + r for r in map(stashed_record, range(4))))
    (found,) = unstash(tmp_path / "spool.db")
    assert found.records == [stashed_record(i) for i in range(4)] and found.since is None


def test_delivery_runs_in_its_own_process_and_rows_added_behind_its_back_go_out_once(tmp_path: Path) -> None:
    """The listening process only inserts: the delivery process reads the spool, delivers and
    deletes. Records from an earlier run and rows another process adds (`nwsyslog spool
    retry`) go out too, every record exactly once, and the service's totals follow the file."""
    fragment = (
        b"<ActivityRecord><Who>a</Who><Action>Read</Action><What>w</What><When>2026-01-01T00:00:00Z</When>"
        b"<Where>h</Where><ObjectType>o</ObjectType></ActivityRecord>"
    )
    with Spool(tmp_path / "spool.db", fmt="xml") as spool:
        spool.apply(inserts=[fragment] * 7)

    async def scenario() -> None:
        with EmulatorServer.running(EmulatorSettings()) as emulator:
            store = emulator.emulator.store
            async with running(config(tmp_path, emulator.base_url)) as service:
                assert service.spool is not None and service.delivery is not None
                read_here = _count_reads(service.spool)
                await until(lambda: store.total == 7)
                await send(service, [SUDO % i for i in range(300)])
                await until(lambda: store.total == 307)
                await asyncio.to_thread(_insert_elsewhere, tmp_path / "spool.db", [fragment] * 5)
                await send(service, [SUDO % i for i in range(300, 350)])
                await _delivered_once(service, store, 362)
                assert read_here == [], "the listening process never reads the spool"
                assert service.delivery.stats.delivered == 362
                stats = await asyncio.to_thread(_stats_elsewhere, tmp_path / "spool.db")
                assert (service.spool.records, service.spool.bytes) == (stats.records, stats.bytes) == (0, 0)

    run(scenario())


def test_a_killed_delivery_process_is_started_again_and_what_it_held_is_delivered(tmp_path: Path) -> None:
    """The delivery process ignores SIGTERM (systemd and Ctrl-C reach the whole group: the
    service decides when it stops); killed, the watchdog starts a new one (counted), which sends
    what the dead one had not delivered."""

    async def scenario() -> None:
        with EmulatorServer.running(EmulatorSettings(outage_s=3)) as emulator:
            async with running(config(tmp_path, emulator.base_url)) as service:
                assert service.delivery is not None and service.delivery.pid is not None
                first = service.delivery.pid
                await send(service, [SUDO % i for i in range(40)])
                await until(lambda: service.delivery is not None and service.delivery.stats.retries > 0)
                os.kill(first, signal.SIGTERM)
                await asyncio.sleep(0.5)
                assert not service.delivery.ended.is_set(), "SIGTERM is not for it"
                os.kill(first, signal.SIGKILL)
                await until(lambda: service.host.delivery_restarts == 1 and service.delivery.pid != first, 30)
                assert service.failure is None
                await _delivered_once(service, emulator.emulator.store, 40)
                assert b"nwsyslog_delivery_restarts_total 1.0" in service.metrics.text()

    run(scenario())


def test_a_delivery_process_that_cannot_start_is_a_startup_error_with_its_reason(tmp_path: Path) -> None:
    """It builds the HTTPS client: a CA file that holds no certificate fails there, and the
    service does not start (nothing listens), naming the cause."""
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    cfg = config(tmp_path, "https://127.0.0.1:9", netwrix={"url": "https://127.0.0.1:9",
                 "tls": {"mode": "ca_file", "ca_file": str(bad)}})  # fmt: skip

    async def scenario() -> None:
        with pytest.raises(StartupError, match=r"the delivery process could not start: .*(PEM|certificate|SSL)"):
            async with running(cfg):
                pass

    run(scenario())


def _count_reads(spool: Spool) -> list[int]:
    """The ids `spool.read_after` gives from now on (it is wrapped), in a list that grows."""
    read_back: list[int] = []
    read_after = spool.read_after

    def counting(last_id: int, limit: int) -> list[tuple[int, bytes]]:
        rows = read_after(last_id, limit)
        read_back.extend(i for i, _ in rows)
        return rows

    spool.read_after = counting  # type: ignore[method-assign]
    return read_back


async def _delivered_once(service: Service, store: Any, total: int) -> None:
    """Wait until the server holds `total` records and the spool none, then check that no
    more arrive (nothing was sent twice)."""
    await until(lambda: store.total == total)
    await until(lambda: service.spool is not None and service.spool.records == 0)
    await asyncio.sleep(0.3)
    assert store.total == total, "nothing twice"


def _insert_elsewhere(path: Path, inserts: list[bytes]) -> None:
    with Spool(path, fmt="xml") as other:
        other.apply(inserts=inserts)


def _stats_elsewhere(path: Path) -> SpoolStats:
    with Spool(path, fmt="xml") as other:
        return other.stats()


def test_drop_newest_counts_what_does_not_fit(tmp_path: Path) -> None:
    async def scenario() -> None:
        # Nobody listens at this URL: everything stays spooled, and the bound is reached.
        cfg = config(tmp_path, "http://127.0.0.1:9", spool={"path": str(tmp_path / "spool.db"),
                     "max_records": 1000, "overflow": "drop_newest"})  # fmt: skip
        async with running(cfg) as service:
            await send(service, [SUDO % i for i in range(1500)])
            await until(lambda: service.pipeline is not None and service.pipeline.stats.records == 1500)
            await until(lambda: service.spooled + service.overflow_dropped == 1500)
            assert service.spooled == 1000 and service.overflow_dropped == 500
            assert service.spool is not None and service.spool.records == 1000

    run(scenario())


def test_block_pauses_the_listeners_at_the_bound(tmp_path: Path) -> None:
    async def scenario() -> None:
        cfg = config(tmp_path, "http://127.0.0.1:9", spool={"path": str(tmp_path / "spool.db"), "max_records": 1000})
        async with running(cfg) as service:
            await send(service, [SUDO % i for i in range(1200)])
            await until(lambda: all(s.paused for s in service.sources))
            assert service.overflow_dropped == 0

    run(scenario())


def test_records_waiting_for_the_spool_are_bounded_and_what_is_discarded_is_counted(tmp_path: Path) -> None:
    """An overload (rules produce faster than the spool commits): at spool.max_in_memory the
    listeners pause, UDP datagrams are discarded and counted, and everything else is delivered."""

    async def scenario() -> None:
        with EmulatorServer.running(EmulatorSettings()) as emulator:
            spool = {"path": str(tmp_path / "spool.db"), "max_in_memory": 100}
            cfg = config(tmp_path, emulator.base_url, spool=spool)
            async with running(cfg) as service:
                assert service.pipeline is not None
                udp = listener(service, "udp")
                # Hold the spool thread: nothing is committed while the datagrams arrive.
                gate = threading.Event()
                held = asyncio.get_running_loop().run_in_executor(service._db, gate.wait)
                try:
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                        for i in range(1000):
                            sender.sendto(SUDO % i, ("127.0.0.1", udp.port))
                            if i % 50 == 49:
                                await asyncio.sleep(0.002)
                    drops = udp_drops(udp.socket) or 0
                    await until(lambda: udp.stats.messages + udp.stats.shed + drops >= 1000)
                    assert len(service.pipeline.pending) == 100, "the bound holds while the spool is stuck"
                    assert udp.paused and udp.stats.shed > 0
                finally:
                    gate.set()  # even on failure: the service cannot stop with its spool held
                await held
                delivered = udp.stats.messages
                await until(lambda: emulator.emulator.store.total == delivered)
                await until(lambda: not udp.paused)
                assert udp.stats.messages + udp.stats.shed + drops == 1000
                async with httpx.AsyncClient() as http:
                    text = (await http.get(f"http://127.0.0.1:{service.metrics_port}/metrics")).text
                assert (
                    f'nwsyslog_overload_dropped_total{{listener="udp://127.0.0.1:{udp.port}"}} {udp.stats.shed}.0'
                    in text
                )
                await send(service, [SUDO % i for i in range(5)])  # taken in again
                await until(lambda: emulator.emulator.store.total == delivered + 5)

    run(scenario())


def test_sighup_reloads_rules_and_keeps_the_old_set_when_the_new_one_is_bad(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    pack = rules / "site.yaml"
    good = """pack: site
rules:
  - id: site.hello
    description: a site rule
    match: {program: hello, regex: 'by (?P<user>\\S+)'}
    record: {Action: Read, ObjectType: Greeting, Who: "{user}", What: hello}
    examples: [{line: "Mar  4 10:00:01 h hello: by bob", record: {Who: bob}}]
"""
    pack.write_text(good.replace("site.hello", "site.first"))

    async def scenario() -> None:
        cfg = config(tmp_path, "http://127.0.0.1:9", rules={"paths": [str(rules)]})
        async with running(cfg) as service:
            assert service.pipeline is not None
            before = service.pipeline.ruleset
            assert any(r.id == "site.first" for r in before.rules)
            assert gc.get_freeze_count() > 0, "what the service built to run is kept out of the collector's scans"
            old = weakref.ref(before)
            del before
            pack.write_text(good)
            service.reload()
            await until(lambda: service.pipeline is not None and service.pipeline.ruleset is not old())
            await until(lambda: old() is None)  # frozen at start, yet freed after the reload
            reloaded = service.pipeline.ruleset
            assert any(r.id == "site.hello" for r in reloaded.rules)
            pack.write_text("pack: site\nrules: [{id: broken}]\n")
            service.reload()
            await asyncio.sleep(1)
            assert service.pipeline.ruleset is reloaded, "a bad set keeps the old one"

    run(scenario())


def test_check_config_never_prints_the_password(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "listeners: [udp://127.0.0.1:5514]\nnetwrix:\n  url: https://nwx:9699\n"
        "  auth: {method: basic, username: svc, password: hunter2-secret}\n"
    )
    result = CliRunner().invoke(main, ["check-config", str(path)])
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.output and "svc" in result.output and "password set in the file" in result.output


def test_password_from_an_unset_environment_variable_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "listeners: [udp://127.0.0.1:5514]\nnetwrix:\n"
        "  auth: {method: basic, username: svc, password_env: NWSYSLOG_TEST_UNSET}\n"
    )
    result = CliRunner().invoke(main, ["check-config", str(path)])
    assert result.exit_code == 2
    assert "NWSYSLOG_TEST_UNSET is not set" in result.output and ":3: netwrix.auth: password_env:" in result.output


def test_send_adds_a_pri_and_reports(tmp_path: Path) -> None:
    import socket

    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    log = tmp_path / "x.log"
    log.write_bytes(b"Mar  4 10:00:01 h prog: one\n<86>Mar  4 10:00:01 h prog: two\n\n")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "ingestor.cli", "send", "--to", f"udp://127.0.0.1:{receiver.getsockname()[1]}",
             str(log)], capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert "sent 2 messages" in proc.stderr
        assert receiver.recv(100) == b"<13>Mar  4 10:00:01 h prog: one"
        assert receiver.recv(100) == b"<86>Mar  4 10:00:01 h prog: two"
    finally:
        receiver.close()


@pytest.mark.parametrize("bad", ["udp://host", "http://x:1"])
def test_send_refuses_a_bad_target(tmp_path: Path, bad: str) -> None:
    log = tmp_path / "x.log"
    log.write_bytes(b"x\n")
    result = CliRunner().invoke(main, ["send", "--to", bad, str(log)])
    assert result.exit_code == 2


def test_json_logs_are_one_object_per_line(tmp_path: Path) -> None:
    import json

    bad = tmp_path / "c.yaml"
    bad.write_text("listeners: [udp://127.0.0.1:0]\nspool: {path: " + str(tmp_path / "s.db") + "}\n"
                   "metrics: {listen: null}\nnetwrix: {url: 'http://127.0.0.1:9'}\n")  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingestor.cli", "--log-format", "json", "run", "--config", str(bad)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "listening on udp://" in line:
            break
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert out == "", "with --log-format json, stdout carries nothing but JSON (here: nothing)"
    objects = [json.loads(line) for line in [*seen, *err.splitlines()] if line.strip()]
    assert objects and all({"time", "level", "logger", "message"} <= set(o) for o in objects)
    assert any(o["message"].startswith("listening on udp://") for o in objects)


def test_fixed_credentials_take_effect_on_reload_and_nothing_is_lost(tmp_path: Path) -> None:
    from ingestor.config import load_service_config

    def write(password: str) -> Path:
        path = tmp_path / "c.yaml"
        path.write_text(
            "listeners: [tcp://127.0.0.1:0]\nbatching: {linger: 0.05}\nmetrics: {listen: null}\n"
            f"spool: {{path: {tmp_path / 'spool.db'}}}\n"
            f"netwrix: {{url: '{url}', auth: {{method: basic, username: writer, password: {password}}}}}\n"
        )
        return path

    async def scenario() -> None:
        service = Service(load_service_config(write("wrong")), config_path=tmp_path / "c.yaml")
        task = asyncio.create_task(service.run())
        await service.started.wait()
        try:
            await send(service, [SUDO % i for i in range(30)])
            await until(lambda: service.halted is not None and "401" in service.halted)
            assert emulator.emulator.store.total == 0
            write("right")
            service.reload()
            await until(lambda: emulator.emulator.store.total == 30)
            await until(lambda: service.halted is None)
        finally:
            service.stop()
            await task

    with EmulatorServer.running(EmulatorSettings(user=("writer", "right"))) as emulator:
        url = emulator.base_url
        run(scenario())


def test_spool_commands_show_and_retry_the_quarantine_under_the_configured_spool_settings(tmp_path: Path) -> None:
    """`nwsyslog spool stats|list|retry` read the spool named by the configuration and open it
    with its settings: with `secure_delete: true`, the retried quarantine row's reason is gone
    from the file."""
    path = tmp_path / "spool.db"
    config_file = tmp_path / "nwsyslog.yaml"
    config_file.write_text(f"listeners: ['udp://127.0.0.1:0']\nspool: {{path: '{path}', secure_delete: true}}\n")
    record = b"<ActivityRecord><Who>a</Who><Action>Read</Action><What>w</What></ActivityRecord>"
    with Spool(path, fmt="xml") as spool:
        spool.apply(inserts=[record, record])
        first = spool.read_after(0, 1)[0][0]
        # A long reason (the server's ErrorList), on pages of its own that the delete frees whole.
        spool.apply(quarantines=[(first, record, "400: " + "Who is s3cr3t-reason. " * 400)])
    runner = CliRunner()
    stats = runner.invoke(main, ["spool", "stats", "--config", str(config_file)])
    assert stats.exit_code == 0, stats.output
    assert "1 records waiting" in stats.output and "1 quarantined" in stats.output
    listed = runner.invoke(main, ["spool", "list", "--config", str(config_file)])
    [line] = listed.output.splitlines()
    assert json.loads(line)["reason"] == "400: " + "Who is s3cr3t-reason. " * 400
    assert json.loads(line)["record"] == record.decode()
    retried = runner.invoke(main, ["spool", "retry", "--config", str(config_file)])
    assert retried.exit_code == 0 and "1 records moved back" in retried.output
    with Spool(path, fmt="xml") as spool:
        assert [data for _, data in spool.read_after(0, 10)] == [record, record]
        assert spool.quarantine_count == 0
    assert b"s3cr3t-reason" not in path.read_bytes()


def test_new_netwrix_settings_apply_to_the_next_request_while_delivery_is_healthy(tmp_path: Path) -> None:
    """The server's certificate is renewed and the operator pins the new thumbprint with SIGHUP
    while delivery is healthy: the next write uses the new settings (not after a halt and its
    60 s retry), and the log says when they took effect."""
    import yaml

    async def scenario() -> None:
        with EmulatorServer.running(EmulatorSettings(), tls=True) as first:
            port = first.port
            assert first.cert is not None
            doc = config(tmp_path, first.base_url).model_dump(mode="json", exclude_defaults=True)
            doc["netwrix"]["tls"] = {"mode": "thumbprint", "thumbprint": first.cert.sha256}
            path = tmp_path / "nwsyslog.yaml"
            path.write_text(yaml.safe_dump(doc))
            from ingestor.config import load_service_config

            async with running(load_service_config(path), config_path=path) as service:
                await send(service, [SUDO % i for i in range(10)])
                await until(lambda: first.emulator.store.total == 10)
                first.stop()
                await asyncio.sleep(0.5)
                with EmulatorServer.running(EmulatorSettings(), port=port, tls=True) as renewed:
                    assert renewed.cert is not None and renewed.cert.sha256 != first.cert.sha256
                    doc["netwrix"]["tls"]["thumbprint"] = renewed.cert.sha256
                    path.write_text(yaml.safe_dump(doc))
                    service.reload()
                    await asyncio.sleep(1.0)
                    await send(service, [SUDO % i for i in range(10, 20)])
                    await until(lambda: renewed.emulator.store.total == 10, 15)
                    assert service.halted is None

    run(scenario())


def test_the_oldest_waiting_records_age_is_a_metric(tmp_path: Path) -> None:
    """`nwsyslog_spool_oldest_seconds`: 0 with nothing waiting, then how long the oldest record
    has waited while Netwrix is down, and 0 again once it is delivered."""

    def oldest(service: Service) -> float:
        text = service.metrics.text().decode()
        line = next(line for line in text.splitlines() if line.startswith("nwsyslog_spool_oldest_seconds "))
        return float(line.split()[1])

    async def scenario() -> None:
        with EmulatorServer.running(EmulatorSettings(outage_s=2.5)) as emulator:
            async with running(config(tmp_path, emulator.base_url)) as service:
                assert oldest(service) == 0
                await send(service, [SUDO % i for i in range(5)])
                await until(lambda: service.spool is not None and service.spool.records == 5)
                await asyncio.sleep(1.2)
                assert oldest(service) >= 1.0
                await until(lambda: emulator.emulator.store.total == 5)
                await until(lambda: oldest(service) == 0)

    run(scenario())
