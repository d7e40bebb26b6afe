"""Token buckets (a `sources:` entry's `rate_limit`, one bucket per sender) and log throttling
(`LogThrottle`: a line per key at most once an interval; `LogBudget`: so many lines an interval).

Both are on paths where a flood arrives: a bucket decides in O(1) with a few float operations
and no allocation of its own, and a throttle keeps a flood from turning into a flood of log
lines (the counters have every event; the log says that it happens, and from whom).
"""

from __future__ import annotations

import time


class TokenBucket:
    """Admits at most `burst + rate * elapsed` messages over any stretch of time.

    It starts full (`burst` tokens, as of `now`); each admitted message takes one token, and
    tokens come back at `rate` per second up to `burst`. Times are the caller's (the listeners'
    receive times, so nothing reads a clock per message); a time earlier than the last one seen
    (a wall clock set back) refills nothing rather than failing.
    """

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int, now: float = 0.0) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"a token bucket needs rate > 0 and burst >= 1, got rate={rate}, burst={burst}")
        self.rate = float(rate)
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = now

    def take(self, now: float) -> bool:
        """One message at time `now`: True if admitted (a token taken), False if over the limit."""
        tokens = self.tokens
        if now > self.stamp:
            tokens += (now - self.stamp) * self.rate
            if tokens > self.burst:
                tokens = self.burst
            self.stamp = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return True
        self.tokens = tokens
        return False


class LogThrottle:
    """Says whether an event of `key` (a peer address) may be logged now: at most once per
    `interval` seconds per key. At most `max_keys` keys are remembered; when that many were all
    logged within the interval, a new key is not logged (its events are still counted by the
    caller), so a flood from many addresses logs at most `max_keys` lines per interval."""

    def __init__(self, interval: float = 60.0, max_keys: int = 4096) -> None:
        self.interval = interval
        self.max_keys = max_keys
        self._last: dict[str, float] = {}

    def allow(self, key: str, now: float | None = None) -> bool:
        """True if `key` was not logged in the last `interval` seconds (and note that it is now)."""
        now = time.monotonic() if now is None else now
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            return False
        if last is None and len(self._last) >= self.max_keys:
            self._last = {k: t for k, t in self._last.items() if now - t < self.interval}
            if len(self._last) >= self.max_keys:
                return False
        self._last[key] = now
        return True


class LogBudget:
    """At most `lines` log lines per window of `interval` seconds, for events that are each worth
    a line until they come in a flood (a new sender refused: one line each, but not 10,000 lines
    for 10,000 spoofed addresses). A window begins with the first line after the last window
    ended; events beyond its lines are counted in `suppressed`, for the caller's summary line
    once the window ends (`window_end`)."""

    def __init__(self, lines: int = 10, interval: float = 60.0) -> None:
        self.lines = lines
        self.interval = interval
        self.window_end = 0.0  # when the current window ends (the caller's clock)
        self.suppressed = 0  # events not logged since the last `take_suppressed`
        self._used = 0

    def allow(self, now: float) -> bool:
        """True if an event at `now` may be logged; False (and counted) when the window's lines
        are used up."""
        if now >= self.window_end:
            self.window_end = now + self.interval
            self._used = 0
        if self._used < self.lines:
            self._used += 1
            return True
        self.suppressed += 1
        return False

    def take_suppressed(self) -> int:
        """The events not logged since this was last asked (for a summary line)."""
        suppressed, self.suppressed = self.suppressed, 0
        return suppressed
