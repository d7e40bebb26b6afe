"""`nwsyslog import FILE...`: existing log files into the spool (and, with --direct, to Netwrix).

The files are found and ordered by `files.expand` (rotated sets oldest first, `.gz`/`.bz2`/`.xz`
read transparently), their yearless timestamps dated by `files.years` (backwards from each
file's modification time), and their lines mapped by `importer.Importer` with the
configuration's rules and record fields into the configuration's spool, which a running
service delivers. With `direct`, a delivery process of this command's own sends what is
spooled and waits until the spool is empty (only when no service runs on that spool: two
delivery processes would send records twice). A dry run writes nothing and prints the summary.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from parsers.rules.engine import RuleSet

from ..config import ServiceConfig
from ..netwrix.encoding import encoder_for
from ..netwrix.records import RecordDefaults
from ..spool import ImportProgress, Spool
from ..unmatched import Inventory, format_listing
from .files import LineStats, SourceFile, dated_lines, expand, open_lines
from .importer import Importer, ImportStats, Period, file_identity

DIRECT_POLL = 0.5  # seconds between looks at the spool while --direct delivers
# A plain file modified this recently may be being written: an unfinished last line (no newline
# yet) is left for the next import, which reads it whole (imported now, its rest would come as a
# second, broken line). An older file's last line without a newline is a line.
GROWING_QUIET = 60.0
# tqdm's monitor thread (it only retunes how often a stalled bar redraws) would make this
# process multi-threaded, and an import after it could not fork its workers.
tqdm.monitor_interval = 0


@dataclass(frozen=True)
class ImportOptions:
    """What the command line says (see `nwsyslog import --help`)."""

    patterns: Sequence[str]
    tz: tzinfo
    year: int | None = None
    host: str = ""
    since: datetime | None = None
    until: datetime | None = None
    dry_run: bool = False
    direct: bool = False
    progress: bool = True
    jobs: int = 1  # worker processes mapping lines (1: this process does it)


def run_import(
    config: ServiceConfig, options: ImportOptions, out: TextIO = sys.stdout, ruleset: RuleSet | None = None
) -> ImportStats:
    """Import the files (with `ruleset`, else the configuration's rules); raises ConfigError for
    files that cannot be found or read, and KeyboardInterrupt as it came (what was committed
    stays: a second run continues)."""
    from ..service import default_spool_path, load_rules, spool_options

    sources = expand(options.patterns, stdin=sys.stdin.buffer if "-" in options.patterns else None)
    ruleset = ruleset if ruleset is not None else load_rules(config)
    encoder = encoder_for(config.netwrix.format)
    defaults = RecordDefaults.from_mapping(config.records.as_mapping())
    spool_path = config.spool.path or default_spool_path()
    spool = None if options.dry_run else Spool(spool_path, **spool_options(config))
    inventory = Inventory.from_settings(config.unmatched)
    importer = Importer(
        ruleset,
        encoder,
        defaults,
        spool,
        tz=options.tz,
        host=options.host,
        period=Period(options.since, options.until),
        inventory=inventory,
        jobs=options.jobs,
    )
    started = time.monotonic()
    try:
        overall = tqdm(total=len(sources), unit="file", desc="files", disable=not options.progress, position=0)
        for src in sources:
            try:
                _import_file(importer, src, options, out)
            finally:
                src.discard()
            overall.update(1)
        overall.close()
        importer.close()
        if spool is not None and options.direct:
            _deliver(config, spool, spool_path, out)
    finally:
        importer.close()
        if spool is not None:
            spool.close()
    _summary(importer.stats, inventory, time.monotonic() - started, options, out, importer.jobs_used)
    return importer.stats


def _import_file(importer: Importer, src: SourceFile, options: ImportOptions, out: TextIO) -> None:
    first = next((line for _, line in open_lines(src)), None)
    if first is None:
        print(f"{src.name}: empty", file=out)
        return
    file_id = file_identity(first)
    earlier = importer.resume_at(file_id)
    # The identity is the first line; a file that shares it with another (a banner, a line
    # without a time) is told apart by its first bytes, and read from its start.
    if (
        earlier is not None
        and earlier.head is not None
        and earlier.head_size is not None
        and not src.begins_with(earlier.head_size, earlier.head)
    ):
        print(
            f"{src.name}: begins with the same line as {earlier.path} imported before, but is another "
            "file: imported from its start (lines the two share are not written twice)",
            file=out,
        )
        earlier = None
    start, done = (earlier.position, earlier.done) if earlier is not None else (0, False)
    if done and (src.compression is not None or src.size <= start):
        print(f"{src.name}: imported before (nothing new)", file=out)
        return
    if start:
        print(f"{src.name}: continuing at byte {start:,} of its text", file=out)
    guess = importer.years(src, tz=options.tz, year=options.year)
    stats = importer.stats
    before = stats.lines, stats.records, stats.written
    total = src.size if src.compression is None else None
    bar = tqdm(total=total, initial=min(start, total or 0), unit="B", unit_scale=True, desc=src.name,
               disable=not options.progress, position=1, leave=False)  # fmt: skip
    reached = [start]

    def on_batch(offset: int) -> None:
        if total is not None:
            bar.update(max(0, offset - reached[0]))
        reached[0] = offset
        bar.set_postfix(lines=stats.lines - before[0], records=stats.records - before[1], refresh=False)

    read = LineStats()
    hold = src.growing(time.time(), GROWING_QUIET)
    file = ImportProgress(0, False, src.name, src.size, src.inode, src.head_hash, src.head_size)
    try:
        importer.import_lines(
            dated_lines(src, guess, start, stats=read, hold_partial=hold),
            file_id=file_id,
            file=file,
            on_batch=on_batch,
            received_at=datetime.fromtimestamp(src.mtime, UTC),
            start=start,
        )
    finally:
        bar.close()
    lines, records, written = (stats.lines - before[0], stats.records - before[1], stats.written - before[2])
    print(
        f"{src.name}: {lines:,} lines, {records:,} records ({written:,} new), years {guess.describe()}",
        file=out,
    )
    if read.held:
        print(
            f"{src.name}: its last line has no newline yet (the file is being written): "
            "left for the next import, which reads it whole",
            file=out,
        )


def _deliver(config: ServiceConfig, spool: Spool, spool_path: Path, out: TextIO) -> None:
    """--direct: a delivery process sends what is spooled; returns when the spool is empty (or
    raises StartupError when delivery halts: the records stay spooled)."""
    from ..deliverer import DeliveryProcess
    from ..errors import StartupError
    from ..service import delivery_settings
    from ..spool_lock import SpoolLock

    # Only where no service runs on this spool: two delivery processes would send records twice.
    lock = SpoolLock(spool_path)
    try:
        lock.acquire(0, purpose="nwsyslog import --direct")
    except StartupError as exc:
        raise StartupError(
            f"{exc}. The records are imported into the spool; the running service delivers them (--direct is "
            "for when no service runs)"
        ) from None
    settings = delivery_settings(config, spool_path, config.netwrix, shares_lock=True)

    async def deliver() -> None:
        process = DeliveryProcess(settings, lock_fd=lock.fd)
        await process.start()
        try:
            while True:
                spool.refresh()
                if spool.records == 0:
                    return
                if process.halted:
                    raise StartupError(f"delivery halted: {process.halted} ({spool.records:,} records stay spooled)")
                if process.ended.is_set():
                    raise StartupError(f"the delivery process ended ({spool.records:,} records stay spooled)")
                await asyncio.sleep(DIRECT_POLL)
        finally:
            await process.stop(config.shutdown_timeout)

    spool.refresh()
    print(f"delivering {spool.records:,} spooled records to {config.netwrix.write_url}", file=out)
    try:
        asyncio.run(deliver())
    finally:
        lock.release()
    print("delivered: the spool is empty", file=out)


def _summary(
    stats: ImportStats, inventory: Inventory, seconds: float, options: ImportOptions, out: TextIO, jobs: int
) -> None:
    rate = stats.lines / seconds if seconds > 0 else 0.0
    workers = f", {jobs} worker processes" if jobs > 1 else ""
    verb = "would be written" if options.dry_run else "written"
    print(
        f"\n{stats.lines:,} lines in {seconds:.1f} s ({rate:,.0f} lines/s{workers}): {stats.records:,} records "
        f"({stats.written:,} new, {verb}; {stats.records - stats.written:,} imported before), "
        f"{stats.unmatched:,} unmatched, {stats.dropped:,} dropped by rules, {stats.outside:,} outside the period, "
        f"{stats.render_errors:,} render errors",
        file=out,
    )
    if stats.by_pack_action:
        print("\nrecords by pack and Action:", file=out)
        for (pack, action), count in sorted(stats.by_pack_action.items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"  {count:>9,}  {pack:<20} {action}", file=out)
    if len(inventory):
        print("\nunmatched shapes (as `nwsyslog unmatched --from FILE` groups them, with --draft ID):", file=out)
        print(format_listing(inventory.as_json(), samples=False, limit=10), file=out)
    if inventory.over_budget:
        print(
            f"({inventory.over_budget:,} unmatched lines were counted but not put in a shape: more than "
            f"unmatched.mine_per_second ({inventory.mine_per_second:,}) a second; "
            "`nwsyslog parse --summary FILE` shapes every line)",
            file=out,
        )
