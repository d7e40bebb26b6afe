"""The SQLite spool: ordering, batched transactions, quarantine, restart and crash durability."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingestor.errors import StartupError
from ingestor.spool import PAGE_SIZE, SLOTS, ImportProgress, Spool


def test_records_come_back_in_order_and_go_when_delivered(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.db", fmt="xml") as spool:
        spool.apply(inserts=[b"a", b"bb", b"ccc"])
        rows = spool.read_after(0, 10)
        assert [d for _, d in rows] == [b"a", b"bb", b"ccc"]
        assert spool.read_after(rows[0][0], 1) == rows[1:]  # (whole rows: one commit, one row)
        spool.apply(deletes=[rows[0][0], rows[2][0]])
        assert [d for _, d in spool.read_after(0, 10)] == [b"bb"]
        assert (spool.records, spool.bytes) == (1, 2)
        assert spool.stats().records == 1 and spool.stats().bytes == 2


def test_ids_only_grow_even_when_the_spool_was_emptied(tmp_path: Path) -> None:
    """The feeder reads "rows after the last id it read": an id must never be handed out twice."""
    with Spool(tmp_path / "s.db", fmt="xml") as spool:
        spool.apply(inserts=[b"a", b"b"])
        last = spool.read_after(0, 10)[-1][0]
        spool.apply(deletes=[i for i, _ in spool.read_after(0, 10)])
        spool.apply(inserts=[b"c"])
        assert [d for _, d in spool.read_after(last, 10)] == [b"c"]


def test_quarantine_keeps_the_reason_and_retry_puts_records_back(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.db", fmt="xml") as spool:
        spool.apply(inserts=[b"good", b"bad"])
        (good_id, _), (bad_id, bad) = spool.read_after(0, 10)
        spool.apply(deletes=[good_id], quarantines=[(bad_id, bad, "Who: too long")])
        assert spool.records == 0
        [q] = spool.quarantined()
        assert (q.record_id, q.data, q.reason) == (bad_id, b"bad", "Who: too long")
        assert spool.stats().quarantined == 1 == spool.quarantine_count
        assert spool.retry() == 1
        assert spool.quarantine_count == 0
        assert [d for _, d in spool.read_after(0, 10)] == [b"bad"] and spool.records == 1
        assert spool.quarantined() == []


def test_what_was_committed_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Spool(path, fmt="json") as spool:
        spool.apply(inserts=[b"1", b"2"])
    with Spool(path, fmt="json") as spool:
        assert [d for _, d in spool.read_after(0, 10)] == [b"1", b"2"]
        assert (spool.records, spool.bytes) == (2, 2)


def test_a_spool_in_another_format_is_refused_while_it_holds_records(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Spool(path, fmt="xml") as spool:
        spool.apply(inserts=[b"<ActivityRecord/>"])
    with pytest.raises(StartupError, match=r"encoded as xml.*format is json"):
        Spool(path, fmt="json")


def test_a_new_spool_file_has_large_pages(tmp_path: Path) -> None:
    """A row holds a commit's records: fewer, larger pages to write per row (see PAGE_SIZE)."""
    with Spool(tmp_path / "s.db", fmt="xml") as spool:
        spool.apply(inserts=[b"x" * 600] * 100)
        assert spool._db.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE == 16384
        assert spool._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_files_are_private(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "s.db"
    with Spool(path, fmt="xml") as spool:
        spool.apply(inserts=[b"x"])
        for f in path.parent.iterdir():
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


def test_kill_9_loses_nothing_that_was_committed(tmp_path: Path) -> None:
    """A writer process commits batches and reports each; SIGKILL; every reported row is there."""
    path = tmp_path / "s.db"
    script = textwrap.dedent(
        f"""
        import sys
        from ingestor.spool import Spool
        spool = Spool({str(path)!r}, fmt="xml")
        n = 0
        while True:
            spool.apply(inserts=[b"r%d" % i for i in range(n, n + 100)])
            n += 100
            print(n, flush=True)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    committed = 0
    for line in proc.stdout:
        committed = int(line)
        if committed >= 5000:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    with Spool(path, fmt="xml") as spool:
        rows = spool.read_after(0, 10**6)
    assert len(rows) >= committed
    assert [d for _, d in rows[:committed]] == [b"r%d" % i for i in range(committed)]


@settings(max_examples=80, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.lists(st.binary(max_size=20), max_size=5), st.lists(st.integers(0, 30), max_size=5)), max_size=12
    ),
    row_records=st.integers(1, 4),
)
def test_counters_match_the_file(steps: list[tuple[list[bytes], list[int]]], row_records: int) -> None:
    with Spool(":memory:", fmt="xml") as spool:
        spool._row_records = row_records  # commits spread over several rows, or a row per record
        for inserts, picks in steps:
            deletes = apply_step(spool, inserts, picks)
            stats = spool.stats()
            assert (spool.records, spool.bytes) == (stats.records, stats.bytes)
            assert not deletes & {i for i, _ in spool.read_after(0, 1000)}


# A batch goes in as one blob cut apart by SQLite: any bytes, text or not, empty or not, must come
# back as the same bytes, in order.
fragment_text = st.text(alphabet=st.characters(codec="utf-8", blacklist_characters="\x00"), max_size=30)


@settings(max_examples=200, deadline=None)
@given(
    batches=st.lists(st.lists(st.one_of(fragment_text.map(str.encode), st.binary(max_size=10)), max_size=6), max_size=5)
)
def test_any_fragments_come_back_as_the_same_bytes(batches: list[list[bytes]]) -> None:
    with Spool(":memory:", fmt="xml") as spool:
        for inserts in batches:
            spool.apply(inserts=inserts)
        stored = [data for _, data in spool.read_after(0, 10_000)]
        assert stored == [data for inserts in batches for data in inserts]
        assert spool.bytes == spool.stats().bytes == sum(map(len, stored))


def test_a_batch_is_one_statement(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool.db", fmt="xml") as spool:
        statements: list[str] = []
        spool._db.set_trace_callback(statements.append)
        inserts = [f'<ActivityRecord><Who>u{i}\u00e9"\\</Who></ActivityRecord>'.encode() for i in range(500)]
        spool.apply(inserts=[*inserts, b"\x00\xff", b""])
        assert sum("INSERT" in s for s in statements) == 1
        assert [data for _, data in spool.read_after(0, 1000)] == [*inserts, b"\x00\xff", b""]


def apply_steps(max_size: int) -> st.SearchStrategy[list[tuple[list[bytes], list[int]]]]:
    """Commits: fragments to insert, and picks among the rows already there to delete."""
    fragments = st.lists(st.one_of(fragment_text.map(str.encode), st.binary(max_size=10)), max_size=6)
    return st.lists(st.tuples(fragments, st.lists(st.integers(0, 30), max_size=4)), max_size=max_size)


def apply_step(spool: Spool, inserts: list[bytes], picks: list[int]) -> set[int]:
    """One commit: `inserts`, and the records `picks` point at (by position, wrapping) deleted.
    Returns the keys deleted."""
    ids = [i for i, _ in spool.read_after(-1, 10**6)]
    deletes = {ids[p % len(ids)] for p in picks} if ids else set()
    spool.apply(inserts=inserts, deletes=deletes)
    return deletes


@settings(max_examples=150, deadline=None)
@given(
    steps=apply_steps(max_size=6),
    row_records=st.integers(1, 4),
    last=st.integers(-1, 12),
    limit=st.integers(1, 40),
)
def test_a_read_is_the_waiting_records_after_the_key_in_whole_rows(
    steps: list[tuple[list[bytes], list[int]]], row_records: int, last: int, limit: int
) -> None:
    with Spool(":memory:", fmt="xml") as spool:
        spool._row_records = row_records
        waiting: list[tuple[int, bytes]] = []  # the model: every record inserted and not deleted
        for inserts, picks in steps:
            before = {key for key, _ in spool.read_after(-1, 10**6)}
            deletes = apply_step(spool, inserts, picks)
            waiting = [(k, d) for k, d in waiting if k not in deletes]
            new = [(k, d) for k, d in spool.read_after(-1, 10**6) if k not in before]
            assert [d for _, d in new] == inserts, "a commit's records, in order, under new keys"
            assert all(k > max(before, default=-1) for k, _ in new), "keys only grow"
            waiting += new
        # After no key, after a waiting record's key, or after a key between or beyond them.
        start = -1 if last < 0 or not waiting else waiting[last % len(waiting)][0] + last % 2
        after = [(k, d) for k, d in waiting if k > start]
        got = spool.read_after(start, limit)
        assert got == after[: len(got)], "a prefix of what waits after the key, in key order"
        assert len(got) >= min(limit, len(after))
        if len(got) < len(after):
            assert after[len(got)][0] // SLOTS != got[-1][0] // SLOTS, "whole rows: a row is never cut"


@settings(max_examples=60, deadline=None)
@given(
    commits=st.lists(
        st.tuples(
            st.lists(st.binary(max_size=8), max_size=7),
            st.lists(st.tuples(st.integers(0, 40), st.sampled_from(["deliver", "quarantine"])), max_size=6),
            st.booleans(),
        ),
        max_size=10,
    ),
    row_records=st.integers(1, 5),
)
def test_records_settled_out_of_a_row_never_come_back_and_the_rest_do(
    tmp_path_factory: pytest.TempPathFactory,
    commits: list[tuple[list[bytes], list[tuple[int, str]], bool]],
    row_records: int,
) -> None:
    """Rows hold several records: whatever part of a row is delivered or quarantined, in any
    order over any number of commits, with the file reopened between them (a restart), a read
    gives exactly the records not settled, and the counters agree with them."""
    path = tmp_path_factory.mktemp("spool") / "spool.db"
    waiting: dict[int, bytes] = {}
    quarantined: list[bytes] = []
    spool = Spool(path, fmt="xml")
    try:
        for inserts, settles, reopen in commits:
            spool._row_records = row_records
            keys = sorted(waiting)
            deletes: list[int] = []
            moves: list[tuple[int, bytes, str]] = []
            for pick, how in settles:
                if keys:
                    key = keys[pick % len(keys)]
                    if how == "deliver":
                        deletes.append(key)
                    elif key not in [m[0] for m in moves]:
                        moves.append((key, waiting[key], "400"))
            before = set(waiting)
            spool.apply(inserts=inserts, deletes=deletes, quarantines=moves)
            for key in {*deletes, *(m[0] for m in moves)}:
                waiting.pop(key, None)
            quarantined += [data for _, data, _ in moves]
            read = spool.read_after(-1, 10**6)
            waiting.update((k, d) for k, d in read if k not in before)
            assert read == sorted(waiting.items())
            assert (spool.records, spool.bytes) == (len(waiting), sum(map(len, waiting.values())))
            stats = spool.stats()
            assert (stats.records, stats.bytes, stats.quarantined) == (
                len(waiting),
                sum(map(len, waiting.values())),
                len(quarantined),
            )
            if reopen:
                spool.close()
                spool = Spool(path, fmt="xml")
                assert spool.read_after(-1, 10**6) == sorted(waiting.items())
        assert [q.data for q in spool.quarantined(10**6)] == quarantined
    finally:
        spool.close()


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["insert", "deliver", "quarantine", "retry"]), st.booleans(), st.integers(0, 30)),
        max_size=14,
    ),
    row_records=st.integers(1, 3),
)
def test_two_processes_writing_one_file_both_read_its_totals(
    steps: list[tuple[str, bool, int]], row_records: int
) -> None:
    """The listening process inserts, the delivery process deletes and quarantines, `nwsyslog
    spool retry` moves rows back: after its own commit each reads the file's totals, whatever
    the others did since (two connections stand for the processes)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "spool.db"
        with Spool(path, fmt="xml") as first, Spool(path, fmt="xml") as second:
            for spool in (first, second):
                spool._row_records = row_records
            for what, by_first, pick in steps:
                spool = first if by_first else second
                ids = [i for i, _ in spool.read_after(0, 1000)]
                if what == "insert":
                    spool.apply(inserts=[b"r%d" % n for n in range(pick % 5)])
                elif what == "deliver":
                    spool.apply(deletes=[ids[pick % len(ids)], ids[-1]] if ids else [pick])
                elif what == "quarantine":
                    spool.apply(quarantines=[(ids[pick % len(ids)], b"q", "400")] if ids else [])
                else:
                    spool.retry()
                stats = spool.stats()
                assert (spool.records, spool.bytes, spool.quarantine_count) == (
                    stats.records, stats.bytes, stats.quarantined
                )  # fmt: skip
            other = second if spool is first else first
            other.refresh()
            assert (other.records, other.bytes, other.quarantine_count) == (
                spool.records, spool.bytes, spool.quarantine_count
            )  # fmt: skip


def test_a_spool_from_before_the_counts_table_is_counted_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    with Spool(path, fmt="xml") as spool:
        spool.apply(inserts=[b"abc", b"de"])
        spool.apply(quarantines=[(spool.read_after(-1, 1)[0][0], b"abc", "400")])
        spool._db.execute("DROP TABLE counts")  # as a spool written by an earlier version
    with Spool(path, fmt="xml") as spool:
        assert (spool.records, spool.bytes, spool.quarantine_count) == (1, 2, 1)


def test_a_spool_from_before_rows_held_several_records_is_read_and_delivered(tmp_path: Path) -> None:
    """The file an earlier version wrote (a row per record, no `lengths`/`done` columns, no
    counts row) opens, its records come out in order, and they can be delivered."""
    import sqlite3

    path = tmp_path / "spool.db"
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE records (id INTEGER PRIMARY KEY AUTOINCREMENT, data BLOB NOT NULL, created REAL NOT NULL);
        CREATE TABLE quarantine (
            id INTEGER PRIMARY KEY, record_id INTEGER, data BLOB NOT NULL, reason TEXT NOT NULL, created REAL NOT NULL
        );
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('format', 'xml');
        INSERT INTO records (data, created) VALUES (x'6f6e65', 1.0), (x'74776f', 2.0), (x'7468726565', 3.0);
        DELETE FROM records WHERE id = 2;
        """
    )
    page_size = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    with Spool(path, fmt="xml") as spool:
        assert spool._db.execute("PRAGMA page_size").fetchone()[0] == page_size  # a file keeps its pages
        assert (spool.records, spool.bytes) == (2, 8)
        rows = spool.read_after(-1, 10)
        assert [d for _, d in rows] == [b"one", b"three"]
        spool.apply(inserts=[b"four", b"five"], deletes=[rows[0][0]])
        assert [d for _, d in spool.read_after(-1, 10)] == [b"three", b"four", b"five"]
        assert (spool.records, spool.bytes) == (3, 13) and spool.stats().records == 3


def test_an_import_commit_spools_only_unseen_fingerprints_with_the_files_progress(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool.db", fmt="xml") as spool:
        assert spool.import_position(b"file-1") is None
        first = [(b"fp-%d" % i, b"<ActivityRecord>%d</ActivityRecord>" % i) for i in range(5)]
        reading = ImportProgress(250, False, "/var/log/auth.log", 500, inode=1234, head="ab" * 32, head_size=4096)
        assert spool.import_commit(first, file_id=b"file-1", progress=reading) == 5
        assert spool.import_position(b"file-1") == reading
        # Again, with two new lines: only those are spooled; the progress moves on.
        again = [
            *first[3:],
            (b"fp-5", b"<ActivityRecord>5</ActivityRecord>"),
            (b"fp-6", b"<ActivityRecord>6</ActivityRecord>"),
        ]
        rotated = ImportProgress(500, True, "/var/log/auth.log.1", 500, inode=99, head="ab" * 32, head_size=4096)
        assert spool.import_commit(again, file_id=b"file-1", progress=rotated) == 2
        assert spool.import_position(b"file-1") == rotated
        assert spool.records == 7 and spool.inserted == 7
        assert [data for _, data in spool.read_after(0, 100)] == [
            b"<ActivityRecord>%d</ActivityRecord>" % i for i in range(7)
        ]
    with Spool(tmp_path / "spool.db", fmt="xml") as spool:  # kept across opens
        assert spool.import_position(b"file-1") == rotated
        assert spool.import_commit(first, file_id=b"file-1", progress=ImportProgress(1, True, "x", 1)) == 0


def test_an_unseen_import_commit_skips_the_lookup_but_never_writes_a_fingerprint_twice(tmp_path: Path) -> None:
    import sqlite3

    with Spool(tmp_path / "spool.db", fmt="xml") as spool:
        assert not spool.import_fingerprints_between(b"fp-0", b"fp-9")
        batch = [(b"fp-%d" % i, b"<ActivityRecord>%d</ActivityRecord>" % i) for i in range(3)]
        assert spool.import_commit(batch, file_id=b"f", progress=ImportProgress(10, False, "p", 1), unseen=True) == 3
        assert spool.import_fingerprints_between(b"fp-1", b"fp-1") and not spool.import_fingerprints_between(
            b"fp-5", b"fp-9"
        )
        # A caller wrong about "unseen": the commit fails whole (nothing twice, progress kept).
        with pytest.raises(sqlite3.IntegrityError):
            spool.import_commit(batch[2:], file_id=b"f", progress=ImportProgress(20, False, "p", 1), unseen=True)
        assert spool.records == 3 and spool.import_position(b"f") == ImportProgress(10, False, "p", 1)


def test_an_import_progress_from_before_inode_and_head_were_kept_reads_and_updates(tmp_path: Path) -> None:
    """A spool whose import_files table an earlier version made (no inode, head columns) opens;
    its progress reads without them, and the next commit keeps them."""
    import sqlite3

    path = tmp_path / "spool.db"
    with Spool(path, fmt="xml"):
        pass
    db = sqlite3.connect(path)
    db.executescript(
        """
        DROP TABLE import_files;
        CREATE TABLE import_files (
            file_id BLOB PRIMARY KEY, path TEXT NOT NULL, size INTEGER NOT NULL, position INTEGER NOT NULL,
            done INTEGER NOT NULL, updated REAL NOT NULL
        );
        INSERT INTO import_files VALUES (x'01', '/var/log/secure', 900, 900, 1, 1.0);
        """
    )
    db.close()
    with Spool(path, fmt="xml") as spool:
        assert spool.import_position(b"\x01") == ImportProgress(900, True, "/var/log/secure", 900)
        now = ImportProgress(1200, True, "/var/log/secure", 1200, inode=7, head="cd" * 32, head_size=1200)
        spool.import_commit([], file_id=b"\x01", progress=now)
    with Spool(path, fmt="xml") as spool:
        assert spool.import_position(b"\x01") == now


@settings(max_examples=100, deadline=None)
@given(
    before=st.lists(st.binary(min_size=1, max_size=6), max_size=6),
    landed=st.lists(st.binary(min_size=1, max_size=6), min_size=1, max_size=9),
    later=st.lists(st.binary(min_size=1, max_size=6), max_size=4),
    row_records=st.integers(1, 4),
)
def test_a_commit_that_landed_after_all_is_found_and_no_other(
    before: list[bytes], landed: list[bytes], later: list[bytes], row_records: int
) -> None:
    with Spool(":memory:", fmt="xml") as spool:
        spool._row_records = row_records
        spool.apply(inserts=before)
        since = spool.inserted
        # Nothing went in since the writer's last good commit: nothing of what it holds is there.
        assert spool.already_holds(since, landed + later) == 0
        spool.apply(inserts=landed)  # the commit the writer was told had failed
        assert spool.already_holds(since, landed + later) == len(landed)
        # Other records than the writer's, or too few of them to be the commit: not its records.
        assert spool.already_holds(since, [b"\x00" + r for r in landed] + later) == 0
        assert spool.already_holds(since, landed[:-1]) == 0
        if before:
            assert spool.already_holds(since - 1, [before[-1], *landed]) == len(landed) + 1
