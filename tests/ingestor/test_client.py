"""NetwrixClient end to end against the real emulator: batching, linger, faults, halts."""

import asyncio
from collections import Counter

import pytest

from ingestor.errors import AuthError
from ingestor.loop import run
from ingestor.netwrix.batcher import Entry
from ingestor.netwrix.client import MemoryQuarantine, NetwrixClient
from ingestor.netwrix.config import AuthConfig, BatchConfig, NetwrixConfig, RetryConfig
from tests.conftest import enum_all, make_record

FAST_RETRY = RetryConfig(base=0.01, cap=0.2)


def submit_all(netwrix, batching, records, quarantine=None, flush=True):
    async def go():
        client = NetwrixClient(netwrix, batching, quarantine=quarantine)
        error = None
        async with client:
            for record in records:
                await client.submit(record)
            if flush:
                try:
                    await client.flush()
                except AuthError as exc:
                    error = exc
            pending = client.pending()
        return client, error, pending

    return run(go())


def test_10000_records_through_413s_and_20_percent_503s_all_arrive(emulator):
    """The issue's acceptance run: max-body-bytes 65536, fail-rate 0.2 with 503, client batches of 1 MB."""
    server = emulator(max_body_bytes=65536, fail_rate=0.2, fail_status=503, seed=20261122)
    netwrix = NetwrixConfig(url=server.base_url, retry=FAST_RETRY, max_in_flight=4)
    batching = BatchConfig(max_batch_bytes=1_000_000, max_batch_records=1000, linger=0.2)
    n = 10_000
    client, error, pending = submit_all(netwrix, batching, [make_record(i) for i in range(n)])
    assert error is None and pending == []
    stored = Counter(r["What"] for r in enum_all(server.base_url))
    expected = {f"session #{i} on vty0" for i in range(n)}
    assert set(stored) == expected  # every record arrived
    duplicates = sum(stored.values()) - n
    # A 503 here is answered before anything is stored, so no duplicate is possible: count them
    # all the same, as the emulator's own total must agree.
    assert duplicates == 0
    assert server.emulator.store.total == n
    assert server.emulator.stats["faults"] > 0 and server.emulator.stats["status_413"] > 0
    assert client.stats.retries >= server.emulator.stats["faults"]
    assert client.stats.delivered == n


def test_faults_after_storing_cause_counted_duplicates_only(emulator):
    server = emulator(fail_rate=0.3, fail_status=500, fail_phase="after", seed=3)
    netwrix = NetwrixConfig(url=server.base_url, retry=FAST_RETRY)
    batching = BatchConfig(max_batch_records=50, linger=0.1)
    n = 1000
    _, error, pending = submit_all(netwrix, batching, [make_record(i) for i in range(n)])
    assert error is None and pending == []
    stored = Counter(r["What"] for r in enum_all(server.base_url))
    assert set(stored) == {f"session #{i} on vty0" for i in range(n)}
    duplicates = sum(stored.values()) - n
    # Each 500 after storing duplicates exactly the batch it answered (50 records).
    assert duplicates == 50 * server.emulator.stats["faults"] > 0


@pytest.mark.parametrize("chunked", [False, True], ids=["one by one", "submit_entries"])
def test_linger_sends_a_partial_batch_without_flush(emulator, chunked):
    server = emulator()
    netwrix = NetwrixConfig(url=server.base_url)

    async def go():
        async with NetwrixClient(netwrix, BatchConfig(linger=0.05)) as client:
            if chunked:
                await client.submit_entries(_entries(client, [make_record(i) for i in range(3)]))
            else:
                for i in range(3):
                    await client.submit(make_record(i))
            # Stored is not yet settled: the client settles when it reads the answer, which
            # on a loaded machine can come well after the server stored the records.
            for _ in range(500):
                if server.emulator.store.total == 3 and not client.pending():
                    break
                await asyncio.sleep(0.01)
            return server.emulator.store.total, client.pending()

    total, pending = run(go())
    assert total == 3 and pending == []


def test_record_larger_than_max_batch_bytes_is_quarantined_never_sent(emulator):
    server = emulator()
    quarantine = MemoryQuarantine()
    netwrix = NetwrixConfig(url=server.base_url)
    batching = BatchConfig(max_batch_bytes=4096, linger=0.05)
    records = [make_record(0), make_record(1, What="x" * 5000), make_record(2)]
    _client, error, pending = submit_all(netwrix, batching, records, quarantine)
    assert error is None and pending == []
    [(entry, reason)] = quarantine.items
    assert entry.key == 1 and b"x" * 5000 in entry.data
    assert "max_batch_bytes=4096" in reason
    assert sorted(r["What"] for r in enum_all(server.base_url)) == ["session #0 on vty0", "session #2 on vty0"]


def test_401_stops_sending_and_hands_every_record_back(emulator):
    server = emulator(user=("writer", "right"))
    netwrix = NetwrixConfig(
        url=server.base_url, auth=AuthConfig(method="basic", username="writer", password="wrong"), max_in_flight=2
    )
    batching = BatchConfig(max_batch_records=10, linger=0.05)
    _client, error, pending = submit_all(netwrix, batching, [make_record(i) for i in range(95)])
    assert isinstance(error, AuthError)
    assert [e.key for e in pending] == list(range(95))
    assert server.emulator.store.total == 0
    # It stops: no request storm against a server that refuses the credentials.
    assert server.emulator.stats["status_401"] <= 2


def test_aclose_returns_what_could_not_be_delivered(emulator):
    server = emulator(fail_rate=1.0, fail_status=503)
    netwrix = NetwrixConfig(url=server.base_url, retry=FAST_RETRY)

    async def go():
        client = NetwrixClient(netwrix, BatchConfig(linger=0.01))
        await client.start()
        for i in range(5):
            await client.submit(make_record(i))
        return await client.aclose(timeout=0.3)

    left = run(go())
    assert [e.key for e in left] == [0, 1, 2, 3, 4]
    assert server.emulator.store.total == 0


def test_records_submitted_after_a_halt_are_kept_and_flush_does_not_hang(emulator):
    server = emulator(user=("writer", "right"))
    netwrix = NetwrixConfig(url=server.base_url, auth=AuthConfig(method="basic", username="writer", password="bad"))

    async def go():
        async with NetwrixClient(netwrix, BatchConfig(max_batch_records=2, linger=0.01)) as client:
            await client.submit(make_record(0))
            first = await asyncio.wait_for(_flush_error(client), 10)
            for i in range(1, 6):
                await client.submit(make_record(i))
            second = await asyncio.wait_for(_flush_error(client), 10)  # used to wait forever
            return first, second, [e.key for e in client.pending()]

    first, second, pending = run(go())
    assert isinstance(first, AuthError) and second is first
    assert pending == [0, 1, 2, 3, 4, 5]


async def _flush_error(client):
    try:
        await client.flush()
    except AuthError as exc:
        return exc
    return None


def _entries(client: NetwrixClient, records) -> list[Entry]:
    return [Entry(i, client.encoder.encode(record)) for i, record in enumerate(records)]


def test_submit_entries_delivers_what_one_by_one_delivers(emulator):
    """Chunks of entries (the spool feeder's way): every record once, in batches within the
    server's limit, the oversized one quarantined, nothing left."""
    server = emulator(max_body_bytes=16384, fail_rate=0.2, fail_status=503, seed=7)
    quarantine = MemoryQuarantine()
    netwrix = NetwrixConfig(url=server.base_url, retry=FAST_RETRY, max_in_flight=2)
    batching = BatchConfig(max_batch_bytes=12_000, max_batch_records=40, linger=0.05)
    records = [make_record(i, What="x" * 13_000) if i == 333 else make_record(i) for i in range(1000)]

    async def go():
        async with NetwrixClient(netwrix, batching, quarantine=quarantine) as client:
            entries = _entries(client, records)
            taken = 0
            for start in range(0, len(entries), 128):
                taken += await client.submit_entries(entries[start : start + 128])
            await client.flush()
            return taken, client.pending()

    taken, pending = run(go())
    assert taken == 1000 and pending == []
    assert [entry.key for entry, _ in quarantine.items] == [333]
    stored = Counter(r["What"] for r in enum_all(server.base_url))
    assert stored == Counter(f"session #{i} on vty0" for i in range(1000) if i != 333)
    assert server.emulator.stats["status_413"] == 0 and server.emulator.stats["faults"] > 0


def test_submit_entries_stops_at_a_halt_and_keeps_what_it_took(emulator):
    server = emulator(user=("writer", "right"))
    netwrix = NetwrixConfig(
        url=server.base_url, auth=AuthConfig(method="basic", username="writer", password="wrong"), max_in_flight=1
    )
    batching = BatchConfig(max_batch_records=5, linger=0.01)

    async def go():
        async with NetwrixClient(netwrix, batching) as client:
            entries = _entries(client, [make_record(i) for i in range(500)])
            taken = await client.submit_entries(entries)
            error = await asyncio.wait_for(_flush_error(client), 10)
            return taken, error, [e.key for e in client.pending()]

    taken, error, pending = run(go())
    assert isinstance(error, AuthError)
    assert 0 < taken < 500  # it stopped taking entries once delivery halted
    assert pending == list(range(taken))
