"""What a write response means, as one table, and how long to wait before trying again.

`classify()` is the only place an HTTP status becomes a decision; `Backoff` is exponential with
full jitter (a random delay between 0 and the exponential cap), so many senders retrying after one
outage do not return in lockstep.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum


class Outcome(Enum):
    """What the delivery loop does with a batch after one attempt."""

    DELIVERED = "delivered"  # 200: acknowledge every record
    RETRY = "retry"  # 500, 503, 429, timeouts, connection errors: same batch again, later
    SPLIT = "split"  # 413: send the halves
    REJECTED = "rejected"  # 400: bisect to the bad records, quarantine them, send the rest
    HALT = "halt"  # 401, 403, 404, 405, TLS pin mismatch: stop sending, keep everything


# The status table of the Netwrix write endpoint, plus the generic HTTP codes a proxy in front of
# it may answer with. Anything not listed is treated by its class (see `classify`).
_STATUS_TABLE: dict[int, Outcome] = {
    200: Outcome.DELIVERED,
    400: Outcome.REJECTED,
    401: Outcome.HALT,
    403: Outcome.HALT,
    404: Outcome.HALT,
    405: Outcome.HALT,
    408: Outcome.RETRY,
    413: Outcome.SPLIT,
    429: Outcome.RETRY,
    500: Outcome.RETRY,
    502: Outcome.RETRY,
    503: Outcome.RETRY,
    504: Outcome.RETRY,
}


def classify(status: int) -> Outcome:
    """The outcome of a write that got HTTP `status`.

    Unlisted 2xx count as delivered, unlisted 5xx are retried, and any other unlisted code
    halts: an answer this client does not understand must not cost records.
    """
    outcome = _STATUS_TABLE.get(status)
    if outcome is not None:
        return outcome
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if 500 <= status < 600:
        return Outcome.RETRY
    return Outcome.HALT


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter.

    Attempt k (0-based) waits a uniform random time in [0, min(cap, base * factor**k)]; a
    server's Retry-After, when given, is a floor (never above `cap`).
    """

    base: float = 0.5
    factor: float = 2.0
    cap: float = 30.0

    def delay(self, attempt: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number `attempt` (0 for the first retry)."""
        ceiling = min(self.cap, self.base * self.factor ** min(attempt, 64))
        wait = (rng or random).uniform(0.0, ceiling)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.cap))
        return wait
