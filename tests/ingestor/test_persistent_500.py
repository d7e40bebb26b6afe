"""Records a server answers 500 every time: bisected out and quarantined after `bisect_after_500`.

Against the real emulator over loopback (its `poison` fault refuses any write holding a text with
500 and a ServerError ErrorList, storing nothing), and against a scripted sink on a virtual clock
for the properties hypothesis explores: exactly the poisoned records are quarantined, every other
one is delivered once, and the bisection's extra requests stay within its bound.
"""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingestor.emulator import EmulatorServer, EmulatorSettings
from ingestor.emulator.app import POISON_DESCRIPTION
from ingestor.errors import RetriesExhausted
from ingestor.loop import run
from ingestor.netwrix.batcher import Batch, Entry
from ingestor.netwrix.client import MemoryQuarantine, NetwrixClient
from ingestor.netwrix.config import BatchConfig, NetwrixConfig, RetryConfig
from ingestor.netwrix.delivery import Delivery, DeliveryStats
from ingestor.netwrix.encoding import XmlEncoder
from ingestor.netwrix.retry import Backoff, Outcome
from ingestor.netwrix.sink import SendResult
from tests.conftest import EmulatorFactory, enum_all, make_record
from tests.ingestor.test_delivery import Ledger, Listener
from tests.ingestor.test_delivery import deliver as deliver_batch

POISON = "POISON-7f3a"
WHILE = 0.5  # bisect_after_500 against the real emulator, seconds


def what(i: int, poisoned: bool) -> str:
    return f"session #{i} on vty0{' ' + POISON if poisoned else ''}"


def entries(n: int, poisoned: set[int]) -> list[Entry]:
    enc = XmlEncoder()
    return [Entry(i, enc.encode(make_record(i, What=what(i, i in poisoned)))) for i in range(n)]


def body_bound(n: int, k: int) -> int:
    """Requests of a bisection besides retries: the first body, two halves per level on the path
    to each poisoned record, and one resend of each piece set aside."""
    levels = math.ceil(math.log2(n))
    return 2 * levels + 3 if k == 1 else 1 + k * (3 * levels + 1)


def deliver(
    server: EmulatorServer, batch: list[Entry], *, bisect_after_500: float = WHILE, max_attempts: int | None = None
) -> tuple[Ledger, DeliveryStats, BaseException | None]:
    """One Delivery of `batch` as one batch against `server`; (ledger, stats, error)."""
    return deliver_batch(
        NetwrixConfig(url=server.base_url), batch, max_attempts=max_attempts, bisect_after_500=bisect_after_500
    )


def stored_whats(server: EmulatorServer) -> Counter[str]:
    return Counter(r["What"] for r in enum_all(server.base_url))


# Delivery against the real emulator.


@pytest.mark.parametrize("position", [0, 17, 49])
def test_one_poisonous_record_among_50_is_quarantined_and_every_other_one_delivered(
    emulator: EmulatorFactory, position: int
) -> None:
    server = emulator(poison=POISON)
    n = 50
    ledger, stats, error = deliver(server, entries(n, {position}))
    assert error is None
    assert sorted(ledger.delivered) == [i for i in range(n) if i != position]  # each exactly once
    [(key, reason)] = ledger.quarantined
    assert key == position
    assert "persistent 500" in reason and POISON_DESCRIPTION in reason  # the server's text
    assert stored_whats(server) == Counter(what(i, False) for i in range(n) if i != position)
    # The extra requests are bounded: bodies (requests that are not a retry) stay within
    # 2*ceil(log2 n) + 3, and one level of bisection per halving.
    assert stats.requests - stats.retries <= body_bound(n, 1) == 15
    assert stats.bisections_500 <= math.ceil(math.log2(n))
    # Records sent again: the halves of each level hold at most the records of the one before
    # (under 2n in all), a piece set aside is sent once more (under n), then the retries.
    assert 0 < stats.bisect_resends <= 3 * n + stats.retries
    assert stats.delivered == n - 1 and stats.quarantined == 1


def test_the_client_quarantines_poisonous_records_with_bisect_after_500_from_its_config(
    emulator: EmulatorFactory,
) -> None:
    server = emulator(poison=POISON)
    n, poisoned = 200, {3, 121}
    netwrix = NetwrixConfig(
        url=server.base_url, max_in_flight=2, retry=RetryConfig(base=0.01, cap=0.05, bisect_after_500=WHILE)
    )
    quarantine = MemoryQuarantine()

    async def go() -> NetwrixClient:
        client = NetwrixClient(netwrix, BatchConfig(max_batch_records=50, linger=0.05), quarantine=quarantine)
        async with client:
            for i in range(n):
                await client.submit(make_record(i, What=what(i, i in poisoned)))
            await client.flush()
        return client

    client = run(go())
    assert client.pending() == []
    assert sorted(entry.key for entry, _ in quarantine.items) == sorted(poisoned)  # the client's own keys
    assert all("persistent 500" in reason and POISON_DESCRIPTION in reason for _, reason in quarantine.items)
    assert stored_whats(server) == Counter(what(i, False) for i in range(n) if i not in poisoned)
    assert client.stats.delivered == n - len(poisoned)


def test_a_503_outage_longer_than_bisect_after_500_is_not_bisected(emulator: EmulatorFactory) -> None:
    server = emulator(outage_s=3 * WHILE, fail_status=503)
    n = 20
    ledger, stats, error = deliver(server, entries(n, set()))
    assert error is None
    assert ledger.delivered == list(range(n)) and ledger.quarantined == []  # in order, once
    assert stats.bisections == 0 and stats.bisect_resends == 0
    assert stats.requests == stats.retries + 1  # the one body, again and again
    assert server.emulator.stats["faults"] == stats.retries
    assert stored_whats(server) == Counter(what(i, False) for i in range(n))


def test_a_poisonous_record_behind_a_503_outage_is_isolated_once_the_server_answers(
    emulator: EmulatorFactory,
) -> None:
    server = emulator(poison=POISON, outage_s=2 * WHILE, fail_status=503)
    ledger, _stats, error = deliver(server, entries(8, {5}))
    assert error is None
    assert sorted(ledger.delivered) == [0, 1, 2, 3, 4, 6, 7] and [k for k, _ in ledger.quarantined] == [5]
    assert server.emulator.stats["faults"] > 0 and server.emulator.stats["poisoned"] > 0


def test_a_server_answering_500_to_everything_quarantines_nothing(emulator: EmulatorFactory) -> None:
    """An expired licence or a broken database: 500 to every write, for longer than the while.
    Nothing is quarantined (the server accepted nothing meanwhile); all arrive once it is back."""
    server = emulator(outage_s=4 * WHILE, fail_status=500)
    n = 16
    ledger, stats, error = deliver(server, entries(n, set()), bisect_after_500=WHILE / 2)
    assert error is None
    assert ledger.quarantined == []
    assert sorted(ledger.delivered) == list(range(n))
    assert stored_whats(server) == Counter(what(i, False) for i in range(n))
    assert stats.bisections_500 > 0  # it did bisect, and that cost nothing


def test_bisect_after_500_zero_retries_a_500_forever(emulator: EmulatorFactory) -> None:
    server = emulator(poison=POISON)
    ledger, stats, error = deliver(server, entries(6, {2}), bisect_after_500=0, max_attempts=15)
    assert isinstance(error, RetriesExhausted) and POISON_DESCRIPTION in error.last
    assert [e.key for e in error.pending] == list(range(6))
    assert ledger.delivered == [] and ledger.quarantined == [] and stats.bisections == 0


def test_the_setting_is_validated_and_defaults_to_five_minutes() -> None:
    assert RetryConfig().bisect_after_500 == 300.0
    assert RetryConfig(bisect_after_500=0).bisect_after_500 == 0
    with pytest.raises(ValueError, match="bisect_after_500"):
        RetryConfig(bisect_after_500=-1)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_bisection_isolates_exactly_the_poisoned_records_against_the_emulator(data: st.DataObject) -> None:
    n = data.draw(st.integers(2, 40), label="n")
    poisoned = data.draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=min(3, n - 1)), label="poisoned")
    with EmulatorServer.running(EmulatorSettings(poison=POISON)) as server:
        ledger, stats, error = deliver(server, entries(n, poisoned), bisect_after_500=0.2)
        assert error is None
        assert sorted(ledger.delivered) == [i for i in range(n) if i not in poisoned]
        assert sorted(k for k, _ in ledger.quarantined) == sorted(poisoned)
        assert stored_whats(server) == Counter(what(i, False) for i in range(n) if i not in poisoned)
        assert stats.requests - stats.retries <= body_bound(n, len(poisoned))


# The same rules on a virtual clock, where hypothesis can afford many examples.


class VirtualClock:
    """Time that passes only when the delivery sleeps or a request is answered."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


class ScriptedSink:
    """The emulator's poison fault, plus an optional window of outage answers (virtual seconds)."""

    def __init__(self, clock: VirtualClock, outage: tuple[float, float] = (0.0, 0.0), outage_status: int = 500) -> None:
        self.clock = clock
        self.outage = outage
        self.outage_status = outage_status
        self.requests = 0

    async def send(self, body: bytes) -> SendResult:
        self.clock.now += 0.01
        self.requests += 1
        if self.requests > 100_000 or self.clock.now > 10**7:
            raise AssertionError("the delivery does not end")
        start, end = self.outage
        if start <= self.clock.now < end:
            return SendResult(Outcome.RETRY, self.outage_status, f"HTTP {self.outage_status}")
        if POISON.encode() in body:
            return SendResult(Outcome.RETRY, 500, f"HTTP 500 Internal Server Error: ServerError: {POISON_DESCRIPTION}")
        return SendResult(Outcome.DELIVERED, 200)


def virtual_delivery(
    sink: ScriptedSink, ledger: Ledger, while_s: float = 10.0, max_attempts: int | None = None
) -> Delivery:
    """A Delivery to `sink` on its virtual clock."""
    return Delivery(
        sink,
        XmlEncoder(),
        Listener(ledger),
        backoff=Backoff(base=0.5, factor=2.0, cap=30.0),
        max_attempts=max_attempts,
        bisect_after_500=while_s,
        sleep=sink.clock.sleep,
        clock=sink.clock,
    )


def deliver_virtual(sink: ScriptedSink, batch: list[Entry], while_s: float = 10.0) -> tuple[Ledger, DeliveryStats]:
    ledger = Ledger()
    delivery = virtual_delivery(sink, ledger, while_s)
    run(delivery.deliver(Batch(tuple(batch))))
    return ledger, delivery.stats


@settings(max_examples=150, deadline=None)
@given(n=st.integers(2, 300), data=st.data())
def test_exactly_the_poisoned_set_is_quarantined_and_the_rest_delivered_once(n: int, data: st.DataObject) -> None:
    poisoned = data.draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=min(8, n - 1)), label="poisoned")
    sink = ScriptedSink(VirtualClock())
    ledger, stats = deliver_virtual(sink, entries(n, poisoned))
    assert Counter(ledger.delivered) == Counter(i for i in range(n) if i not in poisoned)
    assert sorted(k for k, _ in ledger.quarantined) == sorted(poisoned)
    assert all("persistent 500" in reason and POISON_DESCRIPTION in reason for _, reason in ledger.quarantined)
    assert stats.requests - stats.retries <= body_bound(n, len(poisoned))


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 200),
    outage_s=st.floats(0.0, 400.0),
    status=st.sampled_from([500, 503]),
)
def test_an_outage_of_any_length_quarantines_nothing(n: int, outage_s: float, status: int) -> None:
    """Everything answered 500 (or 503) for a while, then 200: every record delivered once, none
    quarantined, whatever the outage's length against bisect_after_500."""
    sink = ScriptedSink(VirtualClock(), outage=(0.0, outage_s), outage_status=status)
    ledger, stats = deliver_virtual(sink, entries(n, set()))
    assert ledger.quarantined == []
    assert Counter(ledger.delivered) == Counter(range(n))
    if status == 503:
        assert stats.bisections == 0 and ledger.delivered == list(range(n))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 100), data=st.data(), outage_s=st.floats(0.0, 100.0))
def test_a_503_outage_before_the_poison_shows_changes_nothing_but_the_time(
    n: int, data: st.DataObject, outage_s: float
) -> None:
    poisoned = data.draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=min(4, n - 1)), label="poisoned")
    sink = ScriptedSink(VirtualClock(), outage=(0.0, outage_s), outage_status=503)
    ledger, _stats = deliver_virtual(sink, entries(n, poisoned))
    assert Counter(ledger.delivered) == Counter(i for i in range(n) if i not in poisoned)
    assert sorted(k for k, _ in ledger.quarantined) == sorted(poisoned)


class FlappingSink(ScriptedSink):
    """500 and 503 in turns: never two 500s in a row."""

    async def send(self, body: bytes) -> SendResult:
        self.clock.now += 0.01
        self.requests += 1
        status = 500 if self.requests % 2 else 503
        return SendResult(Outcome.RETRY, status, f"HTTP {status}")


def test_500s_interrupted_by_503s_are_an_outage_never_bisected() -> None:
    sink = FlappingSink(VirtualClock())
    ledger = Ledger()
    delivery = virtual_delivery(sink, ledger, 10.0, max_attempts=60)
    with pytest.raises(RetriesExhausted) as caught:
        run(delivery.deliver(Batch(tuple(entries(10, set())))))
    assert sink.clock.now > 10 * 10.0  # far longer than the while
    assert delivery.stats.bisections == 0 and ledger.quarantined == []
    assert [e.key for e in caught.value.pending] == list(range(10))
