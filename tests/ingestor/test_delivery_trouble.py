"""Failed writes as the operator sees them: one trouble across the client's concurrent workers
(logged at its first failure, then rate-limited, and its end once), the delivery state and
/readyz of a halted service, and quarantined records named by the id `nwsyslog spool` takes
(the real emulator; the service in-process, its delivery process a real one)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from ingestor.cli import main
from ingestor.emulator import EmulatorServer, EmulatorSettings
from ingestor.loop import run
from ingestor.netwrix.client import NetwrixClient
from ingestor.netwrix.config import BatchConfig, NetwrixConfig, RetryConfig
from ingestor.trouble import Trouble, duration
from tests.conftest import EmulatorFactory, make_record
from tests.ingestor.test_service import SUDO, config, running, send, until, wrong_password


def delivery_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "nwsyslog.delivery" and r.levelno >= logging.INFO]


def test_failed_writes_of_concurrent_workers_are_one_trouble(
    emulator: EmulatorFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Four workers, ten batches, every write answered 503 for a while: one WARNING at the first
    failure, a "still failing" line per `log_every` (not per batch or per retry) counting every
    attempt of every worker, and one "delivering again" once the server takes writes."""
    server = emulator(fail_rate=1.0, fail_status=503)
    netwrix = NetwrixConfig(url=server.base_url, retry=RetryConfig(base=0.02, cap=0.1), max_in_flight=4)
    trouble = Trouble(log_every=0.5, quiet_repeats=True)

    async def go() -> NetwrixClient:
        client = NetwrixClient(netwrix, BatchConfig(max_batch_records=10, linger=0.05), trouble=trouble)
        async with client:
            for i in range(100):
                await client.submit(make_record(i))
            await until(lambda: client.stats.retries >= 20)
            assert client.trouble is trouble and trouble.failing and trouble.reason is not None
            assert "503" in trouble.reason and abs(trouble.since_wall - time.time()) < 5
            await asyncio.sleep(1.2)
            server.emulator.settings = dataclasses.replace(server.emulator.settings, fail_rate=0.0)
            await client.flush()
        assert not trouble.failing
        return client

    with caplog.at_level(logging.INFO, logger="nwsyslog.delivery"):
        client = run(go())
    assert server.emulator.store.total == 100
    records = delivery_lines(caplog)
    assert all(r.levelno == logging.WARNING for r in records), [r.getMessage() for r in records]
    texts = [r.getMessage() for r in records]
    assert texts[0].startswith("Netwrix writes failing (HTTP 503 Service Unavailable")
    assert texts[0].endswith("): retrying with backoff; 100 records waiting")
    still = texts[1:-1]
    assert 2 <= len(still) <= 5, texts
    attempts = [int(re.search(r": (\d+) attempts, last: HTTP 503", t).group(1)) for t in still]  # type: ignore[union-attr]
    assert attempts == sorted(attempts) and attempts[-1] > 20
    assert all(t.startswith("Netwrix writes still failing after ") for t in still)
    assert all(t.endswith("; 100 records waiting") for t in still)
    assert re.fullmatch(
        r"delivering again; 100 records waited \d+\.\ds \((\d+) failed attempts, last: HTTP 503 .*\)", texts[-1]
    ), texts[-1]
    failed = int(re.search(r"\((\d+) failed attempts", texts[-1]).group(1))  # type: ignore[union-attr]
    assert failed == client.stats.retries, "every worker's failures are the one trouble's"


def test_trouble_that_begins_again_within_the_minute_is_counted_not_announced() -> None:
    """A flapping operation: its second trouble is not logged at its first failure; its failures
    go into the next line. `failed` and `log_due` share one budget of a line per `log_every`."""
    trouble = Trouble(log_every=60.0, quiet_repeats=True)
    assert trouble.failed("503", 0.0) and trouble.attempts == 1
    assert not trouble.failed("503", 1.0)
    episode = trouble.recovered(2.0)
    assert episode is not None and (episode.attempts, episode.lasted, episode.logged) == (2, 2.0, True)
    assert not trouble.failed("503", 3.0) and not trouble.failed("503", 4.0)
    assert trouble.recovered(5.0) == dataclasses.replace(episode, lasted=2.0, logged=False)
    assert not trouble.failed("502", 30.0)
    assert trouble.failed("502", 62.5), "logged once the minute since the last line passed"
    assert trouble.take_brief() == 2 and trouble.attempts == 2 and trouble.lasted(62.5) == 32.5
    steady = Trouble(log_every=60.0)
    assert steady.failed(OSError(28, "No space left"), 0.0) and steady.reason == "[Errno 28] No space left"
    assert (steady.retry_at, steady.due(0.1), steady.due(0.25)) == (0.25, False, True)
    assert not steady.failed("again", 0.3) and steady.retry_at == 0.8 and not steady.log_due(59.0)
    assert steady.log_due(60.0) and not steady.log_due(61.0)
    assert steady.recovered(70.0) is not None and steady.failed("new", 71.0), "without quiet_repeats: at once"
    assert [duration(s) for s in (0.42, 42, 130, 3 * 3600 + 5 * 60)] == ["0.4s", "42s", "2m10s", "3h05m"]


def test_a_halt_says_since_when_in_the_state_and_readyz(tmp_path: Path) -> None:
    async def scenario() -> None:
        with EmulatorServer.running(EmulatorSettings(user=("writer", "right"))) as emulator:
            cfg = wrong_password(tmp_path, emulator)
            async with running(cfg) as service, httpx.AsyncClient() as http:
                before = time.time()
                await send(service, [SUDO % i for i in range(3)])
                await until(lambda: service.delivery is not None and service.delivery.halted is not None)
                assert service.delivery is not None and service.delivery.halted_since is not None
                assert before - 1 <= service.delivery.halted_since <= time.time()
                assert service.delivery.retrying is None
                assert service._host_state().delivery_state == "halted"
                ready = await http.get(f"http://127.0.0.1:{service.metrics_port}/readyz")
                assert ready.status_code == 503
                assert re.fullmatch(
                    r"delivery halted since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00: .*401.*\n", ready.text
                )
                assert 'nwsyslog_delivery_state{state="halted"} 1.0' in service.metrics.text().decode()

    run(scenario())


def test_a_quarantined_record_is_logged_by_the_id_spool_list_shows(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The server refuses a record even alone (413): the delivery process's log names it by the
    quarantine id `nwsyslog spool list` prints and `nwsyslog spool retry` takes."""

    async def scenario() -> None:
        with EmulatorServer.running(EmulatorSettings(max_body_bytes=200)) as emulator:
            async with running(config(tmp_path, emulator.base_url)) as service:
                await send(service, [SUDO % 1])
                await until(lambda: service.spool is not None and service.spool.quarantine_count == 1)
                await asyncio.sleep(0.2)

    run(scenario())
    log = capfd.readouterr().err
    [quarantined] = re.findall(r"record quarantined as spool id (\d+) .*", log)
    listed = CliRunner().invoke(main, ["spool", "list", "--path", str(tmp_path / "spool.db")])
    assert listed.exit_code == 0, listed.output
    [entry] = [json.loads(line) for line in listed.output.splitlines()]
    assert int(quarantined) == entry["id"]
    assert f"`nwsyslog spool retry {entry['id']}` sends it again): {entry['reason']}" in log
