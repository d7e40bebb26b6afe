"""`NetwrixClient`: submit Activity Records, get them written, lose none.

The client encodes each record once, cuts the fragments into batches (`Batcher`), and runs
`max_in_flight` delivery tasks over one keep-alive connection pool. It keeps a ledger of every
record it accepted that is not yet delivered or quarantined: after a halt (bad credentials, wrong
URL, untrusted certificate) or on close, `pending()` returns exactly those records, so a caller
(the durable spool, a test) can keep them. Nothing is dropped without a quarantine entry.

Example:
    >>> async with NetwrixClient(NetwrixConfig(url="https://nwx:9699"), BatchConfig()) as client:  # doctest: +SKIP
    ...     for record in records:
    ...         await client.submit(record)
    ...     await client.flush()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from itertools import islice, repeat
from types import TracebackType
from typing import Protocol

import httpx

from ..errors import DeliveryError, RecordTooLarge
from ..trouble import Trouble
from .batcher import Batch, Batcher, Entry, entry_key
from .config import BatchConfig, NetwrixConfig
from .delivery import Delivery, DeliveryStats, Sink
from .encoding import encoder_for
from .records import ActivityRecord
from .retry import Backoff
from .sink import NetwrixSink, SendResult

log = logging.getLogger("nwsyslog.client")


class Quarantine(Protocol):
    """Where records that must not be sent again go, with the reason. It also logs each one,
    naming the record the way an operator finds it there (the delivery process: by the spool id
    `nwsyslog spool list` shows and `nwsyslog spool retry` takes, once it is stored)."""

    def put(self, entry: Entry, reason: str) -> None:
        """Keep `entry` with `reason`."""
        ...


@dataclass
class MemoryQuarantine:
    """A quarantine held in memory (tests, one-shot tools); the spool provides a durable one."""

    items: list[tuple[Entry, str]] = field(default_factory=list)

    def put(self, entry: Entry, reason: str) -> None:
        """Keep `entry` with `reason` in `items`, and log it by its key."""
        log.error("record %s quarantined: %s", entry.key, reason)
        self.items.append((entry, reason))


class NetwrixClient:
    """Batches and delivers records to the Integration API; see the module docstring."""

    def __init__(
        self,
        netwrix: NetwrixConfig,
        batching: BatchConfig,
        *,
        quarantine: Quarantine | None = None,
        sink: Sink | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_delivered: Callable[[Sequence[Entry]], None] | None = None,
        on_request: Callable[[int, SendResult], None] | None = None,
        trouble: Trouble | None = None,
        waiting: Callable[[], int] | None = None,
    ) -> None:
        """`trouble`: the failed writes' bookkeeping, to share one across successive clients
        (a new one if None); `waiting()`: how many records wait to be delivered, for the log
        lines about failed writes (None: the records this client holds unsettled)."""
        self.encoder = encoder_for(netwrix.format)
        self.quarantine: Quarantine = quarantine if quarantine is not None else MemoryQuarantine()
        self._owned_sink = sink is None
        self._sink: Sink = sink if sink is not None else NetwrixSink(netwrix, transport=transport)
        self._batcher = Batcher(
            self.encoder,
            max_bytes=batching.max_batch_bytes,
            max_records=batching.max_batch_records,
            linger=batching.linger,
        )
        retry = netwrix.retry
        self._delivery = Delivery(
            self._sink,
            self.encoder,
            self,
            backoff=Backoff(retry.base, retry.factor, retry.cap),
            max_attempts=retry.max_attempts,
            on_request=on_request,
            bisect_after_500=retry.bisect_after_500,
            trouble=trouble,
            waiting=waiting if waiting is not None else lambda: len(self._unsettled),
        )
        self._on_delivered = on_delivered
        self._workers_n = netwrix.max_in_flight
        self._clock = clock
        self._queue: asyncio.Queue[Batch] = asyncio.Queue(maxsize=2 * netwrix.max_in_flight)
        # Insertion order is submission order.
        self._unsettled: dict[Hashable, Entry] = {}
        self._next_key = 0
        self._settled = asyncio.Event()
        self._settled.set()
        self._open_batch = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.error: DeliveryError | None = None

    @property
    def stats(self) -> DeliveryStats:
        """What the delivery loop did so far."""
        return self._delivery.stats

    @property
    def trouble(self) -> Trouble:
        """The failed writes since the last accepted one (`trouble.failing` while retrying)."""
        return self._delivery.trouble

    async def start(self) -> None:
        """Start the delivery tasks and the linger timer."""
        if self._tasks:
            return
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"nwsyslog-deliver-{i}") for i in range(self._workers_n)
        ]
        self._tasks.append(asyncio.create_task(self._linger(), name="nwsyslog-linger"))

    async def __aenter__(self) -> NetwrixClient:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def submit(self, record: ActivityRecord) -> None:
        """Accept one record. Waits while `2 * max_in_flight` batches are already queued."""
        entry = Entry(self._next_key, self.encoder.encode(record))
        self._next_key += 1
        await self.submit_entry(entry)

    async def submit_entry(self, entry: Entry) -> None:
        """Accept one already encoded record under the caller's key (a spool record key), which must
        be unique among unsettled entries. Waits like `submit`."""
        if self.error is None:
            # After a halt nothing will settle this record: flush() must not wait for it.
            self._settled.clear()
        ready = self._accept(entry, self._clock())
        self._open_batch.set()
        for batch in ready:
            await self._queue.put(batch)

    async def submit_entries(self, entries: Sequence[Entry]) -> int:
        """Accept several entries in order, each as `submit_entry` would, with the per-call
        work (the clock, the events) done once; waits like `submit` whenever a batch closes.
        Stops early when delivery halts; returns how many entries it accepted."""
        if not entries:
            return 0
        now = self._clock()
        if self.error is None:
            self._settled.clear()
        # `fill` stops after each entry that closes a batch: the wait for the queue comes at the
        # same points as with `submit_entry` per entry, and a halt stops the taking there too.
        fill, unsettled, taken = self._batcher.fill, self._unsettled, 0
        while taken < len(entries) and self.error is None:
            end, ready = fill(entries, taken, now)
            if end == taken:  # entries[taken] is too large for any body: quarantined
                ready = self._accept(entries[taken], now)
                end += 1
            else:
                unsettled.update(
                    zip(map(entry_key, islice(entries, taken, end)), islice(entries, taken, end), strict=True)
                )
            taken = end
            for batch in ready:
                self._open_batch.set()  # the linger timer may run while this waits
                await self._queue.put(batch)
        self._open_batch.set()
        return taken

    def _accept(self, entry: Entry, now: float) -> list[Batch]:
        """Hold `entry` as unsettled and batch it: the batches this closed. A record too large
        for any body is quarantined instead."""
        self._unsettled[entry.key] = entry
        try:
            return self._batcher.add(entry, now)
        except RecordTooLarge as exc:
            self.quarantined(entry, str(exc))
            return []

    async def flush(self) -> None:
        """Send the open batch now and wait until every accepted record is settled.

        Raises the halting `DeliveryError` if delivery stopped; `pending()` then has the rest.
        """
        batch = self._batcher.flush()
        if batch is not None:
            await self._queue.put(batch)
        await self._settled.wait()
        if self.error is not None:
            raise self.error

    @property
    def unsettled(self) -> int:
        """How many accepted records are neither delivered nor quarantined yet."""
        return len(self._unsettled)

    def pending(self) -> list[Entry]:
        """Records accepted but neither delivered nor quarantined, in submission order."""
        return list(self._unsettled.values())

    async def aclose(self, timeout: float | None = None) -> list[Entry]:
        """Flush (waiting up to `timeout` seconds, None = until settled), stop, return `pending()`."""
        with contextlib.suppress(TimeoutError, DeliveryError):
            await asyncio.wait_for(self.flush(), timeout)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._owned_sink and isinstance(self._sink, NetwrixSink):
            await self._sink.aclose()
        left = self.pending()
        if left:
            # Not a loss: the caller (the spool) still holds them and sends them again.
            log.info("%d records not acknowledged by the server yet; the caller keeps them", len(left))
        return left

    # DeliveryListener: the only signal that flows back.
    def delivered(self, entries: Sequence[Entry]) -> None:
        if self._on_delivered is not None:
            self._on_delivered(entries)
        self._settle(entries)

    def quarantined(self, entry: Entry, reason: str) -> None:
        self.quarantine.put(entry, reason)
        self._settle((entry,))

    def _settle(self, entries: Sequence[Entry]) -> None:
        deque(map(self._unsettled.pop, map(entry_key, entries), repeat(None)), maxlen=0)  # (C-level: per record)
        if not self._unsettled:
            self._settled.set()

    async def _worker(self) -> None:
        while True:
            batch = await self._queue.get()
            try:
                if self.error is None:
                    await self._delivery.deliver(batch)
                else:
                    self._settled.set()  # halted: the batch stays in the ledger, unsent
            except DeliveryError as exc:
                # Keep every record (they stay in the ledger) and stop sending: one loud message.
                if self.error is None:
                    self.error = exc
                    log.error("delivery stopped, %d records kept: %s", len(self._unsettled), exc)
                self._settled.set()
            finally:
                self._queue.task_done()

    async def _linger(self) -> None:
        while True:
            await self._open_batch.wait()
            deadline = self._batcher.deadline
            if deadline is None:
                self._open_batch.clear()
                continue
            delay = deadline - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            batch = self._batcher.poll(self._clock())
            if batch is not None:
                await self._queue.put(batch)
