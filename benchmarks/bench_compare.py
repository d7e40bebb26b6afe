"""nwsyslog and syslog-ng side by side on one harness: the figures of the README's results table.

    python3 benchmarks/bench_compare.py [--seconds 8] [--rss-seconds 60] [--update-readme]

Prints, for this machine:

(a) the highest offered UDP rate that `nwsyslog run` (built-in rule packs, XML to the emulator,
    a mix of the Cisco IOS, Linux and sudo/su sample lines) delivers with under 0.1% of the
    expected records missing, with one worker and with `--workers 2`; the kernel's receive-drop
    count for the listening port beside each rate;
(b) parse + map + serialize records/s on one core (the same work without sockets, in this
    process: `benchmarks/bench_rules.py`'s built-in figure);
(c) the peak resident memory of `nwsyslog run` (all its processes) while it is offered twice its
    loss-free rate for `--rss-seconds`, with what it had to drop counted;
(d) the same harness with syslog-ng (Debian's syslog-ng-core and syslog-ng-mod-http, installed
    with apt-get when missing) in place of nwsyslog: UDP source -> regexp-parser -> http()
    destination with an XML body template and batch-lines(1000), run from a temporary folder with
    its own config, pid file, control socket and persist file (never the system service); and the
    ratios nwsyslog/syslog-ng.

The harness: the sender is `benchmarks/udp_blast.c` (built here with the C compiler: sendmmsg,
16 source ports, paced every 100 us), a separate process able to outpace both receivers. The
sink is the emulator (`nwsyslog emulator --validate-every 50`: every 50th body is checked
against the XSD, the rest are counted by their record tags, so that the sink never caps the
receiver under test). A rate passes when, after the sender stops, the emulator's count stops
growing within 20 s with less than 0.1% missing. Rates are searched upward by x1.25 from
`--start`, then bisected three times (to within ~2%) between the last pass and the first failure;
the table names the lowest failing rate beside the figure. Everything shares
this machine's cores: sender, sink and receiver.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from ingestor.emulator.process import EmulatorProcess  # noqa: E402
from ingestor.netwrix.records import NAMESPACE  # noqa: E402
from parsers.rules.loader import load_ruleset  # noqa: E402
from parsers.rules.testing import ExplainOptions, explain_lines  # noqa: E402

LOSS_LIMIT = 0.1  # percent
SETTLE = 20.0  # seconds after the sender stops for everything to arrive
README_BEGIN, README_END = "<!-- bench_compare: begin -->", "<!-- bench_compare: end -->"
HAS_PRI = re.compile(rb"<\d{1,3}>")


# ---------------------------------------------------------------------------------------------
# The harness: sender, sink, counters


def build_sender(tmp: Path) -> Path:
    """Compile udp_blast.c; exit with a clear message when there is no C compiler."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        sys.exit("bench_compare: a C compiler (cc or gcc) is needed to build the sender udp_blast.c")
    binary = tmp / "udp_blast"
    subprocess.run([compiler, "-O2", "-o", str(binary), str(ROOT / "benchmarks" / "udp_blast.c")], check=True)
    return binary


@dataclass(frozen=True)
class Mix:
    """The datagrams the sender cycles through, and the records nwsyslog makes of each."""

    path: Path
    records: tuple[int, ...]  # per line, under the built-in rules

    def nwsyslog_expected(self, sent: int) -> int:
        return records_of_cycle(self.records, sent)


def records_of_cycle(records: Sequence[int], sent: int) -> int:
    """The records expected when `sent` lines went out cycling through lines that make `records`
    (per line) each: whole cycles, then the first lines of one more."""
    full, rest = divmod(sent, len(records))
    return full * sum(records) + sum(records[:rest])


def sample_lines() -> list[bytes]:
    """Every line of samples/*.log, with a PRI (`<13>`) where the line has none."""
    return [
        line if HAS_PRI.match(line) else b"<13>" + line
        for f in sorted((ROOT / "samples").glob("*.log"))
        for line in f.read_bytes().splitlines()
        if line.strip()
    ]


def write_mix(tmp: Path) -> Mix:
    lines = sample_lines()
    path = tmp / "mix.log"
    path.write_bytes(b"\n".join(lines) + b"\n")
    explained = explain_lines(load_ruleset(), lines, ExplainOptions(source="127.0.0.1"))
    return Mix(path, tuple(int("record" in obj) for obj in explained))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kernel_drops(port: int) -> int:
    """Datagrams the kernel dropped on every UDP socket bound to `port` (/proc/net/udp)."""
    total = 0
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with open(table) as f:
            next(f)
            for line in f:
                cols = line.split()
                if int(cols[1].rsplit(":", 1)[1], 16) == port:
                    total += int(cols[-1])
    return total


def bound(port: int) -> bool:
    try:
        with open("/proc/net/udp") as f:
            return any(int(line.split()[1].rsplit(":", 1)[1], 16) == port for line in list(f)[1:])
    except OSError:
        return False


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, ()))
    return tree


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


class Sink:
    """The emulator in its own process, checking every 50th body."""

    def __init__(self) -> None:
        self.proc = EmulatorProcess("--validate-every", "50")
        self.url = self.proc.url
        self.http = httpx.Client(timeout=30)

    def stats(self) -> dict[str, int]:
        return dict(self.http.get(f"{self.url}/_emulator/stats").json())

    def stored(self) -> int:
        return self.stats()["stored_records"]

    def close(self) -> None:
        self.http.close()
        self.proc.stop()


# ---------------------------------------------------------------------------------------------
# The receivers under test


class Receiver:
    name = ""

    def __init__(self, tmp: Path, sink: Sink, port: int) -> None:
        self.tmp, self.sink, self.port = tmp, sink, port
        self.proc: subprocess.Popen[bytes] | None = None

    def expected(self, mix: Mix, sent: int) -> int:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def discarded(self) -> int | None:
        """Datagrams the receiver itself counted as discarded under overload (None: not known)."""
        return None

    def wait_bound(self, what: str) -> None:
        deadline = time.monotonic() + 30
        while not bound(self.port):
            assert self.proc is not None
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.tmp / f"{self.name}.log").read_text(errors="replace")[-2000:]
                sys.exit(f"bench_compare: {what} did not start:\n{log}")
            time.sleep(0.1)
        time.sleep(0.5)  # the other sockets of the group, the HTTP client

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def pids(self) -> list[int]:
        assert self.proc is not None
        return process_tree(self.proc.pid)


class Nwsyslog(Receiver):
    def __init__(self, tmp: Path, sink: Sink, port: int, workers: int = 1) -> None:
        super().__init__(tmp, sink, port)
        self.workers = workers
        self.name = f"nwsyslog-w{workers}"
        self.metrics_port = free_port()  # worker N serves its metrics on this + N

    def expected(self, mix: Mix, sent: int) -> int:
        return mix.nwsyslog_expected(sent)

    def start(self) -> None:
        folder = self.tmp / self.name
        folder.mkdir(exist_ok=True)
        config = folder / "nwsyslog.yaml"
        config.write_text(
            f"listeners:\n  - url: udp://127.0.0.1:{self.port}\n    receive_buffer: 8388608\n"
            f"netwrix: {{url: {self.sink.url}, max_in_flight: 4}}\n"
            f"batching: {{linger: 0.2}}\nspool: {{path: {folder / 'spool.db'}}}\n"
            f"metrics: {{listen: '127.0.0.1:{self.metrics_port}'}}\n"
        )
        command = [sys.executable, "-m", "ingestor.cli", "run", "--config", str(config)]
        if self.workers > 1:
            command += ["--workers", str(self.workers)]
        with open(self.tmp / f"{self.name}.log", "wb") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        self.wait_bound("nwsyslog run")

    def discarded(self) -> int | None:
        total = 0
        for worker in range(self.workers):
            try:
                text = httpx.get(f"http://127.0.0.1:{self.metrics_port + worker}/metrics", timeout=10).text
            except httpx.HTTPError:
                return None
            total += sum(
                int(float(v)) for v in re.findall(r"^nwsyslog_overload_dropped_total\{.*\} (\S+)$", text, re.M)
            )
        return total


SYSLOG_NG_CONFIG = """@version: 3.38
options {{ stats-freq(0); keep-hostname(yes); log-msg-size(65536); }};
source s_bench {{ network(transport("udp") ip("127.0.0.1") port({port}) so-rcvbuf(8388608) log-iw-size(100000)); }};
parser p_bench {{
  regexp-parser(prefix(".nw.") patterns(
    '^\\s*(?<user>[\\w.-]+) : .*COMMAND=(?<what>.+)$',
    '^(?:Accepted|Failed) \\S+ for (?:invalid user )?(?<user>[\\w.-]+) from (?<what>\\S+)',
    '%(?<what>[A-Z0-9_]+-[0-7]-[A-Z0-9_]+):',
    '(?<what>.+)'
  ));
}};
rewrite r_bench {{
  subst("&", "&amp;", value(".nw.what") type("string") flags(global));
  subst("<", "&lt;", value(".nw.what") type("string") flags(global));
  subst(">", "&gt;", value(".nw.what") type("string") flags(global));
}};
destination d_bench {{
  http(
    url("{url}/netwrix/api/v1/activity_records/")
    method("POST")
    headers("Content-Type: application/xml; charset=UTF-8")
    body-prefix('<?xml version="1.0" encoding="UTF-8"?><ActivityRecordList xmlns="{namespace}">')
    body-suffix('</ActivityRecordList>')
    delimiter('')
    body('<ActivityRecord><Who>${{.nw.user:-system}}</Who><Action>Read</Action><What>${{.nw.what}}</What><When>${{ISODATE}}</When><Where>${{HOST}}</Where><ObjectType>syslog</ObjectType><DataSource>syslog-ng</DataSource></ActivityRecord>')
    batch-lines(1000)
    batch-timeout(200)
    workers(4)
    log-fifo-size(200000)
  );
}};
log {{ source(s_bench); parser(p_bench); rewrite(r_bench); destination(d_bench); flags(flow-control); }};
"""


def ensure_syslog_ng() -> str:
    """The syslog-ng binary, installing Debian's packages when missing (services not started)."""
    binary = shutil.which("syslog-ng") or ("/usr/sbin/syslog-ng" if Path("/usr/sbin/syslog-ng").exists() else None)
    http_module = Path("/usr/lib/syslog-ng/3.38/libhttp.so")
    if binary is not None and any(Path("/usr/lib/syslog-ng").glob("*/libhttp.so")):
        return binary
    if shutil.which("apt-get") is None:
        sys.exit("bench_compare: syslog-ng is missing and there is no apt-get to install it")
    print("installing syslog-ng-core and syslog-ng-mod-http (Debian packages)...", flush=True)
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "RUNLEVEL": "1"}
    # A policy-rc.d that refuses service starts, so that the package does not start the system
    # syslog-ng; one already in place (containers ship one) is left alone.
    policy = Path("/usr/sbin/policy-rc.d")
    placed = False
    if os.geteuid() == 0 and not policy.exists():
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        placed = True
    try:
        quiet = {"stdout": subprocess.DEVNULL, "env": env, "check": True}
        subprocess.run([*sudo, "apt-get", "update", "-q"], **quiet)  # type: ignore[call-overload]
        subprocess.run(
            [
                *sudo,
                "apt-get",
                "install",
                "-y",
                "-q",
                "--no-install-recommends",
                "syslog-ng-core",
                "syslog-ng-mod-http",
            ],
            **quiet,  # type: ignore[arg-type]
        )
    finally:
        if placed:
            policy.unlink()
    binary = shutil.which("syslog-ng") or "/usr/sbin/syslog-ng"
    if not Path(binary).exists() or not (http_module.exists() or any(Path("/usr/lib/syslog-ng").glob("*/libhttp.so"))):
        sys.exit("bench_compare: syslog-ng or its http module is still missing after apt-get install")
    return binary


class SyslogNg(Receiver):
    name = "syslog-ng"

    def __init__(self, tmp: Path, sink: Sink, port: int, binary: str) -> None:
        super().__init__(tmp, sink, port)
        self.binary = binary

    def expected(self, mix: Mix, sent: int) -> int:
        return sent  # the catch-all pattern makes one record of every message

    def version(self) -> str:
        out = subprocess.run([self.binary, "--version"], capture_output=True, text=True).stdout
        return out.splitlines()[0].strip() if out else "syslog-ng"

    def start(self) -> None:
        folder = self.tmp / "syslog-ng"
        folder.mkdir(exist_ok=True)
        config = folder / "syslog-ng.conf"
        config.write_text(SYSLOG_NG_CONFIG.format(port=self.port, url=self.sink.url, namespace=NAMESPACE))
        command = [
            self.binary, "-F", "-e", "--no-caps", "-f", str(config), "-p", str(folder / "syslog-ng.pid"),
            "-c", str(folder / "syslog-ng.ctl"), "-R", str(folder / "syslog-ng.persist"),
        ]  # fmt: skip
        with open(self.tmp / f"{self.name}.log", "wb") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self.wait_bound("syslog-ng")


# ---------------------------------------------------------------------------------------------
# Measuring


@dataclass(frozen=True)
class Step:
    offered: int
    sent: int
    achieved: float  # what the sender managed, datagrams/s
    expected: int
    delivered: int
    drops: int
    settle: float  # seconds from the sender's end until the count stopped growing
    discarded: int | None = None  # counted by the receiver under overload (nwsyslog_overload_dropped)

    @property
    def loss(self) -> float:
        return max(0.0, 100.0 * (self.expected - self.delivered) / self.expected) if self.expected else 0.0

    @property
    def passed(self) -> bool:
        return self.loss < LOSS_LIMIT and self.achieved >= 0.97 * self.offered


def send(sender: Path, port: int, mix: Mix, rate: int, seconds: float) -> tuple[int, float]:
    out = subprocess.run(
        [str(sender), "127.0.0.1", str(port), str(mix.path), str(rate), str(seconds)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    m = re.search(r"sent (\d+) in ([\d.]+) s", out)
    assert m is not None, out
    return int(m.group(1)), int(m.group(1)) / float(m.group(2))


def step(receiver: Receiver, sender: Path, mix: Mix, rate: int, seconds: float) -> Step:
    before, drops_before, discarded_before = receiver.sink.stored(), kernel_drops(receiver.port), receiver.discarded()
    sent, achieved = send(sender, receiver.port, mix, rate, seconds)
    stopped = time.monotonic()
    expected = receiver.expected(mix, sent)
    last, last_change = -1, stopped
    while time.monotonic() - last_change < 3.0 and time.monotonic() - stopped < SETTLE:
        time.sleep(0.25)
        now = receiver.sink.stored() - before
        if now != last:
            last, last_change = now, time.monotonic()
        if now >= expected:
            break
    discarded = receiver.discarded()
    result = Step(rate, sent, achieved, expected, last, kernel_drops(receiver.port) - drops_before,
                  last_change - stopped, None if discarded is None or discarded_before is None
                  else discarded - discarded_before)  # fmt: skip
    shed = "" if result.discarded is None else f", discarded {result.discarded:>8,}"
    print(
        f"  {receiver.name:>12} offered {rate:>8,}/s (sent {achieved:>9,.0f}/s): records {result.delivered:>9,}"
        f" of {expected:>9,}, loss {result.loss:6.3f}%, kernel drops {result.drops:>8,}{shed}, settled in"
        f" {result.settle:4.1f} s  {'pass' if result.passed else 'FAIL'}",
        flush=True,
    )
    return result


def highest_loss_free(
    receiver: Receiver, sender: Path, mix: Mix, start: int, seconds: float
) -> tuple[Step | None, list[Step]]:
    """The highest passing rate: up by x1.25 from `start` (down by /2 while it fails), then up to
    three bisections between the last pass and the first failure (until they are within 2%)."""
    steps: list[Step] = []
    rate, good, bad = start, None, None
    while good is None and rate >= 1000:
        s = step(receiver, sender, mix, rate, seconds)
        steps.append(s)
        if s.passed:
            good = s
        else:
            bad, rate = s, rate // 2
    if good is None:
        return None, steps
    while bad is None:
        s = step(receiver, sender, mix, int(good.offered * 1.25), seconds)
        steps.append(s)
        good, bad = (s, None) if s.passed else (good, s)
    for _ in range(3):
        middle = (good.offered + bad.offered) // 2
        if bad.offered - good.offered < 0.02 * good.offered:
            break
        s = step(receiver, sender, mix, middle, seconds)
        steps.append(s)
        good, bad = (s, bad) if s.passed else (good, s)
    return good, steps


def lowest_failure(best: Step | None, steps: list[Step]) -> int:
    """The lowest rate above `best` that failed (0 when none did): the figure's upper bracket."""
    floor = best.offered if best is not None else 0
    return min((s.offered for s in steps if not s.passed and s.offered > floor), default=0)


@dataclass(frozen=True)
class Memory:
    rate: int
    seconds: float
    peak_rss: int
    sent: int
    drops: int
    delivered: int
    expected: int
    alive: bool
    discarded: int | None = None


def peak_memory(receiver: Receiver, sender: Path, mix: Mix, rate: int, seconds: float) -> Memory:
    """Offer `rate` for `seconds`, sampling the RSS of the receiver's processes every 0.2 s."""
    before, drops_before, discarded_before = receiver.sink.stored(), kernel_drops(receiver.port), receiver.discarded()
    proc = subprocess.Popen(
        [str(sender), "127.0.0.1", str(receiver.port), str(mix.path), str(rate), str(seconds)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    peak = 0
    while proc.poll() is None:
        peak = max(peak, rss_bytes(receiver.pids()))
        time.sleep(0.2)
    out, _ = proc.communicate()
    m = re.search(r"sent (\d+)", out)
    sent = int(m.group(1)) if m else 0
    deadline = time.monotonic() + SETTLE
    last = -1
    while time.monotonic() < deadline:
        peak = max(peak, rss_bytes(receiver.pids()))
        now = receiver.sink.stored() - before
        if now == last:
            break
        last = now
        time.sleep(2)
    assert receiver.proc is not None
    discarded = receiver.discarded()
    return Memory(
        rate, seconds, peak, sent, kernel_drops(receiver.port) - drops_before, receiver.sink.stored() - before,
        receiver.expected(mix, sent), receiver.proc.poll() is None,
        None if discarded is None or discarded_before is None else discarded - discarded_before,
    )  # fmt: skip


def serialize_rate(seconds: float) -> float:
    """(b): parse + map + serialize records/s on one core, the built-in rules, the vendored corpus
    (bench_rules.py's own measure)."""
    import bench_rules

    from ingestor.netwrix.encoding import XmlEncoder

    lines = bench_rules.corpus_lines(bench_rules.CORPUS)
    ruleset = load_ruleset()
    rate, records, _ = bench_rules.measure(ruleset, lines, seconds, XmlEncoder())
    return rate * records / len(lines)


# ---------------------------------------------------------------------------------------------
# Report


@contextlib.contextmanager
def running(receiver: Receiver) -> Iterator[Receiver]:
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


def table(rows: list[tuple[str, str, str]], when: str, machine: str, command: str) -> str:
    lines = [
        f"Measured {when} on {machine} by `{command}` (sender, sink and receiver share the machine).",
        "",
        "| figure | value | target |",
        "|---|---|---|",
        *(f"| {name} | {value} | {target} |" for name, value, target in rows),
    ]
    return "\n".join(lines)


def update_readme(text: str) -> None:
    readme = ROOT / "README.md"
    content = readme.read_text()
    if README_BEGIN not in content or README_END not in content:
        sys.exit(f"bench_compare: README.md has no {README_BEGIN} ... {README_END} block to replace")
    head, rest = content.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    readme.write_text(f"{head}{README_BEGIN}\n{text}\n{README_END}{tail}")
    print("README.md: results table updated")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0, help="per offered rate (default 8)")
    parser.add_argument("--rss-seconds", type=float, default=60.0, help="the memory run at twice the rate (60)")
    parser.add_argument("--start", type=int, default=20000, help="first offered rate, messages/s (20000)")
    parser.add_argument("--update-readme", action="store_true", help="rewrite README.md's results table")
    args = parser.parse_args()
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "")
    machine = (
        f"{platform.machine()} {cpu}, {os.cpu_count()} cores, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )
    print(f"machine: {machine}", flush=True)
    syslog_ng = ensure_syslog_ng()
    with tempfile.TemporaryDirectory(prefix="nwsyslog-bench-") as folder:
        tmp = Path(folder)
        sender = build_sender(tmp)
        mix = write_mix(tmp)
        print(f"mix: {len(mix.records)} sample lines (Cisco IOS, Linux, sudo/su), "
              f"{sum(mix.records)} records under the built-in rules", flush=True)  # fmt: skip

        print("(b) parse + map + serialize (XML), one core, built-in rules:", flush=True)
        serialize = serialize_rate(max(3.0, args.seconds / 2))
        print(f"  {serialize:,.0f} records/s", flush=True)

        sink = Sink()
        try:
            results: dict[str, Step | None] = {}
            failed: dict[str, int] = {}  # the lowest failing rate above the best, per receiver
            memory: Memory | None = None
            for workers in (1, 2):
                print(f"(a) nwsyslog run, {workers} worker(s):", flush=True)
                with running(Nwsyslog(tmp, sink, free_port(), workers)) as receiver:
                    best, steps = highest_loss_free(receiver, sender, mix, args.start, args.seconds)
                    results[receiver.name] = best
                    failed[receiver.name] = lowest_failure(best, steps)
                    if workers == 1 and best is not None:
                        rate = 2 * best.offered
                        print(
                            f"(c) nwsyslog run, 1 worker, offered {rate:,}/s for {args.rss_seconds:.0f} s:", flush=True
                        )
                        memory = peak_memory(receiver, sender, mix, rate, args.rss_seconds)
                        print(
                            f"  peak RSS {memory.peak_rss / 2**20:,.0f} MiB, sent {memory.sent:,}, kernel drops "
                            f"{memory.drops:,}, discarded (counted) {memory.discarded or 0:,}, "
                            f"records {memory.delivered:,} of {memory.expected:,}, "
                            f"{'still running' if memory.alive else 'DIED'}",
                            flush=True,
                        )
            print("(d) syslog-ng, same harness:", flush=True)
            ng = SyslogNg(tmp, sink, free_port(), syslog_ng)
            with running(ng) as receiver:
                best, steps = highest_loss_free(receiver, sender, mix, args.start * 2, args.seconds)
                results["syslog-ng"], failed["syslog-ng"] = best, lowest_failure(best, steps)
            version = ng.version()
            checked = sink.stats()
        finally:
            sink.close()

    def rate_of(name: str) -> int:
        best = results.get(name)
        return best.offered if best is not None else 0

    def describe(name: str) -> str:
        best = results.get(name)
        if best is None:
            return "no rate passed"
        text = f"{best.offered:,} msg/s (loss {best.loss:.3f}%, kernel drops {best.drops:,})"
        return text + (f"; {failed[name]:,} msg/s failed" if failed.get(name) else "")

    w1, w2, ng_rate = rate_of("nwsyslog-w1"), rate_of("nwsyslog-w2"), rate_of("syslog-ng")

    def verdict(met: bool) -> str:
        return "met" if met else "NOT met"

    rss_ok = memory is not None and memory.alive and memory.peak_rss < 300 * 2**20
    rows = [
        ("(a) loss-free UDP rate, `nwsyslog run`, 1 worker", describe("nwsyslog-w1"),
         f">= 50,000 msg/s: {verdict(w1 >= 50_000)}"),
        ("(a) loss-free UDP rate, `nwsyslog run --workers 2`", describe("nwsyslog-w2"), ""),
        ("(b) parse + map + serialize, one core", f"{serialize:,.0f} records/s",
         f">= 60,000 records/s: {verdict(serialize >= 60_000)}"),
        (
            "(c) peak RSS at twice the 1-worker rate",
            "not measured"
            if memory is None
            else f"{memory.peak_rss / 2**20:,.0f} MiB over {memory.seconds:.0f} s at {memory.rate:,} msg/s; "
            f"kernel drops {memory.drops:,}, discarded and counted {memory.discarded or 0:,}; "
            f"{memory.delivered:,} records delivered; {'still running' if memory.alive else 'died'}",
            f"< 300 MB, still running: {verdict(rss_ok)}",
        ),
        (f"(d) loss-free UDP rate, {version}", describe("syslog-ng"), ""),
        ("ratio nwsyslog/syslog-ng, 1 worker", f"{w1 / ng_rate:.2f}" if ng_rate else "n/a", ""),
        ("ratio nwsyslog/syslog-ng, 2 workers", f"{w2 / ng_rate:.2f}" if ng_rate else "n/a",
         f">= 0.5: {verdict(bool(ng_rate) and w2 / ng_rate >= 0.5)}"),
    ]  # fmt: skip
    when = dt.date.today().isoformat()
    command = "python3 benchmarks/bench_compare.py" + (" --update-readme" if args.update_readme else "")
    print()
    report = table(rows, when, machine, command)
    print(report)
    print(f"(sink: {checked.get('unchecked_writes', 0):,} bodies counted, the others schema-checked; "
          f"rejected {checked.get('rejected_requests', 0):,})")  # fmt: skip
    if args.update_readme:
        update_readme(report)


if __name__ == "__main__":
    main()
