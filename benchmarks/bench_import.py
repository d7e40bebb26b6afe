"""`nwsyslog import` speed: records/s from a gzip'ed file into the spool, against the service's
parse+map rate on the same lines (the issue's target: at least that rate, one core).

    python3 benchmarks/bench_import.py [--lines 200000] [--jobs N]

The file is the vendored corpus (`tests/corpus`, real lines of many senders) repeated to
`--lines` lines, each line's text made unique (so that every record is new to the spool), gzip'ed.
The import runs as `nwsyslog import` does (`run_import`: the year pass, decompression, parse,
rules, record writer, fingerprint, spool commits), into a fresh spool in a temporary folder:
once in one process (`--jobs 1`), once with worker processes (`--jobs`, default one per core,
as `nwsyslog import` runs).
The service's figure is `Pipeline.handle` over the same lines (with the unmatched inventory, as
the service runs it), as `bench_rules.py` measures it.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingestor.config import load_service_config  # noqa: E402
from ingestor.importing.command import ImportOptions, run_import  # noqa: E402
from ingestor.importing.workers import default_jobs  # noqa: E402
from ingestor.netwrix.encoding import XmlEncoder  # noqa: E402
from ingestor.pipeline import Pipeline  # noqa: E402
from ingestor.unmatched import Inventory  # noqa: E402
from parsers.rules.loader import load_ruleset  # noqa: E402
from parsers.syslog import zone_for  # noqa: E402


def corpus(n: int) -> list[bytes]:
    files = sorted((ROOT / "tests" / "corpus").rglob("*.log"))
    base = [line for f in files for line in f.read_bytes().splitlines() if line.strip()]
    return [base[i % len(base)] + b" #%d" % i for i in range(n)]


def service_rate(lines: list[bytes]) -> float:
    pipeline = Pipeline(load_ruleset(), XmlEncoder(), inventory=Inventory())
    now = time.time()
    start = time.perf_counter()
    for line in lines:
        pipeline.handle(line, "192.0.2.1:514", now)
        if len(pipeline.pending) > 10000:
            pipeline.take()
    return len(lines) / (time.perf_counter() - start)


def import_rate(lines: list[bytes], jobs: int) -> tuple[float, float, int, int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        log = folder / "messages.1.gz"
        log.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
        config_file = folder / "nwsyslog.yaml"
        config_file.write_text(f"listeners: [udp://127.0.0.1:0]\nspool: {{path: {folder / 'spool.db'}}}\n")
        config = load_service_config(config_file)
        options = ImportOptions(patterns=[str(log)], tz=zone_for("UTC"), progress=False, jobs=jobs)
        ruleset = load_ruleset()  # (loading the rules is start-up, not import work)
        start = time.perf_counter()
        stats = run_import(config, options, out=io.StringIO(), ruleset=ruleset)
        seconds = time.perf_counter() - start
    return stats.lines / seconds, stats.records / seconds, stats.records, stats.unmatched, seconds


def measure(args: argparse.Namespace) -> None:
    """One figure, in this fresh process (as a `nwsyslog import` or the service runs: no heap,
    caches or threads left by another measurement), printed as JSON."""
    lines = corpus(args.lines)
    if args.measure == "service":
        print(json.dumps({"rate": service_rate(lines)}))
        return
    lps, rps, records, unmatched, seconds = import_rate(lines, args.jobs)
    figures = {"rate": lps, "records_rate": rps, "records": records, "unmatched": unmatched, "seconds": seconds}
    print(json.dumps(figures))


def run(*extra: str, lines: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--lines", str(lines), *extra], check=True, capture_output=True, text=True
    ).stdout
    result: dict[str, float] = json.loads(out.splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--jobs", type=int, default=default_jobs())
    parser.add_argument("--measure", choices=["service", "import"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args)
        return
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores; {args.lines:,} lines "
          "(each figure from a fresh process)")  # fmt: skip
    rate = run("--measure", "service", lines=args.lines)["rate"]
    print(f"service parse+map (Pipeline.handle) on the same lines, one core: {rate:,.0f} lines/s")
    for jobs in dict.fromkeys((1, args.jobs)):
        got = run("--measure", "import", "--jobs", str(jobs), lines=args.lines)
        label = "one process" if jobs == 1 else f"{jobs} worker processes"
        print(f"import from gzip into the spool, {label}: {got['rate']:,.0f} lines/s, {got['records_rate']:,.0f} "
              f"records/s ({got['records']:,} records, {got['unmatched']:,} unmatched, {got['seconds']:.1f} s); "
              f"import / service: {got['rate'] / rate:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
