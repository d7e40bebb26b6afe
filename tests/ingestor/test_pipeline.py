"""The transform stage on its own: receive times, counters, the memory bound, rate limits."""

from __future__ import annotations

import asyncio
import logging
import re
import socket

from hypothesis import given, settings
from hypothesis import strategies as st

from ingestor.config import RateLimitConfig, SourceConfig
from ingestor.loop import run
from ingestor.netwrix.encoding import XmlEncoder
from ingestor.pipeline import Pipeline
from ingestor.rate_limit import LogThrottle, TokenBucket
from ingestor.sources import UdpSource
from parsers.rules.loader import load_ruleset

# No timestamp in the line: the record's When is the receive time.
UNDATED = b"<86>app01 sudo[12]:    alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/echo %d"


def when(fragment: bytes) -> str:
    m = re.search(rb"<When>([^<]+)</When>", fragment)
    assert m is not None, fragment
    return m.group(1).decode()


def test_each_message_keeps_its_own_receive_time() -> None:
    pipeline = Pipeline(load_ruleset(), XmlEncoder())
    times = [1_700_000_000.0, 1_700_000_000.0, 1_700_000_001.5, 1_700_000_000.0, 1_800_000_000.25]
    for i, t in enumerate(times):
        pipeline.handle(UNDATED % i, "192.0.2.1", t)
    fragments = pipeline.take()
    # When in whole seconds (as Netwrix documents it); the exact receive time in a detail.
    assert [when(f) for f in fragments] == [
        "2023-11-14T22:13:20Z",
        "2023-11-14T22:13:20Z",
        "2023-11-14T22:13:21Z",
        "2023-11-14T22:13:20Z",
        "2027-01-15T08:00:00Z",
    ]
    exact = [re.search(rb"Exact time</PropertyName><After>([^<]+)<", f) for f in fragments]
    assert [m.group(1).decode() if m else None for m in exact] == [
        None, None, "2023-11-14T22:13:21.500000Z", None, "2027-01-15T08:00:00.250000Z"
    ]  # fmt: skip


def test_the_bound_calls_on_full_at_each_record_past_it_until_taken() -> None:
    calls: list[int] = []
    pipeline = Pipeline(
        load_ruleset(), XmlEncoder(), max_pending=3, on_full=lambda: calls.append(len(pipeline.pending))
    )
    for i in range(5):
        pipeline.handle(UNDATED % i, "192.0.2.1", 1_700_000_000.0)
    assert calls == [3, 4, 5]
    assert len(pipeline.take()) == 5 and pipeline.pending == []
    pipeline.handle(UNDATED % 9, "192.0.2.1", 1_700_000_000.0)
    assert calls == [3, 4, 5], "below the bound again after take()"


# --- Rate limits per source: a flooding sender cannot starve the others.


def limited_pipeline(rate: float = 0.001, burst: int = 10) -> Pipeline:
    source = SourceConfig(cidr="192.0.2.0/24", rate_limit=RateLimitConfig(messages_per_second=rate, burst=burst))
    return Pipeline(load_ruleset(), XmlEncoder(), sources=[source])


def test_a_burst_over_the_rate_limit_is_dropped_and_counted_for_its_sender_only(caplog) -> None:
    pipeline = limited_pipeline()
    with caplog.at_level(logging.WARNING, logger="nwsyslog.pipeline"):
        for i in range(50):
            pipeline.handle(UNDATED % i, "192.0.2.1", 1_700_000_000.0 + i * 0.01)
        for i in range(12):
            pipeline.handle(UNDATED % i, "192.0.2.2", 1_700_000_000.0)  # its own bucket, same CIDR
        for i in range(30):
            pipeline.handle(UNDATED % i, "198.51.100.7", 1_700_000_000.0)  # no limit outside the CIDR
    stats = pipeline.stats
    assert dict(stats.rate_limited_by_source) == {"192.0.2.1": 40, "192.0.2.2": 2}
    assert stats.rate_limited == 42
    assert stats.received == stats.records == 10 + 10 + 30
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, "one line per newly limited sender, not one per message"
    assert lines[0].startswith("192.0.2.1 is over its rate limit (0.001 messages/s, burst 10)")


def test_the_bucket_refills_at_the_configured_rate() -> None:
    pipeline = limited_pipeline(rate=2, burst=2)
    admitted = []
    for i in range(8):  # 4 messages a second: the burst, then every other one (2 a second)
        before = pipeline.stats.received
        pipeline.handle(UNDATED % i, "192.0.2.1", 1_700_000_000.0 + i * 0.25)
        admitted.append(pipeline.stats.received > before)
    assert admitted == [True, True, True, False, True, False, True, False]
    assert pipeline.stats.rate_limited_by_source["192.0.2.1"] == 3


def test_the_count_per_sender_is_bounded(monkeypatch) -> None:
    monkeypatch.setattr("ingestor.pipeline.MAX_LIMITED_SOURCES", 3)
    pipeline = limited_pipeline(burst=1)
    for host in range(1, 7):
        for _ in range(2):
            pipeline.handle(UNDATED % host, f"192.0.2.{host}", 1_700_000_000.0)
    assert dict(pipeline.stats.rate_limited_by_source) == {"192.0.2.1": 1, "192.0.2.2": 1, "192.0.2.3": 1, "other": 3}


def test_a_flood_over_udp_is_limited_per_sender_address() -> None:
    """Real datagrams from two loopback addresses through a real listener into the pipeline."""
    pipeline = Pipeline(
        load_ruleset(),
        XmlEncoder(),
        sources=[SourceConfig(cidr="127.0.0.0/8", rate_limit=RateLimitConfig(messages_per_second=0.001, burst=10))],
    )

    async def go() -> None:
        async with UdpSource("127.0.0.1", 0, pipeline.handle) as source:
            for sender, count in (("127.0.0.1", 60), ("127.0.0.2", 5)):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    sock.bind((sender, 0))
                    for i in range(count):
                        sock.sendto(UNDATED % i, ("127.0.0.1", source.port))
                        await asyncio.sleep(0)
            for _ in range(500):
                if source.stats.messages == 65:
                    break
                await asyncio.sleep(0.01)

    run(go())
    assert dict(pipeline.stats.rate_limited_by_source) == {"127.0.0.1": 50}
    assert pipeline.stats.records == 15, "the second sender's 5 all went through"


def test_log_throttle_once_a_minute_per_key_and_bounded() -> None:
    throttle = LogThrottle(60.0, max_keys=2)
    assert throttle.allow("a", 0.0) and not throttle.allow("a", 59.0) and throttle.allow("a", 60.0)
    assert throttle.allow("b", 60.0)
    assert not throttle.allow("c", 61.0), "two keys logged within the minute: a third waits"
    assert throttle.allow("c", 121.0), "once the others are older than the interval"


@settings(max_examples=300, deadline=None)
@given(
    rate=st.floats(0.01, 10_000),
    burst=st.integers(1, 500),
    start=st.floats(0, 2e9),
    gaps=st.lists(st.floats(0, 5), max_size=300),
)
def test_a_bucket_never_admits_more_than_burst_plus_rate_times_elapsed(rate, burst, start, gaps) -> None:
    bucket = TokenBucket(rate, burst, start)
    now, admitted = start, []
    for gap in gaps:
        now += gap
        if bucket.take(now):
            admitted.append(now)
    for i, first in enumerate(admitted):  # over every stretch of time, from any admitted message
        for j in range(i, len(admitted)):
            allowed = burst + rate * (admitted[j] - first)
            assert j - i + 1 <= allowed * (1 + 1e-9) + 1e-9, (i, j, allowed)


@settings(max_examples=300, deadline=None)
@given(
    rate=st.floats(0.01, 1000),
    burst=st.integers(1, 100),
    times=st.lists(st.floats(-1e3, 1e3), max_size=200),
)
def test_a_clock_set_back_refills_nothing(rate, burst, times) -> None:
    bucket = TokenBucket(rate, burst, 0.0)
    admitted = sum(bucket.take(t) for t in times)
    latest = max([0.0, *times])
    assert admitted <= burst + rate * latest * (1 + 1e-9) + 1e-9


@settings(max_examples=200, deadline=None)
@given(rate=st.floats(0.01, 1000), burst=st.integers(1, 100), n=st.integers(1, 200))
def test_a_sender_within_the_rate_loses_nothing(rate, burst, n) -> None:
    bucket = TokenBucket(rate, burst, 0.0)
    assert all(bucket.take(i * 1.001 / rate) for i in range(n))
