"""Service figures: spool throughput, and the highest loss-free end-to-end rate.

    python3 benchmarks/bench_service.py [--seconds 5] [--rates 5000,10000,20000,30000,40000,50000]

1. Spool: CPU per record through the SQLite spool as the service uses it: inserts in commits of
   2,500 (the listening process commits every 50 ms: 2,500 records at 50,000/s), reads of
   1,000 in key order and their deletes; ~600-byte XML fragments; a file in a temporary folder.
   Rows holding a commit's records (the spool's layout) against a row per record (what it
   was, and what a spool written by an earlier version holds).
2. End to end: the emulator and `nwsyslog run` as separate processes (built-in rules, XML, one
   worker), and `nwsyslog send`'s sender replaying the sample logs (Cisco IOS, Linux, sudo/su)
   over UDP at each offered rate for `--seconds`. Records are counted at the emulator; the
   kernel's UDP drop count comes from the service's metrics. A rate is loss-free when under
   0.1% of the expected records are missing.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_compare import records_of_cycle  # noqa: E402

from ingestor.emulator.process import EmulatorProcess  # noqa: E402
from ingestor.sender import Sender  # noqa: E402
from ingestor.spool import ROW_RECORDS, Spool  # noqa: E402
from parsers.rules.loader import load_ruleset  # noqa: E402
from parsers.rules.testing import ExplainOptions, explain_lines  # noqa: E402

FRAGMENT = (
    b"<ActivityRecord><Who>alice</Who><Action>Activated</Action><What>/usr/bin/systemctl restart nginx</What>"
    b"<When>2026-03-04T10:00:01Z</When><Where>app01</Where><ObjectType>sudo</ObjectType>"
    b"<Workstation>192.0.2.10</Workstation><MonitoringPlan><Name>Syslog</Name></MonitoringPlan>"
    b"<DataSource>Linux</DataSource><Item><Name>Linux</Name></Item><DetailList><Detail>"
    b"<PropertyName>Target user</PropertyName><After>root</After></Detail><Detail><PropertyName>TTY</PropertyName>"
    b"<After>pts/0</After></Detail><Detail><PropertyName>PWD</PropertyName><After>/home/alice</After></Detail>"
    b"</DetailList></ActivityRecord>"
)


def spool_costs(row_records: int, n: int = 200_000, commit: int = 2500) -> tuple[float, float, float]:
    """CPU microseconds per record to insert (commits of `commit` records: 50 ms at 50,000/s),
    to read (1,000 at a time) and to settle (delete what each read gave), with rows of up to
    `row_records` records."""
    with tempfile.TemporaryDirectory() as tmp, Spool(Path(tmp) / "spool.db", fmt="xml") as spool:
        spool._row_records = row_records  # (1: the layout before rows held a commit's records)
        started = time.process_time()
        for i in range(0, n, commit):
            spool.apply(inserts=[FRAGMENT] * min(commit, n - i))
        inserted = time.process_time() - started
        reads: list[list[int]] = []
        started = time.process_time()
        last = 0
        while rows := spool.read_after(last, 1000):
            last = rows[-1][0]
            reads.append([key for key, _ in rows])
        read = time.process_time() - started
        started = time.process_time()
        for keys in reads:
            spool.apply(deletes=keys)
        settled = time.process_time() - started
        assert spool.records == 0
    return inserted / n * 1e6, read / n * 1e6, settled / n * 1e6


def sample_lines() -> tuple[list[bytes], list[int]]:
    """The sample logs' lines, and the records each makes under the built-in rules (0 or 1)."""
    lines = [line for f in sorted((ROOT / "samples").glob("*.log")) for line in f.read_bytes().splitlines() if line]
    records = [int("record" in o) for o in explain_lines(load_ruleset(), lines, ExplainOptions())]
    return lines, records


def stored(emulator: EmulatorProcess) -> int:
    return int(httpx.get(f"{emulator.url}/_emulator/stats").json()["stored_records"])


def metric(text: str, name: str) -> float:
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def end_to_end(rates: list[int], seconds: float) -> list[tuple[int, int, int, float, float, float]]:
    """Per offered rate: (rate, sent, expected, delivered, loss %, kernel drops)."""
    lines, records = sample_lines()
    results = []
    with tempfile.TemporaryDirectory() as tmp, EmulatorProcess() as emulator:
        config = Path(tmp) / "bench.yaml"
        config.write_text(
            f"listeners:\n  - url: udp://127.0.0.1:0\n    receive_buffer: 8388608\n"
            f"netwrix: {{url: {emulator.url}, max_in_flight: 4}}\n"
            f"batching: {{linger: 0.2}}\nspool: {{path: {Path(tmp) / 'spool.db'}}}\n"
            f"metrics: {{listen: '127.0.0.1:0'}}\n"
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "ingestor.cli", "run", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stdout is not None
        port = metrics_port = 0
        for out in proc.stdout:
            if m := re.search(r"listening on udp://[^:]+:(\d+)", out):
                port = int(m.group(1))
            if m := re.search(r"metrics on port (\d+)", out):
                metrics_port = int(m.group(1))
            if "nwsyslog: spool" in out:
                break
        try:
            for rate in rates:
                count = int(rate * seconds)
                batch = (lines * (count // len(lines) + 1))[:count]
                before = stored(emulator)
                drops_before = metric(
                    httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text, "nwsyslog_udp_kernel_drops_total"
                )
                with Sender("udp", "127.0.0.1", port) as sender:
                    sender.replay(batch, rate=rate)
                expected = records_of_cycle(records, count)  # (`batch` is `lines` repeated, cut at `count`)
                # Wait until the emulator stops growing (everything spooled has been delivered).
                last, still = -1, 0
                while still < 3:
                    time.sleep(0.5)
                    now = stored(emulator) - before
                    still = still + 1 if now == last else 0
                    last = now
                text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
                drops = metric(text, "nwsyslog_udp_kernel_drops_total") - drops_before
                loss = max(0.0, 100.0 * (expected - last) / expected)
                results.append((rate, count, expected, last, loss, drops))
                print(
                    f"  offered {rate:>7,}/s: sent {count:,}, records expected {expected:,}, delivered {last:,}, "
                    f"loss {loss:.3f}%, kernel drops {drops:,.0f}",
                    flush=True,
                )
                if loss >= 0.1:
                    break
        finally:
            proc.terminate()
            proc.wait(30)
            proc.stdout.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rates", default="5000,10000,20000,30000,40000,50000,60000")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    for label, row_records in (("rows of a commit's records", ROW_RECORDS), ("a row per record", 1)):
        insert, read, settle = spool_costs(row_records)
        total = insert + read + settle
        print(f"spool, {label}: CPU per record insert {insert:.2f} us, read {read:.2f} us, settle {settle:.2f} us "
              f"(through the spool: {1e6 / total:,.0f} records/s)")  # fmt: skip
    print("end to end (UDP -> nwsyslog run -> emulator), offered rates:")
    results = end_to_end([int(r) for r in args.rates.split(",")], args.seconds)
    clean = [r for r in results if r[4] < 0.1]
    best = max((r[0] for r in clean), default=0)
    records = best * (clean[-1][2] / clean[-1][1]) if clean else 0
    print(f"highest loss-free rate: {best:,} messages/s ({records:,.0f} records/s)")


if __name__ == "__main__":
    main()
