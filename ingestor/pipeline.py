"""The transform stage: raw syslog message -> parsed message -> rule match -> encoded record.

`Pipeline.handle()` is the listeners' handler. It never raises for bad input: a message whose
header cannot be read is still matched (rules see its text) and counted; a message no rule
claims is counted as unmatched (and by shape in the unmatched inventory, `ingestor.unmatched`);
a matched message whose record cannot be built is counted per rule. Each record comes out as
its request-body fragment (encoded once) in `pending`, which the service moves to the spool in
batches; `on_full` tells it when `pending` reached its bound. The rule set is swapped whole
(`ruleset = new`), so a reload never leaves a half-updated set in use.

A `sources:` entry with a `rate_limit` gives each sender address in its CIDR a token bucket,
taken from before the message is parsed (what is over the limit costs a lookup, not a parse):
what exceeds it is dropped, counted per address in `stats.rate_limited_by_source`, and logged
at most once a minute per address.
"""

from __future__ import annotations

import ipaddress
import logging
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from functools import lru_cache

from parsers.rules.engine import Rule, RuleSet
from parsers.syslog import parse_syslog, zone_for

from .config import RateLimitConfig, RecordFieldsConfig, SourceConfig
from .errors import RenderError
from .netwrix.encoding import Encoder
from .netwrix.records import RecordDefaults
from .rate_limit import LogThrottle, TokenBucket
from .record_writer import Writer, writer_for
from .sources import peer_ip
from .unmatched import Inventory

log = logging.getLogger("nwsyslog.pipeline")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# A sender's time zone, record defaults, the record writers for those defaults (per rule), and
# its own token bucket when its source has a rate limit.
Settings = tuple[tzinfo, RecordDefaults, dict[Rule, Writer], TokenBucket | None]
# Senders over their rate limit counted by address, at most this many; the rest under OTHER_SOURCES
# (the counts become metric labels, which must stay few however many addresses a flood forges).
MAX_LIMITED_SOURCES = 1000
OTHER_SOURCES = "other"
RATE_LIMIT_LOG_EVERY = 60.0  # seconds between log lines about one sender over its limit


@dataclass
class PipelineStats:
    """What the transform stage did (monotonic counters)."""

    received: int = 0  # messages taken in (not those over a rate limit)
    parse_errors: int = 0  # header not understood; the text still went through the rules
    unmatched: int = 0
    dropped: int = 0  # claimed by a drop rule
    records: int = 0
    render_errors_by_rule: Counter[str] = field(default_factory=Counter)
    # Messages dropped by a source's rate_limit, per sender address (MAX_LIMITED_SOURCES at most).
    rate_limited_by_source: Counter[str] = field(default_factory=Counter)

    @property
    def render_errors(self) -> int:
        """Matched messages whose record could not be built, all rules together."""
        return sum(self.render_errors_by_rule.values())

    @property
    def rate_limited(self) -> int:
        """Messages dropped by rate limits, all senders together."""
        return sum(self.rate_limited_by_source.values())


class Pipeline:
    """Turns raw messages into encoded records; see the module docstring."""

    def __init__(
        self,
        ruleset: RuleSet,
        encoder: Encoder,
        *,
        timezone: str = "UTC",
        records: RecordFieldsConfig | None = None,
        sources: Sequence[SourceConfig] = (),
        max_pending: int | None = None,
        on_full: Callable[[], None] | None = None,
        inventory: Inventory | None = None,
    ) -> None:
        self._ruleset = ruleset
        # Unmatched messages are counted by shape here (`nwsyslog unmatched`, the status page).
        self.inventory = inventory
        self._encoder = encoder
        self.stats = PipelineStats()
        self.pending: list[bytes] = []
        # Memory bound: when `pending` reaches it, `on_full` is called (the service pauses the
        # listeners until the records are taken).
        self._max_pending = max_pending or sys.maxsize
        self._on_full = on_full
        fields = (records or RecordFieldsConfig()).as_mapping()
        # Each set of record defaults has its writers, one per rule, made at the rule's first match.
        self._default: Settings = (zone_for(timezone), RecordDefaults.from_mapping(fields), {}, None)
        # Per-source settings, resolved once per address (first matching CIDR wins; a source
        # inherits the global fields it does not set).
        self._sources: list[tuple[IPNetwork, tzinfo, RecordDefaults, dict[Rule, Writer], RateLimitConfig | None]] = [
            (
                ipaddress.ip_network(s.cidr, strict=False),
                zone_for(s.timezone) if s.timezone else self._default[0],
                RecordDefaults.from_mapping(_for_source(fields, s.as_mapping())),
                {},
                s.rate_limit,
            )
            for s in sources
        ]
        # Per address: a sender's token bucket lives in its cached settings, so a rate limit costs
        # no lookup of its own (a sender evicted from the cache comes back with a full bucket).
        self._settings = lru_cache(maxsize=65536)(self._settings_for)
        self._limited_logged = LogThrottle(RATE_LIMIT_LOG_EVERY, max_keys=MAX_LIMITED_SOURCES)
        # Messages read in one go share their receive time: its datetime is made once.
        self._received: tuple[float, datetime] = (0.0, datetime.fromtimestamp(0, UTC))

    @property
    def ruleset(self) -> RuleSet:
        """The rules in use; assigning a new RuleSet swaps it whole (and drops the old writers)."""
        return self._ruleset

    @ruleset.setter
    def ruleset(self, ruleset: RuleSet) -> None:
        self._ruleset = ruleset
        self._default[2].clear()
        for _network, _zone, _defaults, writers, _limit in self._sources:
            writers.clear()

    def _settings_for(self, peer: str) -> Settings:
        if self._sources:
            ip = peer_ip(peer)
            if ip is None:
                return self._default
            for network, zone, defaults, writers, limit in self._sources:
                if ip in network:
                    bucket = TokenBucket(limit.messages_per_second, limit.burst) if limit else None
                    return zone, defaults, writers, bucket
        return self._default

    def _over_limit(self, peer: str, bucket: TokenBucket) -> None:
        """A message from `peer` dropped by its rate limit: count it, and say so now and then."""
        counts = self.stats.rate_limited_by_source
        key = peer if peer in counts or len(counts) < MAX_LIMITED_SOURCES else OTHER_SOURCES
        counts[key] += 1
        if self._limited_logged.allow(peer):
            log.warning(
                "%s is over its rate limit (%g messages/s, burst %d): what exceeds it is dropped "
                "(%d so far, counted in nwsyslog_rate_limited_total)",
                peer,
                bucket.rate,
                bucket.burst,
                counts[key],
            )

    def handle(self, raw: bytes, peer: str, received_at: float) -> None:
        """One message from a listener (the `Handler` signature)."""
        zone, defaults, writers, bucket = self._settings(peer)
        if bucket is not None and not bucket.take(received_at):
            self._over_limit(peer, bucket)
            return
        stats = self.stats
        stats.received += 1
        stamp, received = self._received
        if received_at != stamp:
            received = datetime.fromtimestamp(received_at, UTC)
            self._received = (received_at, received)
        message = parse_syslog(raw, source=peer, received_at=received, tz=zone)
        if message.parse_error is not None:
            stats.parse_errors += 1
        match = self._ruleset.match(message)
        if match is None:
            stats.unmatched += 1
            if self.inventory is not None:
                self.inventory.add(message, raw)
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "unmatched from %s: host=%s program=%s mnemonic=%s: %s",
                    peer,
                    message.hostname,
                    message.program,
                    message.mnemonic,
                    message.text[:200],
                )
            return
        rule = match.rule
        write = writers.get(rule)
        if write is None:
            write = writers[rule] = writer_for(rule, self._encoder, defaults)
        try:
            fragment = write(match)
        except RenderError as exc:
            stats.render_errors_by_rule[exc.rule_id] += 1
            if stats.render_errors_by_rule[exc.rule_id] == 1:  # once per rule: the counter has the rest
                log.warning("%s (first from %s; counted in nwsyslog_render_errors_total)", exc, peer)
            return
        if fragment is None:
            stats.dropped += 1
            return
        pending = self.pending
        pending.append(fragment)
        stats.records += 1
        if len(pending) >= self._max_pending and self._on_full is not None:
            self._on_full()

    def take(self) -> list[bytes]:
        """The records produced since the last call, in order."""
        pending, self.pending = self.pending, []
        return pending


def _for_source(fields: dict[str, object], source: dict[str, object]) -> dict[str, object]:
    """A source's record fields over the global ones: a source naming its own Item (`item` or
    `items`) replaces both global Item settings for its senders."""
    merged = {**fields, **source}
    if "Item" in source and "Items" not in source:
        merged.pop("Items", None)
    return merged
