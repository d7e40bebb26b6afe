"""The emulator's SQLite store: one row per accepted write request.

Storing the validated body whole keeps writes cheap (one INSERT per request, no per-record
work), which lets the emulator outrun any benchmark. Each row records the sequence number of its
first record, so reading records `start .. start+n` touches only the rows that hold them.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .wire import records_of

_SCHEMA = """
CREATE TABLE IF NOT EXISTS writes (
    id INTEGER PRIMARY KEY,
    first_seq INTEGER NOT NULL,
    count INTEGER NOT NULL,
    format TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS writes_first_seq ON writes (first_seq);
"""


class RecordStore:
    """Thread-safe append-only store of write bodies; records are numbered from 0 in arrival order."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        if str(path) != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT COALESCE(MAX(first_seq + count), 0) FROM writes").fetchone()
        self._total: int = row[0]

    @property
    def total(self) -> int:
        """How many records are stored."""
        return self._total

    def append(self, fmt: str, body: bytes, count: int) -> int:
        """Store one validated body of `count` records; return the first record's number."""
        with self._lock:
            first = self._total
            self._db.execute(
                "INSERT INTO writes (first_seq, count, format, body) VALUES (?, ?, ?, ?)",
                (first, count, fmt, body),
            )
            self._total = first + count
            return first

    def records(self, start: int = 0, limit: int | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
        """Records numbered `start` onwards (at most `limit`), as (number, record dict)."""
        with self._lock:
            rows = self._db.execute(
                # Each row holds at least one record, so `limit` rows always suffice.
                "SELECT first_seq, format, body FROM writes WHERE first_seq + count > ? ORDER BY first_seq LIMIT ?",
                (start, -1 if limit is None else limit),
            ).fetchall()
        emitted = 0
        for first, fmt, body in rows:
            for seq, record in enumerate(records_of(fmt, body), first):
                if seq < start:
                    continue
                if limit is not None and emitted >= limit:
                    return
                yield seq, record
                emitted += 1

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
