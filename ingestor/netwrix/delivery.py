"""Deliver one batch completely: every record ends delivered or quarantined, or the caller keeps it.

The loop applies each write's `Outcome`:

- DELIVERED: the listener acknowledges the batch's records.
- RETRY (5xx, timeouts, connection errors): the same body again after a jittered backoff.
- SPLIT (413): the two halves, in order. A single record refused with 413 is quarantined. The
  smallest refused size is remembered, so later batches that large are split before sending
  rather than refused again.
- REJECTED (400): bisect; the half that fails again is split further until the offending records
  stand alone and are quarantined with the server's ErrorList text. The rest is delivered.
- HALT (401, 403, 404, 405, untrusted or mismatched certificate): raise `DeliveryHalted` carrying
  every record of the batch not yet settled, so the caller keeps them.

A persistent 500. Netwrix answers 500 when "one or more Activity Records were not processed",
without saying which, so one record the server never takes would block everything behind it.
A body answered 500 on every attempt for `bisect_after_500` seconds (any other answer, a 503, a
timeout, a refused connection, starts the count again: those are outages) is bisected like a 400:

- A half answered 500 is split again at once when the server accepted a write (200, on any
  worker) since the bisection's 500s began: the server works, this content fails. Otherwise the
  half is set aside; pieces set aside take turns after the rest of the batch, with the retry
  backoff, and one is split when that evidence comes or after another `bisect_after_500` of 500s.
- A record answered 500 alone is quarantined, the reason saying "persistent 500" with the
  server's text, once its 500s have lasted `bisect_after_500` and the server accepted another
  write since the 500s of its batch began. A server that accepts nothing (an expired licence, a broken database)
  quarantines nothing: that is an outage, retried forever like a 503 (its batches keep being
  split, a level per `bisect_after_500`, so they may go out record by record once it is back;
  the pieces take turns, each with its backoff, so the request rate stays about that of one retry).
  The evidence counts from the start of the bisection: a server that breaks down in the middle
  of one, after accepting part of the batch, can have the batch's unsettled records quarantined.
- Halves that succeed are delivered; a record may then reach the server twice when it had stored
  part of a failed body (Netwrix's 500 allows that): `DeliveryStats.bisect_resends` counts the
  records sent again by these bisections. Isolating one such record among n costs at most
  2*ceil(log2 n) + 3 requests besides the retries, which keep their backoff.

Records set aside go out after the rest of their batch, so a persistent 500 can change the order.
502, 503, 504, 408, 429, timeouts and connection errors are retried forever as before;
`bisect_after_500` 0 retries a 500 forever too.

Failed writes are one `Trouble`, shared by every task delivering through one `Delivery` (and, given
one, by successive deliveries): the first failure is logged at WARNING, then at most one "still
failing" line per `TROUBLE_LOG_EVERY` seconds with the attempts, the last reason and the records
waiting, and the first write accepted after it says "delivering again" once. Trouble that begins
again within that minute (a flaky server) is counted and logged with the next line, not at once.
Each retry itself is logged at DEBUG.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from ..errors import AuthError, DeliveryError, DeliveryHalted, EndpointError, RetriesExhausted
from ..trouble import Trouble, duration
from .batcher import Batch, Entry
from .encoding import Encoder
from .retry import Backoff, Outcome
from .sink import SendResult

log = logging.getLogger("nwsyslog.delivery")

TROUBLE_LOG_EVERY = 60.0  # seconds between "Netwrix writes still failing" lines


class Sink(Protocol):
    """Anything that can post a body and classify the answer (`NetwrixSink` in production)."""

    async def send(self, body: bytes) -> SendResult:
        """Post one request body."""
        ...


class DeliveryListener(Protocol):
    """Receives the fate of every record: the only signal flowing back upstream."""

    def delivered(self, entries: Sequence[Entry]) -> None:
        """The server acknowledged these records (HTTP 200)."""
        ...

    def quarantined(self, entry: Entry, reason: str) -> None:
        """This record will not be sent again without a person's decision; `reason` says why."""
        ...


@dataclass
class DeliveryStats:
    """Counters of what the delivery loop did (all monotonic)."""

    requests: int = 0
    delivered: int = 0
    quarantined: int = 0
    retries: int = 0
    splits: int = 0
    bisections: int = 0  # after a 400 or a persistent 500
    bisections_500: int = 0  # of those, after a persistent 500
    bisect_resends: int = 0  # records in requests for halves of a persistent-500 bisection


class _Step(Enum):
    """What `_attempt` decided about a 500 instead of retrying it in place."""

    POISON = "poison"  # persistent 500: bisect, or quarantine a single record
    ASIDE = "aside"  # to the back of the set-aside queue: the rest of the batch goes first


@dataclass(slots=True)
class _Part:
    """A batch or a piece of one on its way, with what the 500 rules need to know about it."""

    batch: Batch
    start: int  # index of its first record in the batch given to `deliver` (to keep `pending` in order)
    since: float | None = None  # in a persistent-500 bisection: when the 500s of its batch began
    first_500: float | None = None  # when the current run of 500s to this body began
    aside: bool = False  # set aside at least once
    attempts: int = 0  # failed attempts so far (the backoff's and `max_attempts`' count)

    def halves(self) -> tuple[_Part, _Part]:
        """The two halves, in order, in the same bisection."""
        first, second = self.batch.halves()
        return _Part(first, self.start, self.since), _Part(second, self.start + len(first), self.since)


class Delivery:
    """Applies write outcomes to batches; see the module docstring for the rules."""

    def __init__(
        self,
        sink: Sink,
        encoder: Encoder,
        listener: DeliveryListener,
        *,
        backoff: Backoff | None = None,
        max_attempts: int | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_request: Callable[[int, SendResult], None] | None = None,
        bisect_after_500: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        trouble: Trouble | None = None,
        waiting: Callable[[], int] | None = None,
    ) -> None:
        """`bisect_after_500` seconds of 500s make a body bisected (0: retried forever); see the
        module docstring. `trouble` keeps the failed writes (a new one if None; `clock`'s times);
        `waiting()` says how many records wait to be delivered, for the log lines about them.
        `clock` and `sleep` are injectable for tests."""
        self.trouble = trouble if trouble is not None else Trouble(log_every=TROUBLE_LOG_EVERY, quiet_repeats=True)
        self._waiting = waiting
        self._on_request = on_request  # (records in the body, result): for metrics
        self._bisect_after_500 = bisect_after_500
        self._clock = clock
        self._last_accepted: float | None = None  # when any write last got 200 (all workers)
        self._sink = sink
        self._encoder = encoder
        self._listener = listener
        self._backoff = backoff or Backoff()
        self._max_attempts = max_attempts
        self._sleep = sleep
        self._too_large: int | None = None
        self.stats = DeliveryStats()

    async def deliver(self, batch: Batch) -> None:
        """Deliver or quarantine every record of `batch`.

        Raises `DeliveryHalted` or `RetriesExhausted` with `.pending` holding the records of the
        batch that were neither delivered nor quarantined (in order).
        """
        stack = [_Part(batch, 0)]
        aside: deque[_Part] = deque()  # answered 500, waiting: they take turns after the rest
        while stack or aside:
            part = stack.pop() if stack else aside.popleft()
            size = part.batch.size(self._encoder)
            if len(part.batch) > 1 and self._too_large is not None and size >= self._too_large:
                self.stats.splits += 1
                _push_halves(stack, part)
                continue
            try:
                result, step = await self._attempt(part)
            except DeliveryError as exc:
                exc.pending = _entries_in_order((part, *stack, *aside))
                raise
            if step is _Step.ASIDE:
                part.aside = True
                aside.append(part)
            elif step is _Step.POISON:
                self._persistent_500(stack, part, result)
            elif result.outcome is Outcome.DELIVERED:
                self.stats.delivered += len(part.batch)
                self._listener.delivered(part.batch.entries)
            elif result.outcome is Outcome.SPLIT:
                self._learn_too_large(size)
                if len(part.batch) == 1:
                    self._quarantine(
                        part.batch.entries[0],
                        f"the server refused this record with 413 even alone (body of {size} bytes)",
                    )
                else:
                    self.stats.splits += 1
                    _push_halves(stack, part)
            else:  # REJECTED
                if len(part.batch) == 1:
                    self._quarantine(part.batch.entries[0], f"rejected by the server (400): {result.reason}")
                else:
                    self.stats.bisections += 1
                    _push_halves(stack, part)

    def _persistent_500(self, stack: list[_Part], part: _Part, result: SendResult) -> None:
        """Bisect a body the server keeps answering 500, or quarantine a record it does alone."""
        if len(part.batch) == 1:
            now = self._clock()
            lasted = now - (part.first_500 if part.first_500 is not None else now)
            self._quarantine(
                part.batch.entries[0],
                f"persistent 500: the server answered every attempt to write this record alone with 500 "
                f"for {lasted:.1f}s while accepting other records: {result.reason}",
            )
            return
        if part.since is None:
            part.since = part.first_500
            log.warning(
                "write of %d records answered 500 on every attempt for %.1fs (%s); bisecting to find "
                "the records the server does not take",
                len(part.batch),
                self._bisect_after_500,
                result.reason,
            )
        self.stats.bisections += 1
        self.stats.bisections_500 += 1
        _push_halves(stack, part)

    async def _attempt(self, part: _Part) -> tuple[SendResult, _Step | None]:
        """Send until the answer is not RETRY, or a 500 calls for a `_Step`; raise on HALT or an
        exhausted retry budget."""
        batch = part.batch
        body = batch.body(self._encoder)
        while True:
            result = await self._sink.send(body)
            self.stats.requests += 1
            if part.since is not None:
                self.stats.bisect_resends += len(batch)
            if self._on_request is not None:
                self._on_request(len(batch), result)
            if result.outcome is Outcome.DELIVERED:
                self._last_accepted = self._clock()
                if self.trouble.failing:
                    self._recovered(self._last_accepted)
                return result, None
            if result.outcome is Outcome.HALT:
                raise _halt_error(result)
            if result.outcome is not Outcome.RETRY:
                return result, None
            now = self._clock()
            if self.trouble.failed(result.reason, now):
                self._log_trouble(now)
            step: _Step | None = None
            if result.status == 500 and self._bisect_after_500 > 0:
                first = part.first_500 = now if part.first_500 is None else part.first_500
                if part.since is not None and not part.aside:
                    # A half of a persistent-500 bisection, answered 500 the first time it went out.
                    many = len(batch) > 1
                    return result, _Step.POISON if many and self._accepted_since(part.since) else _Step.ASIDE
                step = self._judge_500(part, first, now)
                if step is _Step.POISON:
                    return result, step
            else:
                part.first_500 = None  # an outage, not this body's content: count again
            part.attempts += 1
            if self._max_attempts is not None and part.attempts >= self._max_attempts:
                raise RetriesExhausted(part.attempts, result.reason)
            delay = self._backoff.delay(part.attempts - 1, result.retry_after)
            self.stats.retries += 1
            log.debug(
                "write of %d records failed (%s); retry %d in %.2fs",
                len(batch),
                result.reason,
                part.attempts,
                delay,
            )
            await self._sleep(delay)
            if step is _Step.ASIDE:
                return result, step

    def _log_trouble(self, now: float) -> None:
        """The line about failing writes that `Trouble.failed` asked for: the first, or the next
        "still failing" one."""
        trouble = self.trouble
        brief = trouble.take_brief()
        also = f" (and {brief:,} brief failures since the last line)" if brief else ""
        if trouble.attempts == 1:
            log.warning(
                "Netwrix writes failing (%s): retrying with backoff%s%s",
                trouble.reason,
                self._waiting_text("; {:,} records waiting"),
                also,
            )
        else:
            log.warning(
                "Netwrix writes still failing after %s: %d attempts, last: %s%s%s",
                duration(trouble.lasted(now)),
                trouble.attempts,
                trouble.reason,
                self._waiting_text("; {:,} records waiting"),
                also,
            )

    def _recovered(self, now: float) -> None:
        """A write was accepted after failed ones: the trouble is over (said once, if it was said)."""
        episode = self.trouble.recovered(now)
        if episode is not None and episode.logged:
            log.warning(
                "delivering again; %s %s (%d failed attempts, last: %s)",
                self._waiting_text("{:,} records waited", "records waited"),
                duration(episode.lasted),
                episode.attempts,
                episode.reason,
            )

    def _waiting_text(self, template: str, otherwise: str = "") -> str:
        """`template` with the number of records waiting, or `otherwise` when it is not known."""
        return template.format(self._waiting()) if self._waiting is not None else otherwise

    def _judge_500(self, part: _Part, first: float, now: float) -> _Step | None:
        """After another 500 to `part` (500s only since `first`): bisect or quarantine it
        (POISON), give the other records set aside their turn first (ASIDE), or retry it in place
        (None)."""
        lasted = now - first >= self._bisect_after_500
        if len(part.batch) > 1:
            if lasted or (part.since is not None and self._accepted_since(part.since)):
                return _Step.POISON
        elif lasted:
            if self._accepted_since(part.since if part.since is not None else first):
                return _Step.POISON
            # The server accepted nothing meanwhile: an outage, whatever its status says. Retry,
            # but let the rest of the batch (which may prove the server works) go first.
            return _Step.ASIDE
        return _Step.ASIDE if part.aside else None

    def _accepted_since(self, moment: float) -> bool:
        """Whether any write of this delivery (any worker) got 200 at or after `moment`."""
        return self._last_accepted is not None and self._last_accepted >= moment

    def _learn_too_large(self, size: int) -> None:
        if self._too_large is None or size < self._too_large:
            self._too_large = size
            log.warning(
                "the server refused a %d-byte body with 413; splitting bodies this large from now on "
                "(set max_batch_bytes below %d to avoid the round trips)",
                size,
                size,
            )

    def _quarantine(self, entry: Entry, reason: str) -> None:
        # (The listener's quarantine logs it, naming the record as the operator finds it there.)
        self.stats.quarantined += 1
        self._listener.quarantined(entry, reason)


def _push_halves(stack: list[_Part], part: _Part) -> None:
    first, second = part.halves()
    # The stack pops from the end: push the second half first so records go out in order.
    stack.append(second)
    stack.append(first)


def _entries_in_order(parts: Iterable[_Part]) -> tuple[Entry, ...]:
    """The entries of disjoint pieces of one batch, in the batch's order."""
    return tuple(e for p in sorted(parts, key=lambda p: p.start) for e in p.batch.entries)


def _halt_error(result: SendResult) -> DeliveryHalted:
    if result.status in (401, 403):
        return AuthError(result.reason, status=result.status)
    if result.status in (404, 405):
        return EndpointError(result.reason, status=result.status)
    return DeliveryHalted(result.reason, status=result.status)
