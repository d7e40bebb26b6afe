"""The transform stage on its own: receive times, counters, the memory bound."""

from __future__ import annotations

import re

from ingestor.netwrix.encoding import XmlEncoder
from ingestor.pipeline import Pipeline
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
