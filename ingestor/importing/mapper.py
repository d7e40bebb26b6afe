"""One chunk of a file's lines -> records with their fingerprints: the import's per-line work.

`LineMapper.map(chunk)` runs each line through what the listening process does to a message
(`parse_syslog`, the rule set, the rule's record writer), with the year the caller gives for
a yearless timestamp, and gives every record its `Import fingerprint` detail. It returns a
`Mapped`: the records, the counts, and the unmatched lines reduced to what the unmatched
inventory mines (`Unmatched`), all plain data, so the same work runs in this process or in a
worker process (`ingestor.importing.workers`) and the importer commits the results in file
order either way.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from itertools import islice
from typing import TypeVar

from parsers.rules.engine import Rule, RuleSet
from parsers.syslog import parse_syslog

from ..errors import RenderError
from ..netwrix.encoding import Encoder
from ..netwrix.records import RecordDefaults
from ..record_writer import Writer, writer_for
from ..unmatched import MINE_CHARS, kind_of

FINGERPRINT = "Import fingerprint"  # the DetailList property every imported record carries

_T = TypeVar("_T")


def batched(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    """`items` in lists of `size` (the last one shorter), as they come."""
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def file_identity(first_line: bytes) -> bytes:
    """A file's identity across rotation and compression: a hash of its first line."""
    return hashlib.sha256(b"nwsyslog-import\0" + first_line).digest()[:16]


def fingerprint(file_id: bytes, offset: int, line: bytes) -> bytes:
    """One line's fingerprint: its file's identity, its offset in the file's text, and a hash of
    its bytes, in that order. (The order matters: a file's fingerprints sort by offset, so the
    spool's index of them grows at one end, a page or two written per commit; random keys made
    every commit rewrite pages all over it, slower and slower as it grew.)"""
    return file_id[:8] + offset.to_bytes(8, "big") + hashlib.sha256(line).digest()[:8]


def fingerprint_range(file_id: bytes, start: int) -> tuple[bytes, bytes]:
    """The lowest and highest fingerprint of the lines of the file `file_id` from offset `start` on."""
    prefix = file_id[:8]
    return prefix + start.to_bytes(8, "big") + bytes(8), prefix + b"\xff" * 16


@dataclass(slots=True)
class Chunk:
    """Consecutive lines of one file: (offset, line, year for a yearless timestamp or None)."""

    file_id: bytes
    received: datetime  # for a line without a time (and the year when the line's is None)
    lines: list[tuple[int, bytes, int | None]]
    end: int  # the offset after the last line (where a resumed import starts)


# An unmatched line as the inventory mines it (`Inventory.add_parts`): kind, key, text, host,
# the raw line, and its time in epoch seconds. (A plain tuple: a worker sends tens of thousands
# of them, and a tuple pickles and unpickles at a fraction of a class instance's cost.)
Unmatched = tuple[str, str, str, str, bytes, float]


@dataclass(slots=True)
class Mapped:
    """What one chunk made."""

    end: int
    lines: int = 0
    records: list[tuple[bytes, bytes]] = field(default_factory=list)  # (fingerprint, fragment)
    unmatched: list[Unmatched] = field(default_factory=list)
    dropped: int = 0
    outside: int = 0
    render_errors: int = 0
    by_pack_action: Counter[tuple[str, str]] = field(default_factory=Counter)


@dataclass(frozen=True)
class Period:
    """--since/--until: lines whose time is outside are skipped (a line without a time is kept)."""

    since: datetime | None = None
    until: datetime | None = None

    def holds(self, when: datetime | None) -> bool:
        """Whether a line of this time is imported."""
        if when is None:
            return True
        return (self.since is None or when >= self.since) and (self.until is None or when < self.until)


class LineMapper:
    """Maps chunks with one rule set, encoder and record fields (see the module docstring)."""

    def __init__(
        self,
        ruleset: RuleSet,
        encoder: Encoder,
        defaults: RecordDefaults,
        *,
        tz: tzinfo,
        host: str = "",
        period: Period | None = None,
    ) -> None:
        self.ruleset = ruleset
        self.encoder = encoder
        self.defaults = defaults
        self.tz = tz
        self.host = host
        self.period = period or Period()
        self._writers: dict[Rule, tuple[Writer, tuple[str, str]]] = {}

    def map(self, chunk: Chunk) -> Mapped:
        """The records and counts of `chunk`'s lines."""
        out = Mapped(chunk.end, len(chunk.lines))
        records, unmatched, counts = out.records, out.unmatched, out.by_pack_action
        match_message, writers, with_detail = self.ruleset.match, self._writers, self.encoder.with_detail
        period = self.period
        bounded = period.since is not None or period.until is not None
        host, tz, received, file_id = self.host, self.tz, chunk.received, chunk.file_id
        for offset, line, year in chunk.lines:
            message = parse_syslog(line, source=host, received_at=received, tz=tz, year=year)
            if bounded and not period.holds(message.timestamp):
                out.outside += 1
                continue
            match = match_message(message)
            if match is None:
                kind, key = kind_of(message)
                stamp = message.timestamp or received
                unmatched.append((kind, key, message.text[:MINE_CHARS], message.host, line, stamp.timestamp()))
                continue
            rule = match.rule
            known = writers.get(rule)
            if known is None:
                action = rule.fixed_action.value if rule.fixed_action is not None else "(varies)"
                known = writers[rule] = (writer_for(rule, self.encoder, self.defaults), (rule.pack, action))
            write, pack_action = known
            try:
                fragment = write(match)
            except RenderError:
                out.render_errors += 1
                continue
            if fragment is None:
                out.dropped += 1
                continue
            counts[pack_action] += 1
            mark = fingerprint(file_id, offset, line)
            records.append((mark, with_detail(fragment, FINGERPRINT, mark.hex())))
        return out
