"""The files of `nwsyslog import FILE...`: which ones, in which order, their lines, and the year
of their yearless lines.

- `expand(patterns)`: paths and globs (`-`: standard input, at most once) -> `SourceFile`s, a
  rotated set oldest first (logrotate's numbered `auth.log.4.gz ... auth.log.1, auth.log` and
  its dateext `secure-20260301.gz, secure-20260308, secure`), sets in the order of the
  arguments (a glob's matches by name), each file once (by device and inode). A path or glob
  naming nothing is a `ConfigError` naming it.
- `open_lines(src, start)`: (offset, line) in the decompressed stream, resumable at an offset.
- `years(src, ...)` -> `YearGuess`: a first pass over a file that finds the year of each
  yearless line, backwards from the file's mtime (its last line was written then); the
  importer's second pass (`dated_lines`) hands `parse_syslog` the year for each line.

Standard input can be read only once, and the year pass needs a second reading: `expand`
copies it to a temporary file (`SourceFile.spool`, removed by `SourceFile.discard()`), and
takes the time of that copy as its mtime.
"""

from __future__ import annotations

import bisect
import bz2
import glob
import gzip
import hashlib
import lzma
import os
import re
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

from parsers.syslog import parse_syslog

from ..errors import ConfigError

Compression = Literal["gzip", "bz2", "xz"]

MAX_LINE = 64 * 1024  # longer lines are cut to this (and counted in `LineStats.cut`)
BUFFER = 1 << 20  # read size
HEAD = 4096  # `SourceFile.head_hash` covers this many decompressed bytes
STDIN_NAME = "<stdin>"

_MAGIC: tuple[tuple[bytes, Compression], ...] = ((b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"))
_GLOB = re.compile(r"[*?[]")
_SUFFIX = r"(?:\.(?:gz|bz2|xz|zst|lz4|Z))?"
_NUMBERED = re.compile(rf"(?P<base>.+?)\.(?P<n>\d{{1,4}}){_SUFFIX}")
_DATED = re.compile(rf"(?P<base>.+?)-(?P<date>\d{{8}}(?:\d{{2}})?|\d{{4}}-\d{{2}}-\d{{2}}){_SUFFIX}")


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One file to import, as found by `expand`."""

    path: Path | None  # None: standard input
    name: str  # for display: the path as found, or "<stdin>"
    size: int  # bytes on disk (compressed)
    inode: int
    device: int
    mtime: float  # epoch seconds; standard input: when it was read
    compression: Compression | None  # from the magic bytes
    head_hash: str  # sha256 hex of the first `head_size` decompressed bytes: the file across renames
    head_size: int  # HEAD, or the whole text of a shorter file
    spool: Path | None = field(default=None, compare=False)  # standard input's copy

    @property
    def readable(self) -> Path:
        """The file to open: the path, or standard input's copy."""
        target = self.spool or self.path
        assert target is not None
        return target

    def begins_with(self, head_size: int, head_hash: str) -> bool:
        """Whether the first `head_size` bytes of this file's text hash to `head_hash` (a file
        read before, while it was shorter, is the same file when it still starts that way)."""
        if head_size == self.head_size:
            return head_hash == self.head_hash
        return head_size < self.head_size and _head(self.readable, self.compression, head_size)[1] == head_hash

    def growing(self, now: float, quiet: float) -> bool:
        """Whether this may be a file still being written: a plain file modified within `quiet`
        seconds of `now` (a compressed one was finished when it was compressed)."""
        return self.path is not None and self.compression is None and now - self.mtime < quiet

    def discard(self) -> None:
        """Remove standard input's copy (nothing for a named file)."""
        if self.spool is not None:
            self.spool.unlink(missing_ok=True)


@dataclass(slots=True)
class LineStats:
    """What `open_lines` saw: lines yielded, how many of them were cut at `MAX_LINE`, and
    whether it held back an unfinished last line (`hold_partial`)."""

    lines: int = 0
    cut: int = 0
    held: bool = False


def expand(patterns: Sequence[str], *, stdin: BinaryIO | None = None) -> list[SourceFile]:
    """The files `patterns` name, in import order (see the module's doc). `stdin`: what `-`
    reads (default: the process's standard input), copied to a temporary file."""
    if sum(1 for p in patterns if p == "-") > 1:
        raise ConfigError("'-' (standard input) can be given only once")
    found: list[Path | None] = []
    missing: list[str] = []
    for pattern in patterns:
        if pattern == "-":
            found.append(None)
        elif _GLOB.search(pattern):
            matches = [Path(m) for m in sorted(glob.glob(pattern)) if not os.path.isdir(m)]
            if not matches:
                missing.append(pattern)
            found += matches
        else:
            found.append(Path(pattern))
    # Stat each once; drop the second sight of a file (same device and inode).
    stats: dict[Path, os.stat_result] = {}
    seen: set[tuple[int, int]] = set()
    items: list[Path | None] = []
    for path in found:
        if path is None:
            items.append(None)
            continue
        try:
            st = path.stat()
        except FileNotFoundError:
            missing.append(str(path))
            continue
        except OSError as exc:
            missing.append(f"{path} ({exc.strerror})")
            continue
        if not stat.S_ISREG(st.st_mode):
            missing.append(f"{path} (not a regular file)")
            continue
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        stats[path] = st
        items.append(path)
    if missing:
        raise ConfigError("no such file: " + ", ".join(missing))
    # Group rotated sets (same directory and base name), in the order of their first member.
    groups: dict[tuple[str, str] | int, list[tuple[tuple[int, int, str], Path | None]]] = {}
    for index, path in enumerate(items):
        if path is None:
            groups[index] = [((0, 0, ""), None)]
            continue
        base, rank = _rotation(path.name)
        groups.setdefault((str(path.parent), base), []).append((rank, path))
    result: list[SourceFile] = []
    for members in groups.values():
        for _, member in sorted(members, key=lambda m: (m[0], m[1].name if m[1] else "")):
            if member is None:
                result.append(_stdin_file(stdin if stdin is not None else sys.stdin.buffer))
            else:
                result.append(_source_file(member, stats[member]))
    return result


def _rotation(name: str) -> tuple[str, tuple[int, int, str]]:
    """A file's rotated set (its base name) and rank in it: dateext copies by date, then
    numbered ones from the highest number down, then the live file."""
    if (m := _DATED.fullmatch(name)) is not None:
        return m["base"], (0, 0, m["date"].replace("-", ""))
    if (m := _NUMBERED.fullmatch(name)) is not None:
        return m["base"], (1, -int(m["n"]), "")
    return name, (2, 0, "")


def _source_file(path: Path, st: os.stat_result) -> SourceFile:
    compression = _compression(path)
    size, digest = _head(path, compression)
    return SourceFile(path, str(path), st.st_size, st.st_ino, st.st_dev, st.st_mtime, compression, digest, size)


def _stdin_file(stream: BinaryIO) -> SourceFile:
    fd, name = tempfile.mkstemp(prefix="nwsyslog-stdin-")
    spool = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(stream, out, BUFFER)
        st = spool.stat()
        compression = _compression(spool)
        size, digest = _head(spool, compression)
    except BaseException:
        spool.unlink(missing_ok=True)
        raise
    return SourceFile(None, STDIN_NAME, st.st_size, st.st_ino, st.st_dev, time.time(), compression, digest, size, spool)


def _compression(path: Path) -> Compression | None:
    with path.open("rb") as f:
        magic = f.read(6)
    for prefix, kind in _MAGIC:
        if magic.startswith(prefix):
            return kind
    return None


def _head(path: Path, compression: Compression | None, size: int = HEAD) -> tuple[int, str]:
    """The first `size` bytes of the file's text (fewer if it is shorter): how many, and their sha256 hex."""
    with ExitStack() as stack:
        f = _open(path, compression, stack)
        head = f.read(size)
        while len(head) < size and (more := f.read(size - len(head))):  # (short reads of a stream)
            head += more
    return len(head), hashlib.sha256(head).hexdigest()


class _Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...
    def readline(self, size: int = -1, /) -> bytes: ...
    def seek(self, offset: int, whence: int = 0, /) -> int: ...


def _open(path: Path, compression: Compression | None, stack: ExitStack) -> _Reader:
    """`path` open for reading its decompressed content, closed (both layers) with `stack`."""
    raw = stack.enter_context(path.open("rb", buffering=BUFFER))
    if compression == "gzip":
        return stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
    if compression == "bz2":
        return stack.enter_context(bz2.BZ2File(raw, "rb"))
    if compression == "xz":
        return stack.enter_context(lzma.LZMAFile(raw, "rb"))
    return raw


def open_lines(
    src: SourceFile, start: int = 0, *, stats: LineStats | None = None, hold_partial: bool = False
) -> Iterator[tuple[int, bytes]]:
    """(offset, line) for each line of `src` from byte offset `start` of its decompressed
    content (an offset this yielded, or the end of the last line read), the line without its
    newline. A plain file seeks there; a compressed one is decompressed up to it. A line
    longer than `MAX_LINE` is cut to it (`stats.cut`); a last line without a newline is a line,
    unless `hold_partial` (a file being written: the rest of the line is yet to come) holds it
    back (`stats.held`)."""
    if stats is None:
        stats = LineStats()
    with ExitStack() as stack:
        f = _open(src.readable, src.compression, stack)
        if start:
            if src.compression is None:
                f.seek(start)
            else:
                left = start
                while left > 0 and (chunk := f.read(min(left, BUFFER))):
                    left -= len(chunk)
        # Blocks split into lines (a readline() call per line costs more than the split); a
        # line running across blocks is carried over, at most MAX_LINE + 1 bytes of it kept.
        read = f.read
        offset = start
        carry, carried = b"", 0  # the unfinished line's first bytes, and its whole length so far
        cut = count = 0
        try:
            while block := read(BUFFER):
                parts = block.split(b"\n")
                tail = parts.pop()
                for part in parts:
                    if carried:
                        n = carried + len(part)
                        line = (carry + part)[: MAX_LINE + 1]
                        carry, carried = b"", 0
                    else:
                        n = len(part)
                        line = part
                    if n > MAX_LINE:
                        line = line[:MAX_LINE]
                        cut += 1
                    count += 1
                    yield offset, line
                    offset += n + 1
                if tail:
                    if len(carry) <= MAX_LINE:
                        carry = (carry + tail)[: MAX_LINE + 1]
                    carried += len(tail)
            if carried and hold_partial:
                stats.held = True
            elif carried:  # a last line without a newline
                count += 1
                if carried > MAX_LINE:
                    cut += 1
                yield offset, carry[:MAX_LINE]
        finally:
            stats.lines += count
            stats.cut += cut


@dataclass(frozen=True, slots=True)
class YearGuess:
    """The year of each yearless line of a file: `first` up to the first boundary, one more
    from each boundary (the offset of the line that starts a new year) on. `given`: the
    caller's `--year`, for every line. `unordered`: the file's lines are not in time order
    (more than `MAX_BOUNDARIES` boundaries: files concatenated, a relay's senders with wrong
    clocks), so no boundary means anything; each line is then dated on its own, in the latest
    year that puts it at most a week after the file's mtime (`year_at` is None: the parser's
    own rule, with the mtime as the receive time)."""

    first: int
    boundaries: tuple[int, ...] = ()
    given: bool = False
    unordered: bool = False

    @property
    def last(self) -> int:
        return self.first + len(self.boundaries)

    def year_at(self, offset: int) -> int | None:
        """The year to give `parse_syslog` for the line at `offset` (stamps with a year keep
        theirs); None for an unordered file."""
        if self.unordered:
            return None
        return self.first + bisect.bisect_right(self.boundaries, offset)

    def describe(self) -> str:
        """The years, as the import's report gives them."""
        if self.unordered:
            return "each line's own (lines out of time order)"
        return f"{self.first}" if not self.boundaries else f"{self.first}-{self.last}"


# A month going down by at most this much is lines out of order (a relay's, across a month's
# end: "Apr  1 00:00:01" then "Mar 31 23:59:59"), not a new year.
REORDER_SLACK = timedelta(days=1)
_SLACK_SECONDS = REORDER_SLACK.total_seconds()
# More year boundaries than this in one file: its lines are not in time order (a real file
# crossing five New Years without a year in its stamps is not plausible; a concatenation or a
# relay's mixed senders is).
MAX_BOUNDARIES = 4
# The last line may be this much after the file's mtime (a sender's clock a little ahead).
CLOCK_SLACK = timedelta(days=1)
_PROBE_YEAR = 2000  # a leap year: every month/day parses


# The yearless BSD stamp most log files start with (an optional PRI, no zone, no year after it:
# the next word starts like a host name, not like "2026", "UTC:" or "+01:00"), which the year
# pass reads without a whole parse. Anything else goes through parse_syslog.
_QUICK_STAMP = re.compile(
    rb"(?:<\d{1,3}>)?(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) {1,2}(\d{1,2}) "
    rb"(\d{2}):(\d{2}):(\d{2}) (?!\d{4}\b)(?![A-Z]{2,5}[:\s])[A-Za-z0-9_\[]"
)
# A second time in the header (a relay's stamp, then the device's own, which the parser takes):
# such lines are parsed.
_ANOTHER_TIME = re.compile(rb"\d:\d\d:\d\d")
# A stamp with its own year first (RFC 5424, rsyslog's RFC 3339): unless another time follows,
# the line counts for nothing, and is not parsed.
_ISO_START = re.compile(rb"(?:<\d{1,3}>)?(?:\d{1,2} )?\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d")
# Any time at all (every stamp the parser reads has "h:mm:ss"): a line whose first HEADER_SPAN
# bytes have none has no timestamp, and is not parsed either.
_ANY_TIME = re.compile(rb"\d:\d\d:\d\d")
HEADER_SPAN = 200
_MONTH_NUMBER = {name: i for i, name in enumerate(
    (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"), 1
)}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Stamps:
    """The year pass over some consecutive lines (`stamps`): the first yearless stamp (its
    line's offset, month, and position in a leap year in seconds), the last (month, day,
    position), and the boundaries between them. `combine` joins these in file order."""

    first: tuple[int, int, float] | None = None
    last: tuple[int, int, float] | None = None
    boundaries: tuple[int, ...] = ()


def stamps(lines: Iterable[tuple[int, bytes]], *, tz: tzinfo, received: datetime) -> Stamps:
    """The yearless stamps of `lines` (offset, line) as `years` counts them: every time the
    month goes down from one to the next by more than `REORDER_SLACK`, a boundary. Lines whose
    stamp has its own year, or no stamp, or a Cisco "*" before it, count for nothing."""
    boundaries: list[int] = []
    prev_month, prev_pos = 0, 0.0
    first: tuple[int, int, float] | None = None
    last_day = 0
    quick, another, iso, any_time = _QUICK_STAMP.match, _ANOTHER_TIME.search, _ISO_START.match, _ANY_TIME.search
    for offset, line in lines:
        m = quick(line)
        if m is None:
            i = iso(line)
            if i is not None:
                if another(line, i.end(), i.end() + 120) is None:
                    continue  # its own year
            elif any_time(line, 0, HEADER_SPAN) is None:
                continue  # no time
        if m is not None and another(line, m.end(), m.end() + 120) is None:
            # The common "Mmm dd hh:mm:ss host ..." read here: what parse_syslog would give it.
            month, day = _MONTH_NUMBER[m[1]], int(m[2])
            hour, minute, second = int(m[3]), int(m[4]), int(m[5])
            try:
                ordinal = date(_PROBE_YEAR, month, day).toordinal()
            except ValueError:
                continue  # Feb 30: parse_syslog gives no time either
            if hour > 23 or minute > 59 or second > 59:
                continue
        else:
            ts = (msg := parse_syslog(line, received_at=received, tz=tz, year=_PROBE_YEAR)).timestamp
            if ts is None or msg.year_given or msg.clock_mark == "*":
                continue  # ("*": a clock never set, at 1993's "*Mar  1" amid the real months)
            month, day, ordinal = ts.month, ts.day, ts.toordinal()
            hour, minute, second = ts.hour, ts.minute, ts.second
        pos = ordinal * 86400.0 + hour * 3600 + minute * 60 + second
        if first is None:
            first = (offset, month, pos)
        elif _new_year(prev_month, prev_pos, month, pos):
            boundaries.append(offset)
        prev_month, prev_pos, last_day = month, pos, day
    if first is None:
        return Stamps()
    return Stamps(first, (prev_month, last_day, prev_pos), tuple(boundaries))


def _new_year(prev_month: int, prev_pos: float, month: int, pos: float) -> bool:
    """Whether a yearless stamp at (`month`, `pos`) after one at (`prev_month`, `prev_pos`)
    starts a new year: its month is lower, by more than `REORDER_SLACK`."""
    return month < prev_month and prev_pos - pos > _SLACK_SECONDS


def combine(parts: Iterable[Stamps], mtime: datetime) -> YearGuess:
    """The `YearGuess` of a file from the `Stamps` of its lines, part after part in file order:
    backwards from the mtime, the last yearless line is in the mtime's year (the year before
    when its month/day is later than the mtime's date), and each boundary starts a new year.
    More than `MAX_BOUNDARIES`: the file is `unordered`."""
    boundaries: list[int] = []
    last: tuple[int, int, float] | None = None
    for part in parts:
        if part.first is None or part.last is None:
            continue
        offset, month, pos = part.first
        if last is not None and _new_year(last[0], last[2], month, pos):
            boundaries.append(offset)
        boundaries.extend(part.boundaries)
        last = part.last
    if last is None:
        return YearGuess(mtime.year)
    if len(boundaries) > MAX_BOUNDARIES:
        return YearGuess(mtime.year, unordered=True)
    return YearGuess(_last_year((last[0], last[1]), mtime) - len(boundaries), tuple(boundaries))


def years(
    src: SourceFile,
    lines: Iterable[tuple[int, bytes]] | None = None,
    *,
    tz: tzinfo,
    year: int | None = None,
    parts: Callable[[Iterable[tuple[int, bytes]], tzinfo, datetime], Iterable[Stamps]] | None = None,
) -> YearGuess:
    """The first pass: the year of each yearless line of `src` (`lines`: its `open_lines`,
    read here when not given). With `year` (`--year`) every line gets it, and nothing is read.
    Otherwise `combine` of the lines' `stamps`, in this process, or by `parts` (lines, tz,
    mtime -> the `Stamps` of consecutive parts of them, in order: worker processes)."""
    if year is not None:
        return YearGuess(year, (), True)
    mtime = datetime.fromtimestamp(src.mtime, tz)
    if lines is None:
        lines = open_lines(src)
    if parts is None:
        return combine([stamps(lines, tz=tz, received=mtime)], mtime)
    return combine(parts(lines, tz, mtime), mtime)


def _last_year(month_day: tuple[int, int], mtime: datetime) -> int:
    """The latest year in which `month_day` exists and is not after the mtime's date (give or
    take `CLOCK_SLACK`)."""
    latest = mtime.date() + CLOCK_SLACK
    for year in range(mtime.year + 1, mtime.year - 8, -1):
        try:
            day = date(year, *month_day)
        except ValueError:  # Feb 29 of a common year
            continue
        if day <= latest:
            return year
    return mtime.year


def dated_lines(
    src: SourceFile, guess: YearGuess, start: int = 0, *, stats: LineStats | None = None, hold_partial: bool = False
) -> Iterator[tuple[int, bytes, int | None]]:
    """The second pass: (offset, line, year to give `parse_syslog`) from `start` (None for
    every line of an unordered file); `hold_partial` as `open_lines` takes it."""
    lines = open_lines(src, start, stats=stats, hold_partial=hold_partial)
    if guess.unordered:
        for offset, line in lines:
            yield offset, line, None
        return
    boundaries = guess.boundaries
    i = bisect.bisect_right(boundaries, start)
    year = guess.first + i
    following = boundaries[i] if i < len(boundaries) else -1
    for offset, line in lines:
        while following != -1 and offset >= following:
            i += 1
            year += 1
            following = boundaries[i] if i < len(boundaries) else -1
        yield offset, line, year
