"""The durable spool: every record on disk (SQLite, WAL) before it can be sent, removed after a 200.

Two tables in one file:

- `records(id, data, created)`: encoded record fragments waiting for delivery, in id order;
- `quarantine(id, record_id, data, reason, created)`: records that must not be sent again
  without a person's decision (the server rejected them with a 400, or one alone is larger than
  a request may be), with the reason.

A `meta` table remembers the wire format the fragments were encoded in, so a spool written as
XML is never posted as JSON. A one-row `counts` table holds the number and size of the waiting
records and the number quarantined, changed in the same transaction as the rows: two processes
write the file (the listening process inserts, the delivery process deletes; `nwsyslog spool
retry` moves quarantined rows back), and each reads exact totals after its own commit without
counting the rows. Writes come in batches, one transaction each (`apply`): inserting and
deleting row by row would cap throughput far below what the listeners receive.

Durability: WAL with `synchronous=NORMAL` (the default) keeps every committed transaction across
a crash of the process (`kill -9`); `synchronous=FULL` also across a power loss, at a cost per
commit. The file and its WAL are created with mode 0600.

The class is synchronous and not thread-safe: each process calls it from one dedicated thread.
Writers take turns (SQLite's write lock), waiting up to `LOCK_TIMEOUT` seconds for it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate, chain
from pathlib import Path
from typing import Literal, TypedDict

from .errors import StartupError

Sync = Literal["normal", "full"]


class SpoolOptions(TypedDict):
    """How a process opens the spool (`Spool(path, **options)`): every process of one service the same."""

    fmt: str
    sync: Sync
    secure_delete: bool


LOCK_TIMEOUT = 60.0  # seconds a write waits for another process's transaction to end
MAX_DELETE_RUNS = 64  # delivered ids in at most this many runs of consecutive ids: one range each

_SCHEMA = """
-- AUTOINCREMENT: ids never come back after deletes, so "rows after the last one read" is exact.
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT, data BLOB NOT NULL, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY, record_id INTEGER, data BLOB NOT NULL, reason TEXT NOT NULL, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counts (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    records INTEGER NOT NULL, bytes INTEGER NOT NULL, quarantined INTEGER NOT NULL
);
"""

# A spool written before the counts table existed (or a new one) gets its row from a full count.
_FIRST_COUNT = """
INSERT INTO counts (one, records, bytes, quarantined)
SELECT 1, (SELECT count(*) FROM records), (SELECT coalesce(sum(length(data)), 0) FROM records),
       (SELECT count(*) FROM quarantine)
WHERE NOT EXISTS (SELECT 1 FROM counts)
"""
_COUNT = "UPDATE counts SET records = records + ?, bytes = bytes + ?, quarantined = quarantined + ?"


@dataclass(frozen=True, slots=True)
class SpoolStats:
    """What the spool holds now."""

    records: int
    bytes: int
    quarantined: int
    oldest: float | None  # creation time of the oldest waiting record


@dataclass(frozen=True, slots=True)
class QuarantinedRecord:
    """One quarantined record and why."""

    id: int
    record_id: int | None
    data: bytes
    reason: str
    created: float


def _has_json(db: sqlite3.Connection) -> bool:
    """Whether this SQLite has json_each (built in since 3.38; an option before)."""
    try:
        db.execute("SELECT count(*) FROM json_each('[]')").fetchone()
    except sqlite3.OperationalError:
        return False
    return True


def _lengths(inserts: Sequence[bytes]) -> str:
    """The records' byte lengths as a JSON array: with the records joined into one blob, what
    one INSERT needs to cut them apart again."""
    return json.dumps(list(map(len, inserts)))


class Spool:
    """A spool file; see the module docstring.

    Example:
        >>> with Spool(":memory:", fmt="xml") as spool:
        ...     spool.apply(inserts=[b"<ActivityRecord/>"])
        ...     [(i, d) for i, d in spool.read_after(0, 10)]
        [(1, b'<ActivityRecord/>')]
    """

    def __init__(self, path: str | Path, *, fmt: str, sync: Sync = "normal", secure_delete: bool = False) -> None:
        self.path = str(path)
        self.format = fmt
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                # Created 0600 before SQLite opens it; SQLite gives its -wal and -shm files the
                # same mode as the database file.
                os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=LOCK_TIMEOUT)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={sync.upper()}")
            # Builds differ in their default (Debian's is ON): zeroing every deleted record's
            # bytes wrote freed pages once more, ~20% of the spool's insert and delete work.
            self._db.execute(f"PRAGMA secure_delete={'ON' if secure_delete else 'FAST'}")
            self._db.executescript(_SCHEMA)
            self._db.execute(_FIRST_COUNT)
            stored = self._db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
            self._json_rows = _has_json(self._db)
            self._max_runs = MAX_DELETE_RUNS
        except (OSError, sqlite3.Error) as exc:
            raise StartupError(f"cannot open the spool {self.path}: {exc}") from None
        if stored is None:
            self._db.execute("INSERT INTO meta (key, value) VALUES ('format', ?)", (fmt,))
        elif stored[0] != fmt:
            count = self._db.execute("SELECT count(*) FROM records").fetchone()[0]
            if count:
                self._db.close()
                raise StartupError(
                    f"the spool {self.path} holds {count} records encoded as {stored[0]}, but the configured "
                    f"format is {fmt}: set netwrix.format back to {stored[0]} until they are delivered, or "
                    "point spool.path at a new file"
                )
            self._db.execute("UPDATE meta SET value = ? WHERE key = 'format'", (fmt,))
        self.records: int = 0
        self.bytes: int = 0
        self.quarantine_count: int = 0
        self.refresh()

    def refresh(self) -> None:
        """Read the counters (`records`, `bytes`, `quarantine_count`) from the file, with every
        process's changes; `apply` and `retry` read them at the end of their transactions."""
        self.records, self.bytes, self.quarantine_count = self._db.execute(
            "SELECT records, bytes, quarantined FROM counts"
        ).fetchone()

    def apply(
        self,
        inserts: Sequence[bytes] = (),
        deletes: Iterable[int] = (),
        quarantines: Iterable[tuple[int, bytes, str]] = (),
    ) -> None:
        """In one transaction: append `inserts`, delete the delivered ids `deletes`, and move
        `quarantines` ((id, data, reason)) from the records to the quarantine. Ids that are no
        longer waiting are skipped. The counters then hold the file's totals."""
        now = time.time()
        db = self._db
        moved = list(quarantines)
        deleted = list(deletes) + [q[0] for q in moved]
        db.execute("BEGIN IMMEDIATE")
        try:
            if inserts:
                if self._json_rows:
                    # One statement for the whole batch: the records joined into one blob, cut
                    # apart by SQLite at a running sum of their lengths. executemany gives the GIL
                    # up and waits for it again around each row (while the listener thread is
                    # busy, every row waits out a switch interval: ~1,300 rows/s measured), and
                    # the cutting happens in SQLite, without the GIL (JSON-encoding the records
                    # themselves cost ~1 us each with it).
                    db.execute(
                        # (An all-empty batch binds an empty blob, which SQLite reads as NULL.)
                        "INSERT INTO records (data, created)"
                        " SELECT coalesce(substr(?1, 1 + sum(value) OVER w - value, value), x''), ?2"
                        " FROM json_each(?3) WINDOW w AS (ORDER BY key) ORDER BY key",
                        (b"".join(inserts), now, _lengths(inserts)),
                    )
                else:
                    db.executemany("INSERT INTO records (data, created) VALUES (?, ?)", ((d, now) for d in inserts))
            if moved:
                db.executemany(
                    "INSERT INTO quarantine (record_id, data, reason, created) VALUES (?, ?, ?, ?)",
                    ((rid, data, reason, now) for rid, data, reason in moved),
                )
            gone = 0
            gone_bytes = 0
            runs = _runs(deleted) if deleted else []
            if runs and len(runs) <= self._max_runs:
                # Delivered ids come a batch at a time, in order: mostly a few runs of consecutive
                # ids, each an index range (no list of ids to build, bind and look up one by one).
                for first, last in runs:
                    n, size = db.execute(
                        "SELECT count(*), coalesce(sum(length(data)), 0) FROM records WHERE id BETWEEN ? AND ?",
                        (first, last),
                    ).fetchone()
                    db.execute("DELETE FROM records WHERE id BETWEEN ? AND ?", (first, last))
                    gone += n
                    gone_bytes += size
            elif deleted and self._json_rows:
                # Sizes of what goes, for the counters, then the delete: the ids as one JSON
                # array (no statement text and no parameter per id to build and bind).
                ids = json.dumps(deleted)
                gone, gone_bytes = db.execute(
                    "SELECT count(*), coalesce(sum(length(data)), 0) FROM records"
                    " WHERE id IN (SELECT value FROM json_each(?))",
                    (ids,),
                ).fetchone()
                db.execute("DELETE FROM records WHERE id IN (SELECT value FROM json_each(?))", (ids,))
            elif deleted:
                # The same, one statement per chunk of ids.
                for chunk in _chunks(deleted, 500):
                    marks = ",".join("?" * len(chunk))
                    n, size = db.execute(
                        f"SELECT count(*), coalesce(sum(length(data)), 0) FROM records WHERE id IN ({marks})", chunk
                    ).fetchone()
                    db.execute(f"DELETE FROM records WHERE id IN ({marks})", chunk)
                    gone += n
                    gone_bytes += size
            db.execute(_COUNT, (len(inserts) - gone, sum(map(len, inserts)) - gone_bytes, len(moved)))
            self.refresh()
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
                self.refresh()
            raise

    def read_after(self, last_id: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to `limit` waiting records with an id above `last_id`, in id order."""
        if not self._json_rows:
            return self._db.execute(
                "SELECT id, data FROM records WHERE id > ? ORDER BY id LIMIT ?", (last_id, limit)
            ).fetchall()
        # One row for the whole read, as for inserts: fetching row by row gives the GIL up and
        # waits for it again around each row, while the listener thread is busy with it. The
        # ids and lengths come from the same pass over the rows as the joined data, so they
        # pair up whatever order the aggregate saw the rows in.
        ids, lengths, data = self._db.execute(
            "SELECT json_group_array(id), json_group_array(length(data)), CAST(group_concat(data, '') AS BLOB)"
            " FROM (SELECT id, data FROM records WHERE id > ? ORDER BY id LIMIT ?)",
            (last_id, limit),
        ).fetchone()
        data = data or b""  # (no rows, or only empty ones: NULL)
        ends = list(accumulate(json.loads(lengths)))
        # Cut apart at the running sums, every step a C-level call (no Python frame per record).
        pieces = map(data.__getitem__, map(slice, chain((0,), ends), ends))
        return list(zip(json.loads(ids), pieces, strict=True))

    def stats(self) -> SpoolStats:
        """Counts and sizes, read from the file."""
        count, size, oldest = self._db.execute(
            "SELECT count(*), coalesce(sum(length(data)), 0), min(created) FROM records"
        ).fetchone()
        quarantined = self._db.execute("SELECT count(*) FROM quarantine").fetchone()[0]
        return SpoolStats(count, size, quarantined, oldest)

    def quarantined(self, limit: int = 100, offset: int = 0) -> list[QuarantinedRecord]:
        """Quarantined records, oldest first."""
        rows = self._db.execute(
            "SELECT id, record_id, data, reason, created FROM quarantine ORDER BY id LIMIT ? OFFSET ?", (limit, offset)
        ).fetchall()
        return [QuarantinedRecord(*row) for row in rows]

    def retry(self, ids: Sequence[int] | None = None) -> int:
        """Move quarantined records (these ids, or all) back to the waiting records, to be sent
        again by the running or next service; returns how many moved."""
        db = self._db
        where, args = ("", ()) if ids is None else (f" WHERE id IN ({','.join('?' * len(ids))})", tuple(ids))
        db.execute("BEGIN IMMEDIATE")
        try:
            rows = db.execute(f"SELECT id, data FROM quarantine{where} ORDER BY id", args).fetchall()
            now = time.time()
            db.executemany("INSERT INTO records (data, created) VALUES (?, ?)", ((data, now) for _, data in rows))
            db.execute(f"DELETE FROM quarantine{where}", args)
            db.execute(_COUNT, (len(rows), sum(len(data) for _, data in rows), -len(rows)))
            self.refresh()
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
                self.refresh()
            raise
        return len(rows)

    def close(self) -> None:
        """Checkpoint the WAL into the database file and close."""
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _runs(ids: Iterable[int]) -> list[tuple[int, int]]:
    """The distinct ids as runs of consecutive ones, (first, last), in order."""
    runs: list[tuple[int, int]] = []
    for i in sorted(set(ids)):
        if runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def _chunks(items: list[int], size: int) -> Iterable[list[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
