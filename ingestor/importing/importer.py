"""`nwsyslog import`'s core: lines of a log file -> the service's parser and rules -> the spool.

Each line goes through what the listening process does to a message (`parse_syslog`, the rule
set, the rule's record writer), with the year the caller says for its timestamp when the line
has none (`ingestor.importing.files` infers it from the file). Every record gets a stable
fingerprint in the `Import fingerprint` detail: a hash of the file's identity (its first line,
which stays the same through rotation, renaming and compression), the line's offset in the
file's text, and the line itself. Records go to the spool with the file's progress in one
transaction (`Spool.import_commit`) every BATCH_LINES lines: an interrupted import continues
where it stopped, and a fingerprint the spool has seen is never written again, so importing a
file twice adds nothing.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from parsers.rules.engine import Rule, RuleSet
from parsers.syslog import parse_syslog

from ..errors import RenderError
from ..netwrix.encoding import Encoder
from ..netwrix.records import RecordDefaults
from ..record_writer import Writer, writer_for
from ..spool import Spool
from ..unmatched import Inventory

FINGERPRINT = "Import fingerprint"  # the DetailList property every imported record carries
BATCH_LINES = 2000  # lines between commits (the most an interruption makes a resumed import re-read)


def file_identity(first_line: bytes) -> bytes:
    """A file's identity across rotation and compression: a hash of its first line."""
    return hashlib.sha256(b"nwsyslog-import\0" + first_line).digest()[:16]


def fingerprint(file_id: bytes, offset: int, line: bytes) -> bytes:
    """One line's fingerprint: its file's identity, its offset in the file's text, and its bytes."""
    return hashlib.sha256(file_id + offset.to_bytes(8, "big") + line).digest()[:16]


@dataclass
class ImportStats:
    """What an import did (all files together)."""

    lines: int = 0
    records: int = 0  # records made
    written: int = 0  # of those, new to the spool (the rest it had seen)
    unmatched: int = 0
    dropped: int = 0  # claimed by a drop rule
    outside: int = 0  # outside --since/--until
    render_errors: int = 0
    by_pack_action: Counter[tuple[str, str]] = field(default_factory=Counter)


@dataclass
class Period:
    """--since/--until: lines whose time is outside are skipped (a line without a time is kept)."""

    since: datetime | None = None
    until: datetime | None = None

    def holds(self, when: datetime | None) -> bool:
        """Whether a line of this time is imported."""
        if when is None:
            return True
        return (self.since is None or when >= self.since) and (self.until is None or when < self.until)


class Importer:
    """Imports the lines of one file after another; `spool` None is a dry run (nothing written)."""

    def __init__(
        self,
        ruleset: RuleSet,
        encoder: Encoder,
        defaults: RecordDefaults,
        spool: Spool | None,
        *,
        tz: tzinfo = UTC,
        host: str = "",
        period: Period | None = None,
        inventory: Inventory | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.ruleset = ruleset
        self.encoder = encoder
        self.defaults = defaults
        self.spool = spool
        self.tz = tz
        self.host = host
        self.period = period or Period()
        self.inventory = inventory
        self.stats = ImportStats()
        self._clock = clock
        self._writers: dict[Rule, Writer] = {}

    def resume_at(self, file_id: bytes) -> tuple[int, bool]:
        """Where an earlier import of this file stopped: (offset, finished)."""
        if self.spool is None:
            return 0, False
        return self.spool.import_position(file_id) or (0, False)

    def import_lines(
        self,
        lines: Iterable[tuple[int, bytes, int | None]],
        *,
        file_id: bytes,
        name: str,
        size: int,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        """Import `lines` ((offset, line, year for a yearless timestamp or None), in file order)
        of the file `file_id`; the file's progress is committed with each batch (`on_batch`
        gets the offset reached), and it is marked done at the end."""
        batch: list[tuple[bytes, bytes]] = []
        reached = 0
        received = self._clock()
        stats = self.stats
        for offset, line, year in lines:
            stats.lines += 1
            reached = offset + len(line) + 1
            self._one(line, offset, file_id, year, received, batch)
            if stats.lines % BATCH_LINES == 0:
                self._commit(batch, file_id, name, size, reached, False)
                batch = []
                if on_batch is not None:
                    on_batch(reached)
        self._commit(batch, file_id, name, size, reached, True)
        if on_batch is not None:
            on_batch(reached)

    def _one(
        self,
        line: bytes,
        offset: int,
        file_id: bytes,
        year: int | None,
        received: datetime,
        batch: list[tuple[bytes, bytes]],
    ) -> None:
        stats = self.stats
        message = parse_syslog(line, source=self.host, received_at=received, tz=self.tz, year=year)
        if not self.period.holds(message.timestamp):
            stats.outside += 1
            return
        match = self.ruleset.match(message)
        if match is None:
            stats.unmatched += 1
            if self.inventory is not None:
                stamp = message.timestamp or received
                self.inventory.add(message, line, stamp.timestamp())
            return
        rule = match.rule
        write = self._writers.get(rule)
        if write is None:
            write = self._writers[rule] = writer_for(rule, self.encoder, self.defaults)
        try:
            fragment = write(match)
        except RenderError:
            stats.render_errors += 1
            return
        if fragment is None:
            stats.dropped += 1
            return
        stats.records += 1
        action = rule.fixed_action.value if rule.fixed_action is not None else "(varies)"
        stats.by_pack_action[(rule.pack, action)] += 1
        mark = fingerprint(file_id, offset, line)
        batch.append((mark, self.encoder.with_detail(fragment, FINGERPRINT, mark.hex())))

    def _commit(
        self, batch: list[tuple[bytes, bytes]], file_id: bytes, name: str, size: int, position: int, done: bool
    ) -> None:
        if self.spool is None:
            self.stats.written += len(batch)
            return
        self.stats.written += self.spool.import_commit(
            batch, file_id=file_id, path=name, size=size, position=position, done=done
        )
