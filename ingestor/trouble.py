"""`Trouble`: the bookkeeping of an operation that keeps failing until it works again.

The service's spool commits, the delivery process's commits of delivered ids and the writes to
Netwrix share one pattern: the first failure is logged at once, the attempts that follow wait a
backoff, a "still failing" line comes at most every `log_every` seconds, and the recovery is
logged once with how long the trouble lasted. `Trouble` keeps that state; the caller keeps its
own log texts and decides what a failure is. Times are the caller's clock (monotonic), except
`since_wall`, the wall-clock time (epoch seconds) at which the trouble began, for reports.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class Episode:
    """A stretch of trouble that ended (what `Trouble.recovered` returns)."""

    reason: str  # the last failure's
    attempts: int  # failures it held
    lasted: float  # seconds from its first failure to the recovery
    logged: bool  # whether a line announced it (so its end is worth a line too)


class Trouble:
    """One operation's failures in a row; see the module docstring.

    `failed(reason, now)` counts a failure, sets the next attempt's time (`retry_at`, after a
    doubling backoff from `backoff_min` to `backoff_max`) and says whether to log a line: for the
    first failure, and then at most once per `log_every` seconds. `log_due(now)` says the same for
    a caller that logs while it waits rather than when it fails. `recovered(now)` ends the trouble.

    With `quiet_repeats`, trouble that begins again within `log_every` seconds of the last line
    (a flaky server: one request in three fails) is not announced at its first failure: its
    failures are counted in `brief`, and it is logged like lasting trouble once `log_every` has
    passed since the last line. A flapping operation then logs a few lines a minute, not two per
    failure.
    """

    def __init__(
        self,
        *,
        backoff_min: float = 0.25,
        backoff_max: float = 5.0,
        log_every: float = 60.0,
        quiet_repeats: bool = False,
    ) -> None:
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.log_every = log_every
        self.quiet_repeats = quiet_repeats
        self.reason: str | None = None  # the last failure's; None while the operation works
        self.since = 0.0  # when the trouble began (the caller's clock)
        self.since_wall = 0.0  # when the trouble began (time.time())
        self.attempts = 0  # failures since it began
        self.retry_at = 0.0  # the next attempt's time (the caller's clock)
        self.backoff = backoff_min
        self.announced = False  # a line said that this trouble began
        self.brief = 0  # failures of unannounced trouble that ended before it was logged
        self._logged: float | None = None  # when the last line about this operation was logged

    @property
    def failing(self) -> bool:
        """Whether the last attempt failed."""
        return self.reason is not None

    def due(self, now: float) -> bool:
        """Whether an attempt may be made now (no trouble, or its backoff has passed)."""
        return self.reason is None or now >= self.retry_at

    def lasted(self, now: float) -> float:
        """Seconds since the trouble began (0 without trouble)."""
        return now - self.since if self.reason is not None else 0.0

    def failed(self, reason: str | BaseException, now: float) -> bool:
        """Count one failure (`reason`: its text, or the exception); True if it is to be logged."""
        text = reason if isinstance(reason, str) else str(reason) or type(reason).__name__
        if self.reason is None:
            self.since, self.since_wall = now, time.time()
            self.attempts = 0
            self.backoff = self.backoff_min
            self.announced = False
        else:
            self.backoff = min(self.backoff * 2, self.backoff_max)
        self.reason = text
        self.attempts += 1
        self.retry_at = now + self.backoff
        if self.attempts == 1 and not (self.quiet_repeats and self._recently_logged(now)):
            return self._log(now)
        return self.log_due(now)

    def log_due(self, now: float) -> bool:
        """While in trouble: True (and noted as logged) once `log_every` seconds passed since the
        last line about it."""
        if self.reason is None or self._recently_logged(now):
            return False
        return self._log(now)

    def recovered(self, now: float) -> Episode | None:
        """The operation worked: end the trouble; what it was, or None if there was none."""
        if self.reason is None:
            return None
        episode = Episode(self.reason, self.attempts, now - self.since, self.announced)
        if self.announced:
            self._logged = now  # (the caller logs the recovery)
        else:
            self.brief += self.attempts
        self.reason = None
        self.announced = False
        return episode

    def take_brief(self) -> int:
        """The failures of trouble that ended unannounced since this was last asked (for a line's
        "N brief failures in between")."""
        brief, self.brief = self.brief, 0
        return brief

    def _recently_logged(self, now: float) -> bool:
        return self._logged is not None and now - self._logged < self.log_every

    def _log(self, now: float) -> bool:
        self._logged = now
        self.announced = True
        return True


def duration(seconds: float) -> str:
    """`seconds` for a log line: "0.4s", "42s", "2m10s", "3h05m"."""
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole // 60 % 60:02d}m"


def wall_time(epoch: float) -> str:
    """An epoch time for a log line or a reason: ISO 8601 in UTC, to the second."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
