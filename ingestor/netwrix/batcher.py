"""Pure batching: cut encoded records into request bodies within exact limits.

No I/O and no clock of its own (the caller passes `now`), so every rule here is testable in
isolation. A batch never exceeds `max_bytes` (counted on the exact body bytes, XML declaration and
root element included) nor `max_records`, and is due `linger` seconds after its first record.
Adding a record is O(1): sizes are summed, nothing is serialized again.

Example:
    >>> from ingestor.netwrix.encoding import JsonEncoder
    >>> b = Batcher(JsonEncoder(), max_bytes=20, max_records=10, linger=1.0)
    >>> b.add(Entry(1, b'{"a":1}'), now=0.0)
    []
    >>> [len(x) for x in b.add(Entry(2, b'{"a":22}'), now=0.1)]  # 2 + 7 + 1 + 8 > 20
    [1]
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import accumulate, islice
from operator import itemgetter
from typing import NamedTuple

from ..errors import RecordTooLarge
from .encoding import Encoder


class Entry(NamedTuple):
    """One encoded record and the caller's key for it (a spool record key, a sequence number). A
    tuple: a spool row `(id, data)` becomes one with `entry_from_row`."""

    key: Hashable
    data: bytes


entry_from_row: Callable[[tuple[Hashable, bytes]], Entry] = partial(tuple.__new__, Entry)
"""A pair `(key, data)` as an Entry: `tuple.__new__` called from C (`map(entry_from_row, rows)`),
where `Entry._make` is a Python function per row (~3% of the listener thread's time). Unlike
`_make` it does not check the length: give it pairs (spool rows are)."""
entry_key: Callable[[Entry], Hashable] = itemgetter(0)
"""An Entry's key, as a C-level function (`map(entry_key, entries)` runs per record)."""
_data = itemgetter(1)  # an Entry's data


@dataclass(frozen=True, slots=True)
class Batch:
    """An ordered group of entries that goes out as one request body."""

    entries: tuple[Entry, ...]
    payload_bytes: int = field(default=-1)

    def __post_init__(self) -> None:
        if self.payload_bytes < 0:
            object.__setattr__(self, "payload_bytes", sum(len(e.data) for e in self.entries))

    def __len__(self) -> int:
        return len(self.entries)

    def body(self, encoder: Encoder) -> bytes:
        """The request body: the encoder's envelope around the fragments (one concatenation)."""
        return encoder.join(list(map(_data, self.entries)))

    def size(self, encoder: Encoder) -> int:
        """Exact size of `body(encoder)`, computed without building it."""
        return encoder.body_size(len(self.entries), self.payload_bytes)

    def halves(self) -> tuple[Batch, Batch]:
        """Split into two ordered halves (the first gets the smaller half). Needs 2+ entries."""
        if len(self.entries) < 2:
            raise ValueError("a batch of one record cannot be split")
        mid = len(self.entries) // 2
        return Batch(self.entries[:mid]), Batch(self.entries[mid:])


class Batcher:
    """Accumulates entries into batches bounded by bytes, records and time."""

    def __init__(self, encoder: Encoder, *, max_bytes: int, max_records: int, linger: float) -> None:
        if max_records < 1:
            raise ValueError("max_records must be at least 1")
        if encoder.body_size(1, 1) > max_bytes:
            raise ValueError(f"max_bytes={max_bytes} cannot hold even the request envelope")
        self._encoder = encoder
        # The envelope's size and the separator's, from the encoder's own arithmetic: `add` runs
        # once per record, and a call to body_size() twice per record was most of its cost.
        self._envelope = encoder.body_size(1, 0)
        self._sep = encoder.body_size(2, 0) - self._envelope
        self.max_bytes = max_bytes
        self.max_records = max_records
        self.linger = linger
        self._entries: list[Entry] = []
        self._payload = 0
        self._started: float | None = None

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def deadline(self) -> float | None:
        """When the open batch is due (first entry's time + linger), or None when empty."""
        return None if self._started is None else self._started + self.linger

    def add(self, entry: Entry, now: float) -> list[Batch]:
        """Add one entry; return the batches this closed (zero, one or two), oldest first.

        Raises `RecordTooLarge` (and keeps nothing) when the entry alone exceeds `max_bytes`.
        """
        size = len(entry.data)
        # body_size(n, payload) is head + tail + payload + separator * (n - 1), for every encoder.
        if self._envelope + size > self.max_bytes:
            raise RecordTooLarge(self._envelope + size, self.max_bytes)
        ready: list[Batch] = []
        n = len(self._entries)
        if n and self._envelope + self._payload + size + self._sep * n > self.max_bytes:
            ready.append(self._close())
        if not self._entries:
            self._started = now
        self._entries.append(entry)
        self._payload += size
        if len(self._entries) >= self.max_records:
            ready.append(self._close())
        return ready

    def fill(self, entries: Sequence[Entry], start: int, now: float) -> tuple[int, list[Batch]]:
        """Add `entries[start:]` in order, exactly as `add` would one by one, up to and including
        the first entry that closes a batch; stop before an entry too large for any body (the
        caller gives that one to `add`, which raises). Returns the index after the last entry
        added and the batches closed (`add`'s result for that entry).

        The sums run in C (`accumulate`, `bisect`): `add` is a Python call per record, and the
        spool feeder hands over a thousand records at a time on the listener's thread.
        """
        sep = self._sep
        room = self.max_bytes - self._envelope  # for payload and separators
        n = len(self._entries)
        # The open batch closes, full at the latest, within the next max_records - n entries:
        # sizes beyond them are not needed (a call costs what it looks at, not what is left).
        sizes = list(map(len, map(_data, islice(entries, start, start + self.max_records - n))))
        too_large = len(sizes)
        if sizes and max(sizes) > room:
            too_large = next(k for k, size in enumerate(sizes) if size > room)
        ends = list(accumulate(sizes))  # payload of entries[start:start+k+1]
        # Entry k joins the open batch while envelope + payload + separators <= max_bytes, i.e.
        # ends[k] + sep * (k + 1) <= room - payload - sep * (n - 1) (with n == 0, entry 0 joins).
        # That cost grows with k: bisect on it, computing it only at the probes.
        bound = room - self._payload - sep * (n - 1)
        fits = bisect_right(range(too_large), bound, key=lambda k: ends[k] + sep * (k + 1))
        full_at = self.max_records - n - 1  # the entry that fills the open batch to max_records
        if full_at < fits:  # entries up to full_at join, and the batch closes full
            self._join(entries, start, full_at + 1, ends, now)
            return start + full_at + 1, [self._close()]
        if fits < too_large:  # entries before `fits` join; entry `fits` closes the batch
            self._join(entries, start, fits, ends, now)
            return start + fits + 1, self.add(entries[start + fits], now)
        self._join(entries, start, too_large, ends, now)
        return start + too_large, []

    def _join(self, entries: Sequence[Entry], start: int, count: int, ends: list[int], now: float) -> None:
        """Append `count` entries from `start` that are known to fit the open batch."""
        if count:
            if not self._entries:
                self._started = now
            self._entries.extend(islice(entries, start, start + count))
            self._payload += ends[count - 1]

    def poll(self, now: float) -> Batch | None:
        """The open batch if its linger time has passed, else None."""
        if self._started is not None and now >= self._started + self.linger:
            return self._close()
        return None

    def flush(self) -> Batch | None:
        """The open batch regardless of time, or None when empty."""
        return self._close() if self._entries else None

    def _close(self) -> Batch:
        batch = Batch(tuple(self._entries), self._payload)
        self._entries = []
        self._payload = 0
        self._started = None
        return batch
