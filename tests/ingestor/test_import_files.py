"""ingestor.importing.files: finding, ordering and reading files to import, and their years."""

import bz2
import gzip
import io
import itertools
import lzma
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingestor.errors import ConfigError
from ingestor.importing import files
from ingestor.importing.files import (
    MAX_LINE,
    LineStats,
    dated_lines,
    expand,
    open_lines,
    years,
)
from parsers.syslog import parse_syslog

WRITERS = {None: lambda d: d, "gzip": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}


def make(path, data=b"x\n", compression=None, mtime=None):
    path.write_bytes(WRITERS[compression](data))
    if mtime is not None:
        os.utime(path, (mtime.timestamp(), mtime.timestamp()))
    return path


def names(files):
    return [f.path.name for f in files]


def test_a_numbered_set_is_oldest_first(tmp_path):
    for name, kind in [("auth.log", None), ("auth.log.1", None), ("auth.log.2.gz", "gzip"),
                       ("auth.log.3.gz", "gzip"), ("auth.log.4.gz", "gzip"), ("auth.log.10.gz", "gzip")]:  # fmt: skip
        make(tmp_path / name, name.encode() + b"\n", kind)
    files = expand([str(tmp_path / "auth.log*")])
    assert names(files) == ["auth.log.10.gz", "auth.log.4.gz", "auth.log.3.gz", "auth.log.2.gz", "auth.log.1",
                            "auth.log"]  # fmt: skip
    # the same set named one by one, newest first, is read oldest first too
    files = expand([str(tmp_path / n) for n in ("auth.log", "auth.log.1", "auth.log.2.gz")])
    assert names(files) == ["auth.log.2.gz", "auth.log.1", "auth.log"]


def test_a_dateext_set_is_by_date_with_the_live_file_last(tmp_path):
    for name, kind in [("secure", None), ("secure-20260308", None), ("secure-20260301.gz", "gzip"),
                       ("secure-20260222.xz", "xz")]:  # fmt: skip
        make(tmp_path / name, compression=kind)
    assert names(expand([str(tmp_path / "secure*")])) == [
        "secure-20260222.xz", "secure-20260301.gz", "secure-20260308", "secure",
    ]  # fmt: skip


def test_sets_keep_the_order_of_the_arguments_and_globs(tmp_path):
    for name in ("messages", "messages.1", "auth.log", "auth.log.1", "cron", "b.log", "a.log"):
        make(tmp_path / name)
    files = expand([str(tmp_path / "messages"), str(tmp_path / "auth.log*"), str(tmp_path / "?.log"),
                    str(tmp_path / "messages.1"), str(tmp_path / "cron")])  # fmt: skip
    assert names(files) == ["messages.1", "messages", "auth.log.1", "auth.log", "a.log", "b.log", "cron"]


def test_a_file_named_twice_or_by_a_link_is_read_once(tmp_path):
    make(tmp_path / "syslog")
    os.link(tmp_path / "syslog", tmp_path / "hardlink")
    files = expand([str(tmp_path / "syslog"), str(tmp_path / "*"), str(tmp_path / "hardlink")])
    assert names(files) == ["syslog"]


def test_missing_files_are_an_error_naming_them(tmp_path):
    make(tmp_path / "there")
    with pytest.raises(ConfigError) as caught:
        expand([str(tmp_path / "there"), str(tmp_path / "gone"), str(tmp_path / "nothing*")])
    assert "gone" in str(caught.value) and "nothing*" in str(caught.value) and "there" not in str(caught.value)
    with pytest.raises(ConfigError, match="not a regular file"):
        expand([str(tmp_path)])
    with pytest.raises(ConfigError, match="only once"):
        expand(["-", "-"])


@pytest.mark.parametrize("kind", [None, "gzip", "bz2", "xz"])
def test_source_file_facts_and_compression_from_the_magic_bytes(tmp_path, kind):
    data = b"".join(b"Mar  1 10:00:%02d host prog: line %d\n" % (i % 60, i) for i in range(500))
    path = make(tmp_path / "misnamed.log", data, kind, mtime=datetime(2026, 3, 1, 12, tzinfo=UTC))
    [src] = expand([str(path)])
    st = path.stat()
    assert (src.name, src.size, src.inode, src.device) == (str(path), st.st_size, st.st_ino, st.st_dev)
    assert src.mtime == datetime(2026, 3, 1, 12, tzinfo=UTC).timestamp() and src.compression == kind
    import hashlib

    assert src.head_hash == hashlib.sha256(data[:4096]).hexdigest()
    assert [line for _, line in open_lines(src)] == data.splitlines()


def test_stdin_is_buffered_to_a_file_read_twice(tmp_path):
    data = gzip.compress(b"Dec 31 23:00:00 h p: a\nJan  1 01:00:00 h p: b\n")
    [src] = expand(["-"], stdin=io.BytesIO(data))
    try:
        assert src.path is None and src.name == "<stdin>" and src.compression == "gzip"
        assert src.spool is not None and src.spool.exists()
        assert abs(src.mtime - datetime.now(UTC).timestamp()) < 60
        assert [line for _, line in open_lines(src)] == [b"Dec 31 23:00:00 h p: a", b"Jan  1 01:00:00 h p: b"]
        guess = years(src, tz=UTC)
        assert [y for _, _, y in dated_lines(src, guess)] == [guess.last - 1, guess.last]
    finally:
        src.discard()
    assert not src.spool.exists()


@pytest.mark.parametrize("kind", [None, "gzip"])
def test_resuming_at_an_offset_gives_exactly_the_remaining_lines(tmp_path, kind):
    lines = [b"line %d %s" % (i, b"x" * (i % 17)) for i in range(3000)]
    data = b"\n".join(lines) + b"\n"
    [src] = expand([str(make(tmp_path / "f", data, kind))])
    read = list(open_lines(src))
    assert [line for _, line in read] == lines
    assert all(data[offset:].startswith(line + b"\n") for offset, line in read)
    for k in (0, 1, 1234, 2999):
        assert [line for _, line in open_lines(src, read[k][0])] == lines[k:]
    end = read[-1][0] + len(lines[-1]) + 1
    assert list(open_lines(src, end)) == []


def test_a_long_line_is_cut_and_counted_and_offsets_stay_right(tmp_path):
    data = b"short\n" + b"y" * (MAX_LINE * 3 + 5) + b"\nafter\nno newline"
    [src] = expand([str(make(tmp_path / "f", data, "gzip"))])
    stats = LineStats()
    read = list(open_lines(src, stats=stats))
    assert [(o, len(line)) for o, line in read] == [(0, 5), (6, MAX_LINE), (6 + MAX_LINE * 3 + 6, 5),
                                                    (6 + MAX_LINE * 3 + 12, 10)]  # fmt: skip
    assert (stats.lines, stats.cut) == (4, 1) and read[-1][1] == b"no newline"


def year_file(tmp_path, stamps, mtime, kind=None, name="f"):
    data = b"".join(f"{s} host prog: line {i}\n".encode() for i, s in enumerate(stamps))
    [src] = expand([str(make(tmp_path / name, data, kind, mtime=mtime))])
    return src


def years_of(src, **kw):
    guess = years(src, tz=kw.pop("tz", UTC), **kw)
    return [y for _, _, y in dated_lines(src, guess)]


@pytest.mark.parametrize("kind", [None, "bz2"])
def test_a_file_across_new_year_gets_both_years(tmp_path, kind):
    stamps = ["Nov 20 10:00:00", "Dec  1 10:00:00", "Dec 31 23:59:59", "Jan  1 00:00:00", "Feb  3 10:00:00"]
    src = year_file(tmp_path, stamps, datetime(2026, 2, 3, 12, tzinfo=UTC), kind)
    assert years_of(src) == [2025, 2025, 2025, 2026, 2026]
    stamped = [parse_syslog(line, tz=UTC, year=y).timestamp for _, line, y in dated_lines(src, years(src, tz=UTC))]
    assert stamped[0] == datetime(2025, 11, 20, 10, tzinfo=UTC) and stamped[-1] == datetime(2026, 2, 3, 10, tzinfo=UTC)


def test_a_last_line_after_the_mtimes_day_is_last_year(tmp_path):
    src = year_file(tmp_path, ["Dec 29 10:00:00", "Dec 30 10:00:00"], datetime(2026, 1, 2, 8, tzinfo=UTC))
    assert years_of(src) == [2025, 2025]


def test_the_mtime_is_read_in_the_given_zone(tmp_path):
    from parsers.syslog import zone_for

    # 2026-01-02 03:00 UTC is Jan 1, 22:00 in New York: a last line of "Jan  3" is a day ahead
    # of the mtime in UTC (a clock a little ahead: 2026), two days in New York (last year's)
    src = year_file(tmp_path, ["Jan  3 01:00:00"], datetime(2026, 1, 2, 3, tzinfo=UTC))
    assert years_of(src) == [2026]
    assert years_of(src, tz=zone_for("America/New_York")) == [2025]


def test_two_year_boundaries(tmp_path):
    stamps = ["Dec 30 10:00:00", "Mar  1 10:00:00", "Dec 31 10:00:00", "Jan  2 10:00:00", "Jan  3 10:00:00"]
    src = year_file(tmp_path, stamps, datetime(2026, 1, 3, 12, tzinfo=UTC), "xz")
    assert years_of(src) == [2024, 2025, 2025, 2026, 2026]
    guess = years(src, tz=UTC)
    assert (guess.first, guess.last, len(guess.boundaries)) == (2024, 2026, 2)
    # resuming mid-file keeps each line's year
    offsets = [o for o, _ in open_lines(src)]
    assert [y for _, _, y in dated_lines(src, guess, offsets[2])] == [2025, 2026, 2026]
    assert [guess.year_at(o) for o in offsets] == [2024, 2025, 2025, 2026, 2026]


def test_lines_with_their_own_year_or_none_count_for_nothing(tmp_path):
    stamps = ["Dec 31 10:00:00", "2024-06-01T10:00:00Z", "Mar 01 2019 10:00:00", "Jan  1 10:00:00"]
    data = "".join(f"{s} host prog: x\n" for s in stamps) + "no header at all\n"
    src = expand([str(make(tmp_path / "f", data.encode(), mtime=datetime(2026, 1, 1, 12, tzinfo=UTC)))])[0]
    guess = years(src, tz=UTC)
    assert (guess.first, guess.last) == (2025, 2026)
    stamped = [parse_syslog(line, tz=UTC, year=y).timestamp for _, line, y in dated_lines(src, guess)]
    assert [t.year if t else None for t in stamped] == [2025, 2024, 2019, 2026, None]


def test_lines_a_little_out_of_order_across_a_months_end_are_no_new_year(tmp_path):
    stamps = ["Mar 31 23:59:58", "Apr  1 00:00:01", "Mar 31 23:59:59", "Apr  1 00:00:02"]
    src = year_file(tmp_path, stamps, datetime(2026, 4, 1, 1, tzinfo=UTC))
    assert years_of(src) == [2026] * 4


def test_a_cisco_clock_never_set_is_no_new_year(tmp_path):
    """A device that booted without a clock writes "*Mar  1" (1993's) amid a relay's real
    months; its "*" says the time is not authoritative, so those lines mark no boundary."""
    lines = [
        b"Jun  3 10:00:00 relay sshd[1]: Accepted password for bob from 192.0.2.1 port 22 ssh2",
        b"Jun  3 10:00:01 relay 12: *Mar  1 00:01:02.123: %SYS-5-CONFIG_I: Configured from console by vty0",
        b"Jun  3 10:00:02 relay sshd[1]: Accepted password for bob from 192.0.2.1 port 22 ssh2",
        b"<189>13: *Mar  1 00:01:05: %SYS-5-CONFIG_I: Configured from console by vty0",
        b"Jun  3 10:00:03 relay sshd[1]: Accepted password for bob from 192.0.2.1 port 22 ssh2",
    ]
    src = expand([str(make(tmp_path / "f", b"\n".join(lines) + b"\n", mtime=datetime(2026, 6, 3, 11, tzinfo=UTC)))])[0]
    assert parse_syslog(lines[1], year=2000).clock_mark == "*"
    guess = years(src, tz=UTC)
    assert (guess.first, guess.boundaries, guess.unordered) == (2026, (), False)


def test_a_file_out_of_time_order_dates_each_line_by_the_mtime(tmp_path):
    """Concatenated logs (or a relay's senders with wrong clocks) go down in month more often
    than a file can cross New Year: no boundary means anything, and each line takes the latest
    year that puts it no later than the file's mtime (give or take the parser's week)."""
    stamps = ["Mar  1 10:00:00", "Feb  1 10:00:00", "Jan  1 10:00:00"] * (files.MAX_BOUNDARIES + 1)
    stamps.append("Dec  1 10:00:00")
    src = year_file(tmp_path, stamps, datetime(2026, 3, 1, 12, tzinfo=UTC))
    guess = years(src, tz=UTC)
    assert guess.unordered and "out of time order" in guess.describe()
    assert set(years_of(src)) == {None}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(0, 40), max_size=8), seed=st.integers(0, 2**32 - 1))
def test_the_year_pass_in_parts_finds_what_one_pass_finds(tmp_path, cuts, seed):
    """The workers' year pass: `combine` over the `stamps` of parts cut anywhere (empty ones
    too) equals one pass over all lines, boundaries at a cut included."""
    import random

    rng = random.Random(seed)
    when = datetime(2024, 11, 1, tzinfo=UTC)
    texts = []
    for _ in range(40):
        when += timedelta(days=rng.choice([0, 1, 20, 40]), seconds=rng.randrange(86400))
        texts.append(when.strftime("%b %e %H:%M:%S") if rng.random() < 0.9 else when.isoformat())
    src = year_file(tmp_path, texts, when)
    whole = years(src, tz=UTC)

    def parts(lines, tz, received):
        items = list(lines)
        edges = [0, *sorted(cuts), len(items)]
        return [files.stamps(items[a:b], tz=tz, received=received) for a, b in itertools.pairwise(edges)]

    assert years(src, tz=UTC, parts=parts) == whole


def test_a_year_given_overrides_everything(tmp_path):
    src = year_file(tmp_path, ["Dec 31 10:00:00", "Jan  1 10:00:00"], datetime(2026, 1, 2, tzinfo=UTC))
    guess = years(src, tz=UTC, year=2019)
    assert guess.given and years_of(src, year=2019) == [2019, 2019]


def test_a_yearless_leap_day_last_line_goes_back_to_a_leap_year(tmp_path):
    src = year_file(tmp_path, ["Feb 28 10:00:00", "Feb 29 10:00:00"], datetime(2026, 3, 5, tzinfo=UTC))
    assert years_of(src) == [2024, 2024]


_START = datetime(2020, 1, 1, tzinfo=UTC)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.integers(0, 2 * 365 * 86400),
    # Steps under half a year: a new year always shows as the month going down.
    st.lists(st.integers(0, 180 * 86400), min_size=1, max_size=40),
    st.integers(0, 6 * 3600),
    st.sampled_from([None, "gzip"]),
)
def test_inferred_years_reproduce_the_original_times(tmp_path_factory, offset, steps, after, kind):
    times = [_START + timedelta(seconds=offset)]
    for step in steps:
        if times[-1] + timedelta(seconds=step) - times[0] > timedelta(days=3 * 365):
            break
        times.append(times[-1] + timedelta(seconds=step))
    src = year_file(tmp_path_factory.mktemp("p"), [t.strftime("%b %e %H:%M:%S") for t in times],
                    times[-1] + timedelta(seconds=after), kind)  # fmt: skip
    guess = years(src, tz=UTC)
    got = [parse_syslog(line, tz=UTC, year=y).timestamp for _, line, y in dated_lines(src, guess)]
    assert got == times


def test_the_quick_year_pass_agrees_with_parsing_every_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The year pass reads the common stamp itself: on real lines of many senders (the vendored
    corpus, one file after another as one log) it finds what parsing every line finds."""
    corpus = Path(__file__).resolve().parents[1] / "corpus"
    lines = [line for f in sorted(corpus.rglob("*.log")) for line in f.read_bytes().splitlines() if line.strip()]
    log = tmp_path / "mixed.log"
    log.write_bytes(b"\n".join(lines) + b"\n")
    mtime = datetime(2026, 6, 1, tzinfo=UTC).timestamp()
    os.utime(log, (mtime, mtime))
    (src,) = files.expand([str(log)])
    monkeypatch.setattr(files, "MAX_BOUNDARIES", 10**6)  # (this file's order means nothing: compare anyway)
    quick = files.years(src, tz=UTC)
    for shortcut in ("_QUICK_STAMP", "_ISO_START"):  # (none of the shortcuts: every line parsed)
        monkeypatch.setattr(files, shortcut, re.compile(rb"(?!)"))
    monkeypatch.setattr(files, "_ANY_TIME", re.compile(rb""))
    assert files.years(src, tz=UTC) == quick
    assert len(quick.boundaries) > 3  # (the corpus's files are of many years: the test means something)
