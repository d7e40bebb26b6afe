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
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..errors import AuthError, DeliveryError, DeliveryHalted, EndpointError, RetriesExhausted
from .batcher import Batch, Entry
from .encoding import Encoder
from .retry import Backoff, Outcome
from .sink import SendResult

log = logging.getLogger("nwsyslog.delivery")


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
    bisections: int = 0


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
    ) -> None:
        self._on_request = on_request  # (records in the body, result): for metrics
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
        stack = [batch]
        while stack:
            part = stack.pop()
            size = part.size(self._encoder)
            if len(part) > 1 and self._too_large is not None and size >= self._too_large:
                self.stats.splits += 1
                _push_halves(stack, part)
                continue
            try:
                result = await self._attempt(part)
            except DeliveryError as exc:
                exc.pending = tuple(e for p in (part, *reversed(stack)) for e in p.entries)
                raise
            if result.outcome is Outcome.DELIVERED:
                self.stats.delivered += len(part)
                self._listener.delivered(part.entries)
            elif result.outcome is Outcome.SPLIT:
                self._learn_too_large(size)
                if len(part) == 1:
                    self._quarantine(
                        part.entries[0],
                        f"the server refused this record with 413 even alone (body of {size} bytes)",
                    )
                else:
                    self.stats.splits += 1
                    _push_halves(stack, part)
            else:  # REJECTED
                if len(part) == 1:
                    self._quarantine(part.entries[0], f"rejected by the server (400): {result.reason}")
                else:
                    self.stats.bisections += 1
                    _push_halves(stack, part)

    async def _attempt(self, batch: Batch) -> SendResult:
        """Send until the answer is not RETRY; raise on HALT or an exhausted retry budget."""
        body = batch.body(self._encoder)
        attempt = 0
        while True:
            result = await self._sink.send(body)
            self.stats.requests += 1
            if self._on_request is not None:
                self._on_request(len(batch), result)
            if result.outcome is Outcome.RETRY:
                attempt += 1
                if self._max_attempts is not None and attempt >= self._max_attempts:
                    raise RetriesExhausted(attempt, result.reason)
                delay = self._backoff.delay(attempt - 1, result.retry_after)
                self.stats.retries += 1
                level = logging.WARNING if attempt % 10 == 0 else logging.INFO
                log.log(
                    level,
                    "write of %d records failed (%s); retry %d in %.2fs",
                    len(batch),
                    result.reason,
                    attempt,
                    delay,
                )
                await self._sleep(delay)
                continue
            if result.outcome is Outcome.HALT:
                raise _halt_error(result)
            return result

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
        self.stats.quarantined += 1
        log.error("record %s quarantined: %s", entry.key, reason)
        self._listener.quarantined(entry, reason)


def _push_halves(stack: list[Batch], batch: Batch) -> None:
    first, second = batch.halves()
    # The stack pops from the end: push the second half first so records go out in order.
    stack.append(second)
    stack.append(first)


def _halt_error(result: SendResult) -> DeliveryHalted:
    if result.status in (401, 403):
        return AuthError(result.reason, status=result.status)
    if result.status in (404, 405):
        return EndpointError(result.reason, status=result.status)
    return DeliveryHalted(result.reason, status=result.status)
