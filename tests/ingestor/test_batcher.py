from contextlib import nullcontext

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ingestor.errors import RecordTooLarge
from ingestor.netwrix.batcher import Batch, Batcher, Entry, entry_from_row
from ingestor.netwrix.encoding import JsonEncoder, XmlEncoder

ENCODERS = {"xml": XmlEncoder(), "json": JsonEncoder()}


def entries(sizes):
    return [Entry(i, b"x" * n) for i, n in enumerate(sizes)]


@settings(max_examples=400, deadline=None)
@given(
    fmt=st.sampled_from(["xml", "json"]),
    sizes=st.lists(st.integers(min_value=1, max_value=400), max_size=200),
    max_bytes=st.integers(min_value=200, max_value=3000),
    max_records=st.integers(min_value=1, max_value=50),
)
def test_batches_respect_both_limits_and_keep_every_record_once_in_order(fmt, sizes, max_bytes, max_records):
    encoder = ENCODERS[fmt]
    batcher = Batcher(encoder, max_bytes=max_bytes, max_records=max_records, linger=5.0)
    batches: list[Batch] = []
    too_large: list[Entry] = []
    for entry in entries(sizes):
        try:
            batches.extend(batcher.add(entry, now=0.0))
        except RecordTooLarge:
            too_large.append(entry)
    last = batcher.flush()
    if last is not None:
        batches.append(last)
    for batch in batches:
        assert 1 <= len(batch) <= max_records
        body = batch.body(encoder)
        assert len(body) == batch.size(encoder) <= max_bytes  # exact bytes, envelope included
    delivered = [e.key for b in batches for e in b.entries]
    rejected = {e.key for e in too_large}
    assert delivered == [i for i in range(len(sizes)) if i not in rejected]
    # Only records that could never fit are refused.
    for e in too_large:
        assert encoder.body_size(1, len(e.data)) > max_bytes


def test_batch_closes_exactly_at_the_record_limit():
    batcher = Batcher(JsonEncoder(), max_bytes=10_000, max_records=3, linger=1.0)
    assert batcher.add(Entry(0, b"{}"), 0.0) == []
    assert batcher.add(Entry(1, b"{}"), 0.0) == []
    [batch] = batcher.add(Entry(2, b"{}"), 0.0)
    assert [e.key for e in batch.entries] == [0, 1, 2]
    assert len(batcher) == 0


def test_batch_closes_before_the_byte_limit_would_be_crossed():
    enc = JsonEncoder()  # "[" + a + "," + b + "]"
    batcher = Batcher(enc, max_bytes=2 + 10 + 1 + 10, max_records=100, linger=1.0)
    assert batcher.add(Entry(0, b"a" * 10), 0.0) == []
    assert batcher.add(Entry(1, b"b" * 10), 0.0) == []  # exactly at the limit: fits
    [full] = batcher.add(Entry(2, b"c"), 0.0)
    assert len(full.body(enc)) == 23
    assert [e.key for e in full.entries] == [0, 1]
    assert len(batcher) == 1


def test_oversize_record_raises_with_size_and_limit_and_is_not_kept():
    batcher = Batcher(XmlEncoder(), max_bytes=1024, max_records=10, linger=1.0)
    batcher.add(Entry(0, b"<a/>"), 0.0)
    with pytest.raises(RecordTooLarge) as info:
        batcher.add(Entry(1, b"x" * 2000), 0.0)
    assert info.value.limit == 1024
    assert info.value.size == XmlEncoder().body_size(1, 2000)
    assert "max_batch_bytes=1024" in str(info.value)
    assert [e.key for e in batcher.flush().entries] == [0]


def test_linger_is_counted_from_the_first_record():
    batcher = Batcher(JsonEncoder(), max_bytes=10_000, max_records=100, linger=2.0)
    assert batcher.deadline is None
    assert batcher.poll(100.0) is None
    batcher.add(Entry(0, b"{}"), now=10.0)
    batcher.add(Entry(1, b"{}"), now=11.5)
    assert batcher.deadline == 12.0
    assert batcher.poll(11.99) is None
    batch = batcher.poll(12.0)
    assert batch is not None and len(batch) == 2
    assert batcher.deadline is None


def test_halves_keep_order_and_payload_sizes():
    batch = Batch(tuple(entries([1, 2, 3, 4, 5])))
    first, second = batch.halves()
    assert [e.key for e in first.entries] == [0, 1]
    assert [e.key for e in second.entries] == [2, 3, 4]
    assert first.payload_bytes == 3 and second.payload_bytes == 12
    with pytest.raises(ValueError):
        Batch(tuple(entries([1]))).halves()


def test_limits_that_cannot_hold_the_envelope_are_refused():
    with pytest.raises(ValueError, match="envelope"):
        Batcher(XmlEncoder(), max_bytes=50, max_records=10, linger=1.0)
    with pytest.raises(ValueError):
        Batcher(XmlEncoder(), max_bytes=5000, max_records=0, linger=1.0)


def test_a_spool_row_becomes_an_entry() -> None:
    entry = entry_from_row((7, b"<ActivityRecord/>"))
    assert type(entry) is Entry and (entry.key, entry.data) == (7, b"<ActivityRecord/>")


def _state(batcher: Batcher) -> tuple:
    return [e.key for e in batcher._entries], batcher._payload, batcher.deadline


@settings(max_examples=400, deadline=None)
@given(
    fmt=st.sampled_from(["xml", "json"]),
    before=st.lists(st.integers(min_value=1, max_value=400), max_size=30),
    sizes=st.lists(st.integers(min_value=0, max_value=600), max_size=120),
    start=st.integers(min_value=0, max_value=10),
    max_bytes=st.integers(min_value=200, max_value=3000),
    max_records=st.integers(min_value=1, max_value=50),
)
# Three JSON records that fill a body to its last byte (304), and one byte short of it.
@example(fmt="json", before=[], sizes=[100, 100, 100], start=0, max_bytes=304, max_records=50)
@example(fmt="json", before=[], sizes=[100, 100, 100], start=0, max_bytes=303, max_records=50)
@example(fmt="json", before=[50], sizes=[100, 100, 100], start=0, max_bytes=355, max_records=50)
def test_fill_does_what_add_does_one_by_one(fmt, before, sizes, start, max_bytes, max_records):
    """From any open batch, `fill` adds entries up to the first that closes a batch (or stops
    before one too large for any body) and leaves the batcher as `add` per entry does."""
    encoder = ENCODERS[fmt]
    one, many = (Batcher(encoder, max_bytes=max_bytes, max_records=max_records, linger=5.0) for _ in range(2))
    for entry in entries(before):  # the same open batch in both (the earlier entries at time 0)
        for b in (one, many):
            with (
                pytest.raises(RecordTooLarge) if encoder.body_size(1, entry_size(entry)) > max_bytes else nullcontext()
            ):
                b.add(entry, 0.0)
    items = [Entry(1000 + i, b"y" * n) for i, n in enumerate(sizes)]
    start = min(start, len(items))
    end, closed = many.fill(items, start, now=1.0)
    expected: list[Batch] = []
    position = start
    for entry in items[start:]:
        if encoder.body_size(1, len(entry.data)) > max_bytes:
            break  # fill stops before it
        position += 1
        expected = one.add(entry, 1.0)
        if expected:
            break
    assert end == position
    assert [[e.key for e in b.entries] for b in closed] == [[e.key for e in b.entries] for b in expected]
    assert [b.payload_bytes for b in closed] == [b.payload_bytes for b in expected]
    assert _state(many) == _state(one)
    assert end > start or start == len(items) or encoder.body_size(1, len(items[start].data)) > max_bytes


def entry_size(entry: Entry) -> int:
    return len(entry.data)
