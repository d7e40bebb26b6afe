"""`nwsyslog import`'s core: lines of a log file -> the service's parser and rules -> the spool.

The lines go in chunks of BATCH_LINES through `mapper.LineMapper` (what the listening process
does to a message, with the year `ingestor.importing.files` infers for a yearless timestamp),
in this process or in worker processes (`workers.MapPool`), and come back in file order to be
counted, mined for the unmatched inventory and committed here. Every record gets a stable
fingerprint in the `Import fingerprint` detail: the file's identity (a hash of its first line,
which stays the same through rotation, renaming and compression), the line's offset in the
file's text, and a hash of the line itself. Records go to the spool with the file's progress in one
transaction (`Spool.import_commit`) every BATCH_LINES lines: an interrupted import continues
where it stopped, and a fingerprint the spool has seen is never written again, so importing a
file twice adds nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo

from parsers.rules.engine import RuleSet

from ..netwrix.encoding import Encoder
from ..netwrix.records import RecordDefaults
from ..spool import ImportProgress, Spool
from ..unmatched import Inventory
from .files import SourceFile, YearGuess, years
from .mapper import (
    FINGERPRINT,
    Chunk,
    LineMapper,
    Mapped,
    Period,
    batched,
    file_identity,
    fingerprint,
    fingerprint_range,
)
from .workers import MapPool

__all__ = ["BATCH_LINES", "FINGERPRINT", "ImportStats", "Importer", "Period", "file_identity", "fingerprint"]

BATCH_LINES = 2000  # lines between commits (the most an interruption makes a resumed import re-read)


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


class Importer:
    """Imports the lines of one file after another; `spool` None is a dry run (nothing written).
    With `jobs` > 1 the lines are mapped by that many worker processes (`MapPool`), when this
    process can fork them (`jobs_used` says how many it has); `close()` stops them."""

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
        jobs: int = 1,
    ) -> None:
        self.mapper = LineMapper(ruleset, encoder, defaults, tz=tz, host=host, period=period)
        self.spool = spool
        self.inventory = inventory
        self.stats = ImportStats()
        self._clock = clock
        self._pool = MapPool(self.mapper, jobs) if jobs > 1 and MapPool.usable() else None
        self.jobs_used = self._pool.jobs if self._pool is not None else 1

    def close(self) -> None:
        """Stop the worker processes, if any."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def years(self, src: SourceFile, *, tz: tzinfo, year: int | None = None) -> YearGuess:
        """The year pass over `src` (`files.years`), by the workers when there are some."""
        return years(src, tz=tz, year=year, parts=self._pool.stamps if self._pool is not None else None)

    def resume_at(self, file_id: bytes) -> ImportProgress | None:
        """Where an earlier import of the file `file_id` stopped, or None."""
        return self.spool.import_position(file_id) if self.spool is not None else None

    def import_lines(
        self,
        lines: Iterable[tuple[int, bytes, int | None]],
        *,
        file_id: bytes,
        file: ImportProgress,
        on_batch: Callable[[int], None] | None = None,
        received_at: datetime | None = None,
        start: int = 0,
    ) -> None:
        """Import `lines` ((offset, line, year for a yearless timestamp or None), in file order)
        of the file `file_id` (`file`: its path, size, inode and head, as its progress keeps
        them); the file's progress is committed with each batch (`on_batch` gets the offset
        reached), and it is marked done at the end. `received_at`: when the
        lines were written (the file's mtime), for a line without a time and the year of a
        yearless line given None; default now. `start`: where `lines` start (a resumed import)."""
        received = received_at if received_at is not None else self._clock()
        # A file's fingerprints sort by offset, and this run writes them in increasing order: when
        # the spool has none of this file's from `start` on, none of this run's can be there.
        unseen = self.spool is not None and not self.spool.import_fingerprints_between(
            *fingerprint_range(file_id, start)
        )
        chunks = _chunks(lines, file_id, received)
        results = self._pool.map(chunks) if self._pool is not None else map(self.mapper.map, chunks)
        reached = start
        for mapped in results:
            self._count(mapped)
            reached = max(reached, mapped.end)
            self._commit(mapped.records, file_id, replace(file, position=reached, done=False), unseen)
            if on_batch is not None:
                on_batch(reached)
        self._commit([], file_id, replace(file, position=reached, done=True), unseen)

    def _count(self, mapped: Mapped) -> None:
        stats = self.stats
        stats.lines += mapped.lines
        stats.records += len(mapped.records)
        stats.unmatched += len(mapped.unmatched)
        stats.dropped += mapped.dropped
        stats.outside += mapped.outside
        stats.render_errors += mapped.render_errors
        stats.by_pack_action.update(mapped.by_pack_action)
        inventory = self.inventory
        if inventory is not None:
            add = inventory.add_parts
            for kind, key, text, host, raw, at in mapped.unmatched:
                add(kind, key, text, host, raw, at)

    def _commit(
        self,
        batch: list[tuple[bytes, bytes]],
        file_id: bytes,
        progress: ImportProgress,
        unseen: bool,
    ) -> None:
        if self.spool is None:
            self.stats.written += len(batch)
            return
        self.stats.written += self.spool.import_commit(batch, file_id=file_id, progress=progress, unseen=unseen)


def _chunks(lines: Iterable[tuple[int, bytes, int | None]], file_id: bytes, received: datetime) -> Iterator[Chunk]:
    for batch in batched(lines, BATCH_LINES):
        offset, line, _ = batch[-1]
        yield Chunk(file_id, received, batch, offset + len(line) + 1)
