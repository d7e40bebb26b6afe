"""The one exception tree of nwsyslog.

```
NwsyslogError
├── ConfigError(reason, path=None, line=None, key=None)   -> exit code 2
│   └── RuleError(reason, path, line, key, rule_id)        a rule file that cannot be loaded
├── StartupError(reason)                                   -> exit code 3
├── RenderError(rule_id, reason)                           a matched message that cannot become a record
├── RecordTooLarge(size, limit)                            one record cannot fit in any request
└── DeliveryError(message)                                 raised by the output path only
    ├── DeliveryHalted(status, message)                    401/403/404/405/pinning: stop, keep data
    │   ├── AuthError                                      401/403
    │   ├── EndpointError                                  404/405
    │   └── TlsPinError                                    certificate thumbprint mismatch
    └── RetriesExhausted(attempts, last)                   only when a retry limit is configured
```

Normal outcomes (a record rejected by the server, a 503) are values (`ingestor.netwrix.retry.Outcome`),
not exceptions; these classes are for what a caller has to act on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .netwrix.batcher import Entry


class NwsyslogError(Exception):
    """Base class of every error nwsyslog raises on purpose."""


class ConfigError(NwsyslogError):
    """Bad configuration or rule file: names where, and why."""

    def __init__(
        self, reason: str, *, path: str | None = None, line: int | None = None, key: str | None = None
    ) -> None:
        self.reason = reason
        self.path = path
        self.line = line
        self.key = key
        where = ":".join(str(p) for p in (path, line) if p is not None)
        prefix = f"{where}: " if where else ""
        field = f"{key}: " if key else ""
        super().__init__(f"{prefix}{field}{reason}")


class RuleError(ConfigError):
    """A rule that cannot be loaded; names the file, line, rule id and field."""

    def __init__(
        self,
        reason: str,
        *,
        path: str | None = None,
        line: int | None = None,
        key: str | None = None,
        rule_id: str | None = None,
    ) -> None:
        self.rule_id = rule_id
        if rule_id:
            reason = f"rule {rule_id!r}: {reason}"
        super().__init__(reason, path=path, line=line, key=key)


class StartupError(NwsyslogError):
    """The service could not start (bind failed, spool unusable, server unreachable)."""


class RenderError(NwsyslogError):
    """A rule matched a message but its record cannot be built (a required field came out
    empty, a value the schema refuses). Counted per rule, never silently dropped."""

    def __init__(self, rule_id: str, reason: str) -> None:
        self.rule_id = rule_id
        self.reason = reason
        super().__init__(f"rule {rule_id!r}: {reason}")


class RecordTooLarge(NwsyslogError):
    """A single serialized record does not fit in a request body of `limit` bytes."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            f"record serializes to a {size}-byte request body, over max_batch_bytes={limit}; "
            "it was not sent (raise max_batch_bytes or shorten the rule's fields)"
        )


class DeliveryError(NwsyslogError):
    """Base class of errors from the Netwrix output path.

    `pending` holds the records the failing delivery had not settled, in order: the caller keeps
    them (nothing is acknowledged or dropped by raising).
    """

    pending: tuple[Entry, ...] = ()


class DeliveryHalted(DeliveryError):
    """Sending must stop until a person fixes something; every unsent record is kept.

    `status` is the HTTP status that caused the halt, or None for a TLS problem.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class AuthError(DeliveryHalted):
    """The server refused the credentials (401) or the account's rights (403)."""


class EndpointError(DeliveryHalted):
    """The URL or write path is wrong (404) or the method is not allowed there (405)."""


class TlsPinError(DeliveryHalted):
    """The server's certificate does not match the configured thumbprint."""


class RetriesExhausted(DeliveryError):
    """A configured retry limit ran out; the batch is kept by the caller."""

    def __init__(self, attempts: int, last: str) -> None:
        self.attempts = attempts
        self.last = last
        super().__init__(f"gave up after {attempts} attempts; last error: {last}")
