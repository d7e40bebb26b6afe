"""The spool's health on the host: damage, lost WAL frames, salvage, and disk space.

- `StateFile` (`spool.db.state`, beside the spool): after each commit the listening process
  writes there how many records the spool has ever taken in (`counts.inserted`) and how many
  wait. SQLite alone cannot tell that its `-wal` file was deleted, truncated or overwritten after
  a crash: it opens the older database silently. The state file can: if it says more records
  went in than the database knows of, committed transactions were lost with the WAL.
- `check` runs `PRAGMA quick_check` and that comparison; `salvage` moves a damaged spool aside
  (`spool.db.damaged-<time>` with its `-wal` and `-shm`) and copies every readable record into
  a fresh spool: row by row through SQL, skipping what cannot be read, and when the B-tree
  itself is damaged also by reading every table-leaf page of the file as SQLite's `.recover`
  does (whichever finds more); pages on the free list are left out, so delivered records do
  not come back.
- `Reserve` (`spool.db.reserve`, `RESERVE_BYTES`): space kept back on the spool's filesystem.
  When the disk is full, the first failing write releases it, so that the delivery process can
  still commit its deletions (in WAL mode a delete needs a little space too) and the spool can
  drain; it is created again once the filesystem has room.
- `needed_bytes`/`free_bytes`: how much disk the spool needs beyond `max_bytes` (README).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import struct
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import StartupError
from .spool import WAL_LIMIT, Spool, SpoolOptions

log = logging.getLogger("nwsyslog.spool")

RESERVE_BYTES = 1024 * 1024
# Free space the listening process never fills with new records: the delivery process's
# deletions and the WAL's checkpoints need a little room, also when the disk is "full".
HEADROOM_BYTES = 1024 * 1024
# Beyond max_bytes: the WAL (up to twice its limit between checkpoints), the reserve, and
# SQLite's own overhead (row headers, pages partly used by rows partly delivered, free pages).
OVERHEAD_FACTOR = 1.25
OVERHEAD_BYTES = 2 * WAL_LIMIT + RESERVE_BYTES + HEADROOM_BYTES + 4 * 1024 * 1024

_STATE = struct.Struct("<8sQQ")  # magic, records ever inserted, records waiting
_MAGIC = b"nwspool1"


def needed_bytes(max_bytes: int) -> int:
    """Disk the spool may take when it holds `max_bytes` of records (README's figure)."""
    return int(max_bytes * OVERHEAD_FACTOR) + OVERHEAD_BYTES


def space_warning(spool_path: str | Path, max_bytes: int) -> str | None:
    """Why the spool's filesystem cannot hold a full spool (`max_bytes` of records), or None:
    what start-up logs and `check-config` prints."""
    room = free_bytes(spool_path)
    if room is None:
        return None
    used = sum(os.path.getsize(f) for f in (str(spool_path), f"{spool_path}-wal") if os.path.exists(f))
    need = needed_bytes(max_bytes)
    if room + used >= need:
        return None
    return (
        f"the spool's filesystem ({os.path.dirname(spool_path) or '.'}) has {room / 2**20:.1f} MiB free, but a "
        f"full spool (spool.max_bytes {max_bytes / 2**20:.1f} MiB) needs about {need / 2**20:.1f} MiB: lower "
        "spool.max_bytes or give the spool more room (README: disk space)"
    )


def free_bytes(path: str | Path) -> int | None:
    """Free bytes on the filesystem of `path` (or of its nearest existing parent), for this user."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        st = os.statvfs(p)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def state_path(spool_path: str | Path) -> Path:
    """Where a spool's state file lives."""
    return Path(f"{spool_path}.state")


class StateFile:
    """`spool.db.state`: what the last commit left in the spool (see the module docstring)."""

    def __init__(self, spool_path: str | Path) -> None:
        self.path = state_path(spool_path)
        self._fd: int | None = None

    def read(self) -> tuple[int, int] | None:
        """(records ever inserted, records waiting) as last written, or None (no or bad file)."""
        try:
            data = self.path.read_bytes()
        except OSError:
            return None
        if len(data) != _STATE.size:
            return None
        magic, inserted, waiting = _STATE.unpack(data)
        return (inserted, waiting) if magic == _MAGIC else None

    def write(self, inserted: int, waiting: int) -> None:
        """Record the spool's counts after a commit (one pwrite; no fsync: it follows the spool's
        own durability). A failure is ignored: the file is a check, not data."""
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            os.pwrite(self._fd, _STATE.pack(_MAGIC, inserted, waiting), 0)
        except OSError as exc:
            log.debug("cannot write %s: %s", self.path, exc)

    def close(self) -> None:
        """Close the file (it stays)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


class Reserve:
    """Disk space held back for the spool's deletions when the filesystem fills."""

    def __init__(self, spool_path: str | Path, size: int = RESERVE_BYTES) -> None:
        self.path = Path(f"{spool_path}.reserve")
        self.size = size

    @property
    def held(self) -> bool:
        """Whether the reserve file exists at its full size."""
        try:
            return self.path.stat().st_size >= self.size
        except OSError:
            return False

    def ensure(self) -> bool:
        """Create the reserve if it is missing and the filesystem has room for it and as much
        again; True when it is held."""
        if self.held:
            return True
        room = free_bytes(self.path.parent)
        if room is not None and room < 2 * self.size:
            return False
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.size)
            finally:
                os.close(fd)
        except OSError as exc:
            log.debug("cannot create %s: %s", self.path, exc)
            with contextlib.suppress(OSError):
                self.path.unlink()
            return False
        return True

    def release(self) -> bool:
        """Give the space back to the filesystem; True if there was a reserve to release."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            log.debug("cannot remove %s: %s", self.path, exc)
            return False
        return True


def is_disk_full(exc: BaseException) -> bool:
    """SQLite's "database or disk is full" (or the OS's ENOSPC)."""
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(exc)
    return isinstance(exc, OSError) and exc.errno == 28


# --- damage ----------------------------------------------------------------------------------


@dataclass
class Health:
    """What `check` found: problems (empty when the spool is sound), and the counts it could read."""

    path: Path
    problems: list[str] = field(default_factory=list)
    waiting: int | None = None
    inserted: int | None = None  # records ever inserted, as the database says
    expected_inserted: int | None = None  # as the state file says
    expected_waiting: int | None = None
    file_damaged: bool = False  # quick_check failed or the file cannot be read: its B-tree is broken

    @property
    def sound(self) -> bool:
        return not self.problems

    @property
    def lost_with_wal(self) -> int:
        """Records committed that the database no longer has (0 when none or unknown)."""
        if self.inserted is None or self.expected_inserted is None:
            return 0
        return max(0, self.expected_inserted - self.inserted)


def check(path: str | Path) -> Health:
    """Whether the spool file at `path` is sound: `PRAGMA quick_check`, its tables readable, and
    the state file's count of inserted records not above the database's. Never raises for a
    damaged file; a missing file is sound (a new spool)."""
    p = Path(path)
    health = Health(p)
    if not p.exists():
        return health
    state = StateFile(p).read()
    if state is not None:
        health.expected_inserted, health.expected_waiting = state
    try:
        db = sqlite3.connect(f"file:{p}?mode=rw", uri=True, timeout=5)
    except sqlite3.Error as exc:
        health.problems.append(f"cannot open: {exc}")
        health.file_damaged = True
        return health
    try:
        rows = [r[0] for r in db.execute("PRAGMA quick_check(20)")]
        if rows != ["ok"]:
            lines = [line for r in rows for line in str(r).splitlines() if line.strip()]
            health.problems.append("quick_check: " + "; ".join(lines[:3]) + ("; ..." if len(lines) > 3 else ""))
            health.file_damaged = True
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "counts" in tables:
            columns = {r[1] for r in db.execute("PRAGMA table_info(counts)")}
            row = db.execute(
                "SELECT records" + (", inserted" if "inserted" in columns else ", NULL") + " FROM counts"
            ).fetchone()
            if row is not None:
                health.waiting, health.inserted = row
        if "records" in tables:
            db.execute("SELECT count(*), sum(length(data)) FROM records").fetchone()
    except sqlite3.Error as exc:
        health.problems.append(f"unreadable: {exc}")
        health.file_damaged = True
    finally:
        db.close()
    if health.lost_with_wal:
        health.problems.append(
            f"{health.lost_with_wal} committed records are missing: the spool's -wal file was deleted, "
            "truncated or damaged after the last run"
        )
    return health


@dataclass(frozen=True)
class Salvage:
    """What `salvage` did."""

    damaged: Path  # where the damaged file was moved
    recovered: int  # waiting records copied into the fresh spool
    quarantined: int  # quarantined records copied
    lost: int  # records known lost: the last commit's count minus what was recovered, or what the WAL took
    method: str  # "row by row" or "page scan"


def move_aside(path: Path) -> Path:
    """Rename the spool and its -wal/-shm to `NAME.damaged-<time>`; returns the new db path."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    for suffix in ("", "-wal", "-shm"):
        src = Path(f"{path}{suffix}")
        if src.exists():
            src.rename(Path(f"{target}{suffix}"))
    return target


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """SQLite's big-endian varint at `pos`: (value, next position)."""
    value = 0
    for i in range(8):
        byte = buf[pos + i]
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, pos + i + 1
    return (value << 8) | buf[pos + 8], pos + 9


def _columns(payload: bytes) -> list[object] | None:
    """The values of one SQLite record (None when it does not parse)."""
    try:
        size, pos = _varint(payload, 0)
        types = []
        while pos < size:
            t, pos = _varint(payload, pos)
            types.append(t)
        at = size
        out: list[object] = []
        for t in types:
            if t == 0:
                out.append(None)
            elif 1 <= t <= 6:
                n = (1, 2, 3, 4, 6, 8)[t - 1]
                out.append(int.from_bytes(payload[at : at + n], "big", signed=True))
                at += n
            elif t == 7:
                out.append(struct.unpack(">d", payload[at : at + 8])[0])
                at += 8
            elif t in (8, 9):
                out.append(t - 8)
            elif t >= 12:
                n = (t - 12) // 2
                chunk = payload[at : at + n]
                if len(chunk) != n:
                    return None
                out.append(bytes(chunk) if t % 2 == 0 else chunk.decode("utf-8", "replace"))
                at += n
            else:
                return None
        return out
    except (IndexError, struct.error):
        return None


def _scan_pages(path: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Rows of the records and quarantine tables read straight off the file's table-leaf pages,
    B-tree or not (what SQLite's `.recover` does): a spool cut short keeps every row whose
    page and overflow pages survived. Pages on the free list are skipped (deleted rows), and a
    row found twice keeps the copy with the most positions done."""
    data = path.read_bytes()
    if len(data) < 100 or not data.startswith(b"SQLite format 3\x00"):
        return [], []
    page_size = int.from_bytes(data[16:18], "big") or 65536
    usable = page_size - data[20]
    pages = len(data) // page_size
    free: set[int] = set()
    trunk = int.from_bytes(data[32:36], "big")
    seen_trunks = 0
    while 0 < trunk <= pages and seen_trunks < pages:
        seen_trunks += 1
        base = (trunk - 1) * page_size
        free.add(trunk)
        count = int.from_bytes(data[base + 4 : base + 8], "big")
        for k in range(min(count, (usable - 8) // 4)):
            free.add(int.from_bytes(data[base + 8 + 4 * k : base + 12 + 4 * k], "big"))
        trunk = int.from_bytes(data[base : base + 4], "big")

    def payload_of(page: bytes, pos: int, size: int) -> bytes | None:
        most = usable - 35
        if size <= most:
            return page[pos : pos + size]
        least = (usable - 12) * 32 // 255 - 23
        local = least + (size - least) % (usable - 4)
        if local > most:
            local = least
        out = bytearray(page[pos : pos + local])
        nxt = int.from_bytes(page[pos + local : pos + local + 4], "big")
        hops = 0
        while len(out) < size:
            if not 0 < nxt <= pages or hops > pages:
                return None
            hops += 1
            base = (nxt - 1) * page_size
            nxt = int.from_bytes(data[base : base + 4], "big")
            out += data[base + 4 : base + usable][: size - len(out)]
        return bytes(out)

    records: dict[int, tuple[object, ...]] = {}
    quarantine: dict[int, tuple[object, ...]] = {}
    for number in range(1, pages + 1):
        if number in free:
            continue
        page = data[(number - 1) * page_size : number * page_size]
        head = 100 if number == 1 else 0
        if page[head] != 0x0D:
            continue
        cells = int.from_bytes(page[head + 3 : head + 5], "big")
        for c in range(cells):
            try:
                pos = int.from_bytes(page[head + 8 + 2 * c : head + 10 + 2 * c], "big")
                size, pos = _varint(page, pos)
                rowid, pos = _varint(page, pos)
            except IndexError:
                continue
            payload = payload_of(page, pos, size)
            values = _columns(payload) if payload is not None else None
            if values is None or len(values) != 5 or values[0] is not None:
                continue
            _, a, b, c3, d = values
            if isinstance(a, bytes) and isinstance(b, float) and (c3 is None or isinstance(c3, str)):
                row = (rowid, a, b, c3, d)
                old = records.get(rowid)
                if old is None or len(str(d or "")) > len(str(old[4] or "")):
                    records[rowid] = row
            elif isinstance(b, bytes) and isinstance(c3, str) and isinstance(d, float):
                quarantine[rowid] = (rowid, a, b, c3, d)
    return [records[k] for k in sorted(records)], [quarantine[k] for k in sorted(quarantine)]


def _readable_ids(db: sqlite3.Connection, table: str) -> list[int]:
    """The ids of `table` that its B-tree still leads to, skipping damaged ranges."""
    out: list[int] = []
    last = -1
    step = 1
    while step <= 1 << 40:
        got = 0
        failed = False
        try:
            for (rid,) in db.execute(f"SELECT id FROM {table} WHERE id > ? ORDER BY id LIMIT 1000", (last,)):
                out.append(int(rid))
                last = int(rid)
                got += 1
        except sqlite3.Error:
            failed = True
        if got and not failed:
            step = 1
            continue
        if not failed and step == 1:
            return out
        # At a damaged page (or just past one): look further and further ahead.
        last += step
        step *= 2
    return out


def _readable_rows(db: sqlite3.Connection, table: str, columns: str) -> list[tuple[object, ...]]:
    """Every row of `table` that SQL can still read whole, in id order."""
    out: list[tuple[object, ...]] = []
    try:
        ids = _readable_ids(db, table)
    except sqlite3.Error:
        return out
    for rid in ids:
        try:
            row = db.execute(f"SELECT id, {columns} FROM {table} WHERE id = ?", (rid,)).fetchone()
        except sqlite3.Error:
            continue  # its overflow pages are gone
        if row is not None:
            out.append(tuple(row))
    return out


def _count_records(rows: list[tuple[object, ...]]) -> int:
    total = 0
    for _, data, _, lengths, done in rows:
        try:
            n = len(json.loads(str(lengths))) if lengths is not None else 1
            total += n - (len(json.loads(str(done))) if done else 0)
        except (ValueError, TypeError):
            total += 1 if isinstance(data, bytes) else 0
    return total


def salvage(
    path: str | Path, options: SpoolOptions, *, into: str | Path | None = None, health: Health | None = None
) -> Salvage:
    """Move the spool at `path` aside and copy every readable record into a fresh spool at `into`
    (default: `path` itself, so a service starts on it); `health` is what `check` found, when the
    caller already ran it. Raises StartupError when the fresh spool cannot be made."""
    p = Path(path)
    if health is None:
        health = check(p)
    expected = health.expected_waiting if health.expected_waiting is not None else health.waiting
    damaged = move_aside(p)
    target = Path(into) if into is not None else p
    candidates: list[tuple[int, str, list[tuple[object, ...]], list[tuple[object, ...]]]] = []
    with contextlib.suppress(sqlite3.Error):
        source = sqlite3.connect(f"file:{damaged}?mode=ro", uri=True)
        try:
            rows = _readable_rows(source, "records", "data, created, lengths, done")
            quarantined = _readable_rows(source, "quarantine", "record_id, data, reason, created")
        finally:
            source.close()
        candidates.append((_count_records(rows), "row by row", rows, quarantined))
    if not candidates or health.file_damaged:
        # The B-tree itself is damaged: every table-leaf page of the file, read as it is.
        with contextlib.suppress(OSError):
            rows, quarantined = _scan_pages(damaged)
            candidates.append((_count_records(rows), "page scan", rows, quarantined))
    candidates.sort(key=lambda c: c[0], reverse=True)
    _, method, records, quarantine = candidates[0] if candidates else (0, "nothing readable", [], [])
    state = StateFile(target)
    with contextlib.closing(Spool(target, **options)) as fresh:
        recovered = fresh.restore(records, quarantine)
        state.write(fresh.inserted, fresh.records)
    state.close()
    lost = max(0, expected - recovered) if expected is not None else 0
    return Salvage(damaged, recovered, len(quarantine), max(lost, health.lost_with_wal), method)


def open_checked(path: Path, options: SpoolOptions) -> tuple[Spool, Salvage | None, Health]:
    """The spool at `path`, checked first: a damaged one (or one whose WAL lost commits) is
    salvaged into a fresh file before it is opened. Returns the spool, what salvage did (None
    when the file was sound), and what the check found."""
    health = check(path)
    result = None
    if not health.sound:
        for problem in health.problems:
            log.error("the spool %s is damaged: %s", path, problem)
        try:
            result = salvage(path, options, health=health)
        except (OSError, sqlite3.Error) as exc:
            raise StartupError(f"cannot salvage the damaged spool {path}: {exc}") from None
        log.error(
            "spool salvaged (%s): %d records recovered, %d quarantined recovered, %d known lost; "
            "the damaged file is kept as %s",
            result.method,
            result.recovered,
            result.quarantined,
            result.lost,
            result.damaged,
        )
    return Spool(path, **options), result, health


# --- records the spool could not take before a stop -------------------------------------------


def _stash_folder() -> Path:
    """Where records go that a failing spool could not take before the service stopped: the
    system's temporary directory (another filesystem than the spool's, as a rule)."""
    return Path(tempfile.gettempdir())


def _stash_prefix(spool_path: str | Path) -> str:
    import hashlib

    digest = hashlib.sha256(str(Path(spool_path).resolve()).encode()).hexdigest()[:16]
    return f"nwsyslog-unwritten-{digest}-"


_STASH_MAGIC = b"NWSTASH1"  # then `since` ("<q", -1: unknown) and the records, each "<I" length + bytes


@dataclass(frozen=True)
class Stashed:
    """One stash file's records, and `since`: the count of records ever inserted into the spool
    (`counts.inserted`) after the last commit its run saw succeed (None: unknown), which tells
    whether a commit reported as failed reached the disk anyway (`Spool.already_holds`)."""

    path: Path
    records: list[bytes]
    since: int | None


def stash(spool_path: str | Path, records: list[bytes], since: int | None = None) -> Path | None:
    """Write `records` (encoded fragments) to a file of their own outside the spool's
    filesystem, mode 0600; the next start of a service on the same spool takes them in
    (`unstash`). `since`: see `Stashed`. Returns the file, or None if it could not be written."""
    if not records:
        return None
    path = _stash_folder() / f"{_stash_prefix(spool_path)}{time.time_ns()}.records"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(_STASH_MAGIC + struct.pack("<q", -1 if since is None else since))
            for record in records:
                f.write(struct.pack("<I", len(record)))
                f.write(record)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        log.critical("cannot write the unwritten records to %s either: %s", path, exc)
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    return path


def unstash(spool_path: str | Path) -> list[Stashed]:
    """The records earlier runs stashed for the spool at `spool_path` (see `stash`), file by
    file, oldest first: delete the files once their records are committed."""
    found: list[Stashed] = []
    for path in sorted(_stash_folder().glob(f"{_stash_prefix(spool_path)}*.records")):
        try:
            data = path.read_bytes()
        except OSError as exc:
            log.error("cannot read %s: %s", path, exc)
            continue
        since: int | None = None
        pos = 0
        if data.startswith(_STASH_MAGIC):  # (an earlier version wrote the records alone)
            (value,) = struct.unpack_from("<q", data, len(_STASH_MAGIC))
            since = value if value >= 0 else None
            pos = len(_STASH_MAGIC) + 8
        records: list[bytes] = []
        while pos + 4 <= len(data):
            (size,) = struct.unpack_from("<I", data, pos)
            pos += 4
            if pos + size > len(data):
                break
            records.append(data[pos : pos + size])
            pos += size
        found.append(Stashed(path, records, since))
    return found
