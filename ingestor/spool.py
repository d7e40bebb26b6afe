"""The durable spool: every record on disk (SQLite, WAL) before it can be sent, removed after a 200.

Two tables in one file:

- `records(id, data, created, lengths, done)`: encoded record fragments waiting for delivery,
  in id order. A row holds the records of one commit, up to `ROW_RECORDS` of them: `data` is
  their bytes joined, `lengths` their sizes (a JSON array; NULL for a row of one record), `done`
  the positions already delivered or quarantined (a JSON array; NULL for none). A record's key
  is `row id * SLOTS + position`: keys only grow, in the order the records were committed;
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

Why rows of many records: SQLite's work per row (the B-tree cell, the record header, the
delete) is CPU both processes take from the cores the listener thread needs. Stored alone, a
record cost ~2.0-2.4 us to insert, ~0.8-1.3 us to read and ~1.4-1.7 us to delete; stored a
commit at a time, ~1.0, ~0.5 and ~0.1 us (`benchmarks/bench_service.py`). A record delivered
out of a row is remembered in `done` in the same transaction as its quarantine or deletion would
have been, so it is never sent again after a restart; the row goes when all of its records did.
With `secure_delete`, a row delivered in part is written again with the delivered records'
bytes zeroed, so they do not stay in the file until their neighbours are delivered.

Durability: WAL with `synchronous=NORMAL` (the default) keeps every committed transaction across
a crash of the process (`kill -9`); `synchronous=FULL` also across a power loss, at a cost per
commit. The file and its WAL are created with mode 0600.

The WAL stays small whatever the load: SQLite checkpoints it every `WAL_AUTOCHECKPOINT` pages,
the writer also checkpoints (passively) at least once a second (`checkpoint`), and
`journal_size_limit` truncates the file back to `WAL_LIMIT` bytes when it restarts. Committed
transactions are thus in the database file itself within about a second: a WAL file lost after
a crash costs at most that. `counts.inserted` counts every record ever inserted; the listening
process writes it beside the file after each commit (`ingestor.spool_health.StateFile`), so a
start can tell when committed transactions went missing with the WAL.

The class is synchronous and not thread-safe: each process calls it from one dedicated thread.
Writers take turns (SQLite's write lock), waiting up to `LOCK_TIMEOUT` seconds for it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass
from itertools import accumulate, chain
from pathlib import Path
from typing import Literal, TypedDict, TypeVar

from .errors import StartupError

Sync = Literal["normal", "full"]
_T = TypeVar("_T")


class SpoolOptions(TypedDict):
    """How a process opens the spool (`Spool(path, **options)`): every process of one service the same."""

    fmt: str
    sync: Sync
    secure_delete: bool
    lock_timeout: float


LOCK_TIMEOUT = 60.0  # seconds a write waits for another process's transaction to end
WAL_AUTOCHECKPOINT = 64  # pages (1 MiB at 16 KiB pages) after which a commit checkpoints
WAL_LIMIT = 1024 * 1024  # bytes the WAL file is truncated to when it restarts
ROW_RECORDS = 1024  # records stored in one row at most (a commit with more takes several)
SLOTS = 1 << 16  # key = row id * SLOTS + position in the row
PAGE_SIZE = 16384  # bytes per page in a new spool file

_SCHEMA = """
-- AUTOINCREMENT: row ids never come back after deletes, so keys only grow and "records after
-- the last one read" is exact.
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT, data BLOB NOT NULL, created REAL NOT NULL, lengths TEXT, done TEXT
);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY, record_id INTEGER, data BLOB NOT NULL, reason TEXT NOT NULL, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- `nwsyslog import`: how far each file was read, and the fingerprint of every line it spooled
-- (a repeated import adds nothing). Written in the same transaction as the records.
CREATE TABLE IF NOT EXISTS import_files (
    file_id BLOB PRIMARY KEY, path TEXT NOT NULL, size INTEGER NOT NULL, position INTEGER NOT NULL,
    done INTEGER NOT NULL, updated REAL NOT NULL, inode INTEGER, head TEXT, head_size INTEGER
);
CREATE TABLE IF NOT EXISTS import_fingerprints (fingerprint BLOB PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counts (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    records INTEGER NOT NULL, bytes INTEGER NOT NULL, quarantined INTEGER NOT NULL,
    inserted INTEGER NOT NULL DEFAULT 0
);
"""

_COUNT = "UPDATE counts SET records = records + ?, bytes = bytes + ?, quarantined = quarantined + ?"
_INSERTED = "UPDATE counts SET inserted = inserted + ?"


@dataclass(frozen=True, slots=True)
class SpoolStats:
    """What the spool holds now."""

    records: int
    bytes: int
    quarantined: int
    oldest: float | None  # creation time of the oldest waiting record


@dataclass(frozen=True, slots=True)
class ImportProgress:
    """How far `nwsyslog import` read one file, as `Spool.import_commit` keeps it."""

    position: int  # byte offset in the file's decompressed text where the next import starts
    done: bool  # the import reached the end of the file (as it was then)
    path: str = ""
    size: int = 0  # bytes on disk when it was read
    inode: int | None = None
    head: str | None = None  # sha256 hex of the file's first `head_size` decompressed bytes
    head_size: int | None = None


@dataclass(frozen=True, slots=True)
class QuarantinedRecord:
    """One quarantined record and why."""

    id: int
    record_id: int | None
    data: bytes
    reason: str
    created: float


def _lengths(inserts: Sequence[bytes]) -> str | None:
    """The records' byte lengths as a JSON array (None for one record): with the records joined
    into one blob, what cuts them apart again."""
    return json.dumps(list(map(len, inserts))) if len(inserts) > 1 else None


def _pieces(data: bytes, lengths: str | None) -> list[bytes]:
    """A row's records, cut apart at the running sums of their lengths (C-level calls only)."""
    if lengths is None:
        return [data]
    ends = list(accumulate(json.loads(lengths)))
    return list(map(data.__getitem__, map(slice, chain((0,), ends), ends)))


def _sizes(data_size: int, lengths: str | None) -> list[int]:
    return [data_size] if lengths is None else json.loads(lengths)


def _chunks(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    """`items` in slices of `size` (the last one shorter)."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _marks(items: Sized) -> str:
    """The placeholders of an `IN (...)` list for `items`."""
    return ",".join("?" * len(items))


def _done(done: str | None) -> set[int]:
    """The positions of a row already delivered or quarantined."""
    return set(json.loads(done)) if done else set()


class Spool:
    """A spool file; see the module docstring.

    Example:
        >>> with Spool(":memory:", fmt="xml") as spool:
        ...     _ = spool.apply(inserts=[b"<ActivityRecord/>", b"<ActivityRecord></ActivityRecord>"])
        ...     [data for _, data in spool.read_after(0, 10)]
        [b'<ActivityRecord/>', b'<ActivityRecord></ActivityRecord>']
    """

    def __init__(
        self,
        path: str | Path,
        *,
        fmt: str,
        sync: Sync = "normal",
        secure_delete: bool = False,
        lock_timeout: float = LOCK_TIMEOUT,
    ) -> None:
        self.path = str(path)
        self.format = fmt
        self._row_records = ROW_RECORDS
        self._secure_delete = secure_delete
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                # Created 0600 before SQLite opens it; SQLite gives its -wal and -shm files the
                # same mode as the database file.
                os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=lock_timeout)
            # A new file gets 16 KiB pages (an existing one keeps its own): a row of a commit's
            # records spans a quarter as many pages, each a WAL frame written with a syscall
            # of its own: 4.1-4.5 against 4.6-5.3 us per record through the spool (insert, read,
            # delete) with 4 KiB pages, alternated.
            self._db.execute(f"PRAGMA page_size={PAGE_SIZE}")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={sync.upper()}")
            # Builds differ in their default (Debian's is ON): zeroing every deleted record's
            # bytes wrote freed pages once more, ~20% of the spool's insert and delete work.
            self._db.execute(f"PRAGMA secure_delete={'ON' if secure_delete else 'FAST'}")
            self._db.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}")
            self._db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")
            with self._transaction(refresh=False) as db:  # (two processes may open a new file at once)
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                self._upgrade()
            stored = self._db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        except (OSError, sqlite3.Error) as exc:
            raise StartupError(f"cannot open the spool {self.path}: {exc}") from None
        if stored is None:
            self._db.execute("INSERT INTO meta (key, value) VALUES ('format', ?)", (fmt,))
        elif stored[0] != fmt:
            count = self._tally()[0]
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
        self.inserted: int = 0  # records ever inserted (counts.inserted), read with the others
        self.oldest: float | None = None
        self.refresh()

    @contextlib.contextmanager
    def _transaction(self, *, refresh: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction (waiting for another process's to end); with `refresh`, the
        counters are read at its end, and again after a rollback."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            if refresh:
                self.refresh()
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
                if refresh:
                    self.refresh()
            raise

    def _upgrade(self) -> None:
        """Bring a spool written by an earlier version up to date: the row columns of many
        records (its rows hold one each), and the counts row from a full count."""
        db = self._db
        columns = {name for _, name, *_ in db.execute("PRAGMA table_info(records)")}
        for column in ("lengths", "done"):
            if column not in columns:
                db.execute(f"ALTER TABLE records ADD COLUMN {column} TEXT")
        imported = {name for _, name, *_ in db.execute("PRAGMA table_info(import_files)")}
        for column, kind in (("inode", "INTEGER"), ("head", "TEXT"), ("head_size", "INTEGER")):
            if column not in imported:
                db.execute(f"ALTER TABLE import_files ADD COLUMN {column} {kind}")
        counted = {name for _, name, *_ in db.execute("PRAGMA table_info(counts)")}
        if "inserted" not in counted:
            db.execute("ALTER TABLE counts ADD COLUMN inserted INTEGER NOT NULL DEFAULT 0")
        if db.execute("SELECT 1 FROM counts").fetchone() is None:
            records, size = self._tally()
            quarantined = db.execute("SELECT count(*) FROM quarantine").fetchone()[0]
            db.execute(
                "INSERT INTO counts (one, records, bytes, quarantined) VALUES (1, ?, ?, ?)",
                (records, size, quarantined),
            )

    def _tally(self) -> tuple[int, int]:
        """The waiting records and their bytes, counted from the rows."""
        db = self._db
        records, size = db.execute(
            "SELECT count(*), coalesce(sum(length(data)), 0) FROM records WHERE lengths IS NULL"
        ).fetchone()
        for data_size, lengths, done in db.execute(
            "SELECT length(data), lengths, done FROM records WHERE lengths IS NOT NULL"
        ):
            sizes = _sizes(data_size, lengths)
            gone = _done(done)
            records += len(sizes) - len(gone)
            size += sum(sizes) - sum(sizes[i] for i in gone)
        return records, size

    def refresh(self) -> None:
        """Read the counters (`records`, `bytes`, `quarantine_count`) from the file, with every
        process's changes; `apply` and `retry` read them at the end of their transactions."""
        self.records, self.bytes, self.quarantine_count, self.inserted = self._db.execute(
            "SELECT records, bytes, quarantined, inserted FROM counts"
        ).fetchone()
        first = self._db.execute("SELECT created FROM records ORDER BY id LIMIT 1").fetchone()
        self.oldest = float(first[0]) if first is not None else None  # when the oldest waiting row came

    def apply(
        self,
        inserts: Sequence[bytes] = (),
        deletes: Iterable[int] = (),
        quarantines: Iterable[tuple[int, bytes, str]] = (),
    ) -> list[int]:
        """In one transaction: append `inserts`, delete the delivered records `deletes` (keys
        from `read_after`), and move `quarantines` ((key, data, reason)) from the records to the
        quarantine. Keys that are no longer waiting are skipped. The counters then hold the
        file's totals. Returns the quarantine ids given to `quarantines`, in order (the ids
        `nwsyslog spool list` shows and `spool retry` takes)."""
        now = time.time()
        db = self._db
        moved = list(quarantines)
        settled: dict[int, set[int]] = {}
        for key in chain(deletes, (q[0] for q in moved)):
            row, position = divmod(key, SLOTS)
            settled.setdefault(row, set()).add(position)
        with self._transaction():
            if inserts:
                # A commit's records in as few rows as the row size allows: one statement, and
                # SQLite's per-row work once per row rather than per record.
                db.executemany(
                    "INSERT INTO records (data, created, lengths) VALUES (?, ?, ?)",
                    ((b"".join(chunk), now, _lengths(chunk)) for chunk in _chunks(inserts, self._row_records)),
                )
            ids: list[int] = []
            for key, data, reason in moved:  # (one by one for the ids: quarantines are rare)
                cursor = db.execute(
                    "INSERT INTO quarantine (record_id, data, reason, created) VALUES (?, ?, ?, ?)",
                    (key, data, reason, now),
                )
                assert cursor.lastrowid is not None
                ids.append(cursor.lastrowid)
            gone, gone_bytes = self._settle(settled)
            db.execute(_COUNT, (len(inserts) - gone, sum(map(len, inserts)) - gone_bytes, len(moved)))
            if inserts:
                db.execute(_INSERTED, (len(inserts),))
        return ids

    def import_position(self, file_id: bytes) -> ImportProgress | None:
        """Where an earlier `nwsyslog import` of the file with this id stopped, or None."""
        row = self._db.execute(
            "SELECT position, done, path, size, inode, head, head_size FROM import_files WHERE file_id = ?", (file_id,)
        ).fetchone()
        if row is None:
            return None
        position, done, path, size, inode, head, head_size = row
        return ImportProgress(int(position), bool(done), path, int(size), inode, head, head_size)

    def import_fingerprints_between(self, low: bytes, high: bytes) -> bool:
        """Whether the spool holds an imported record's fingerprint from `low` to `high`."""
        row = self._db.execute(
            "SELECT 1 FROM import_fingerprints WHERE fingerprint >= ? AND fingerprint <= ? LIMIT 1", (low, high)
        ).fetchone()
        return row is not None

    def import_commit(
        self,
        records: Sequence[tuple[bytes, bytes]],
        *,
        file_id: bytes,
        progress: ImportProgress,
        unseen: bool = False,
    ) -> int:
        """In one transaction: the `records` ((fingerprint, fragment)) whose fingerprint the
        spool has not seen before, their fingerprints, and the file's `progress`. An interrupted
        import loses nothing and a repeated one adds nothing. Returns how many records were new.
        `unseen`: the caller knows none of these fingerprints is spooled
        (`import_fingerprints_between` found none in their range), and they are not looked up;
        one that was after all makes the commit fail, not write it twice."""
        db = self._db
        now = time.time()
        with self._transaction():
            seen: set[bytes] = set()
            for chunk in _chunks([] if unseen else [fingerprint for fingerprint, _ in records], 500):
                seen.update(
                    row[0]
                    for row in db.execute(
                        f"SELECT fingerprint FROM import_fingerprints WHERE fingerprint IN ({_marks(chunk)})", chunk
                    )
                )
            fresh: list[bytes] = []
            new: list[tuple[bytes]] = []
            for fingerprint, data in records:
                if fingerprint not in seen:
                    seen.add(fingerprint)
                    new.append((fingerprint,))
                    fresh.append(data)
            db.executemany("INSERT INTO import_fingerprints (fingerprint) VALUES (?)", new)
            if fresh:
                db.executemany(
                    "INSERT INTO records (data, created, lengths) VALUES (?, ?, ?)",
                    ((b"".join(chunk), now, _lengths(chunk)) for chunk in _chunks(fresh, self._row_records)),
                )
                db.execute(_COUNT, (len(fresh), sum(map(len, fresh)), 0))
                db.execute(_INSERTED, (len(fresh),))
            p = progress
            db.execute(
                "INSERT INTO import_files (file_id, path, size, position, done, updated, inode, head, head_size) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (file_id) DO UPDATE SET path = excluded.path, "
                "size = excluded.size, position = excluded.position, done = excluded.done, "
                "updated = excluded.updated, inode = excluded.inode, head = excluded.head, "
                "head_size = excluded.head_size",
                (file_id, p.path, p.size, p.position, int(p.done), now, p.inode, p.head, p.head_size),
            )
        return len(fresh)

    def _settle(self, settled: dict[int, set[int]]) -> tuple[int, int]:
        """Mark these positions of these rows done; a row all done is deleted. Returns how many
        waiting records that settled, and their bytes. A few statements per call, whatever the
        number of rows (a spool from an earlier version holds one record per row)."""
        db = self._db
        gone = gone_bytes = 0
        finished: list[int] = []
        partial: list[tuple[int, str | None, list[int]]] = []  # (row, lengths, done positions)
        for chunk in _chunks(sorted(settled), 500):
            found = db.execute(
                f"SELECT id, length(data), lengths, done FROM records WHERE id IN ({_marks(chunk)})", chunk
            ).fetchall()
            for row, data_size, lengths, done_text in found:
                sizes = _sizes(data_size, lengths)
                done = _done(done_text)
                fresh = {p for p in settled[row] if 0 <= p < len(sizes)} - done
                if not fresh:
                    continue
                gone += len(fresh)
                gone_bytes += sum(sizes[p] for p in fresh)
                done |= fresh
                if len(done) == len(sizes):
                    finished.append(row)
                else:
                    partial.append((row, lengths, sorted(done)))
        for chunk in _chunks(finished, 500):
            db.execute(f"DELETE FROM records WHERE id IN ({_marks(chunk)})", chunk)
        if partial and self._secure_delete:
            # The delivered records' bytes leave the file now, not when the whole row goes:
            # the row is written again with them zeroed (SQLite zeroes the pages it frees).
            for row, lengths, done_list in partial:
                pieces = _pieces(db.execute("SELECT data FROM records WHERE id = ?", (row,)).fetchone()[0], lengths)
                for p in done_list:
                    pieces[p] = bytes(len(pieces[p]))
                db.execute(
                    "UPDATE records SET data = ?, done = ? WHERE id = ?", (b"".join(pieces), json.dumps(done_list), row)
                )
        elif partial:
            db.executemany(
                "UPDATE records SET done = ? WHERE id = ?",
                ((json.dumps(done_list), row) for row, _, done_list in partial),
            )
        return gone, gone_bytes

    def read_after(self, last_key: int, limit: int) -> list[tuple[int, bytes]]:
        """Waiting records with a key above `last_key`, in key order, as (key, data): whole rows
        until there are at least `limit` (or no more)."""
        db = self._db
        row, position = divmod(last_key, SLOTS) if last_key >= 0 else (0, -1)
        # The row the last read ended in is read again only if records after that key wait in
        # it (reads end at a row's end, so mostly not: its sizes tell, without its data).
        head = db.execute("SELECT length(data), lengths, done FROM records WHERE id = ?", (row,)).fetchone()
        if head is not None:
            done = _done(head[2])
            if all(p in done for p in range(position + 1, len(_sizes(head[0], head[1])))):
                row, position = row + 1, -1
        out: list[tuple[int, bytes]] = []
        cursor = db.execute("SELECT id, data, lengths, done FROM records WHERE id >= ? ORDER BY id", (row,))
        try:
            for rid, data, lengths, done_text in cursor:
                pieces = _pieces(data, lengths)
                base = rid * SLOTS
                skip = _done(done_text) or None
                if rid == row and position >= 0:  # what follows `last_key` in its row
                    skip = (skip or set()) | set(range(position + 1))
                if skip is None:
                    out.extend(zip(range(base, base + len(pieces)), pieces, strict=True))
                else:
                    out.extend((base + i, piece) for i, piece in enumerate(pieces) if i not in skip)
                if len(out) >= limit:
                    break
        finally:
            cursor.close()
        return out

    def already_holds(self, since: int, pending: Sequence[bytes]) -> int:
        """How many of `pending`'s first records are already the spool's newest, when `since` is
        the count of records ever inserted (`inserted`) that the writer last saw committed: a
        commit reported as failed (an fsync error after its WAL frames were written) can reach
        the disk anyway, and the next connection's recovery finds it. Found by the count
        inserted since `since`, and checked record by record: 0 unless every one is equal."""
        count = self.inserted - since
        if count <= 0 or count > len(pending):
            return 0
        rows: list[list[bytes]] = []
        held = 0
        for data, lengths in self._db.execute("SELECT data, lengths FROM records ORDER BY id DESC"):
            rows.append(_pieces(data, lengths))
            held += len(rows[-1])
            if held >= count:
                break
        newest = [piece for pieces in reversed(rows) for piece in pieces][-count:]
        return count if newest == list(pending[:count]) else 0

    def stats(self) -> SpoolStats:
        """Counts and sizes, read from the file."""
        records, size = self._tally()
        oldest = self._db.execute("SELECT min(created) FROM records").fetchone()[0]
        quarantined = self._db.execute("SELECT count(*) FROM quarantine").fetchone()[0]
        return SpoolStats(records, size, quarantined, oldest)

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
        where, args = ("", ()) if ids is None else (f" WHERE id IN ({_marks(ids)})", tuple(ids))
        with self._transaction():
            rows = db.execute(f"SELECT id, data FROM quarantine{where} ORDER BY id", args).fetchall()
            now = time.time()
            db.executemany("INSERT INTO records (data, created) VALUES (?, ?)", ((data, now) for _, data in rows))
            db.execute(f"DELETE FROM quarantine{where}", args)
            db.execute(_COUNT, (len(rows), sum(len(data) for _, data in rows), -len(rows)))
            db.execute(_INSERTED, (len(rows),))
        return len(rows)

    def restore(self, records: Iterable[tuple[object, ...]], quarantine: Iterable[tuple[object, ...]] = ()) -> int:
        """Copy salvaged rows into this (fresh) spool: `records` as (id, data, created, lengths,
        done), `quarantine` as (id, record_id, data, reason, created); the counts are then
        recomputed from the rows. Returns the number of waiting records restored."""
        db = self._db
        with self._transaction():
            for _, data, created, lengths, done in records:
                if not isinstance(data, bytes) or not data:
                    continue
                try:  # a row whose lengths do not cut its data is kept whole, as one record
                    if lengths is not None and sum(json.loads(str(lengths))) != len(data):
                        lengths, done = None, None
                except (ValueError, TypeError):
                    lengths, done = None, None
                db.execute(
                    "INSERT INTO records (data, created, lengths, done) VALUES (?, ?, ?, ?)",
                    (data, created if isinstance(created, float | int) else time.time(), lengths, done),
                )
            moved = 0
            for _, record_id, data, reason, created in quarantine:
                if isinstance(data, bytes):
                    db.execute(
                        "INSERT INTO quarantine (record_id, data, reason, created) VALUES (?, ?, ?, ?)",
                        (record_id, data, str(reason), created if isinstance(created, float | int) else time.time()),
                    )
                    moved += 1
            records_n, size = self._tally()
            quarantined = db.execute("SELECT count(*) FROM quarantine").fetchone()[0]
            db.execute(
                "UPDATE counts SET records = ?, bytes = ?, quarantined = ?, inserted = inserted + ?",
                (records_n, size, quarantined, records_n),
            )
        return self.records

    def checkpoint(self) -> None:
        """Copy what the WAL holds into the database file as far as readers allow (PASSIVE:
        never waits); the next writer then restarts the WAL from its start."""
        self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()

    def free_pages_bytes(self) -> int:
        """Bytes of the pages free inside the database file (reused before the file grows)."""
        count = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        size = self._db.execute("PRAGMA page_size").fetchone()[0]
        return int(count) * int(size)

    def wal_size(self) -> int:
        """The WAL file's size in bytes (0 when there is none)."""
        try:
            return os.stat(self.path + "-wal").st_size
        except OSError:
            return 0

    def close(self) -> None:
        """Checkpoint the WAL into the database file and close."""
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
