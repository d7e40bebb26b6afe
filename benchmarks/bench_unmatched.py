"""The unmatched inventory's cost per unmatched message and its memory bound.

    python3 benchmarks/bench_unmatched.py [--seconds 3]

1. Service path: `Pipeline.handle()` over the vendored corpus (`tests/corpus`, real lines, about
   30% of them unmatched by the built-in packs) without the inventory, with every unmatched
   message mined, and with the default budget (`unmatched.mine_per_second`: 5,000; at these
   rates most unmatched messages are then only counted); the difference divided by the
   unmatched lines is what the inventory costs each unmatched message there.
2. Worst case for the miner: unmatched messages only, of 50 programs x 20 templates with
   random values (every message a tree search, a similarity scan and a template merge).
3. Memory bound: an inventory filled past its bounds by adversarial traffic (every message a
   new shape, 1,000-character lines, a new host each): tracemalloc's count of what it holds,
   after 10,000 and after 100,000 such messages (equal: the bound holds).
"""

from __future__ import annotations

import argparse
import gc
import platform
import random
import string
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingestor.netwrix.encoding import XmlEncoder  # noqa: E402
from ingestor.pipeline import Pipeline  # noqa: E402
from ingestor.unmatched import Inventory  # noqa: E402
from parsers.rules.loader import load_ruleset  # noqa: E402
from parsers.syslog import parse_syslog  # noqa: E402

SEED = 20261202


def rate(fn: Callable[[], int], seconds: float) -> float:
    """Items per second of `fn` (which returns how many it did), best of repeated runs."""
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        gc.collect()
        start = time.perf_counter()
        n = fn()
        best = max(best, n / (time.perf_counter() - start))
    return best


def service_path(seconds: float) -> None:
    files = sorted((ROOT / "tests" / "corpus").rglob("*.log"))
    lines = [line for f in files for line in f.read_bytes().splitlines() if line.strip()]
    random.Random(SEED).shuffle(lines)
    ruleset = load_ruleset()

    def run(budget: int | None) -> tuple[Callable[[], int], Pipeline]:
        inventory = Inventory(mine_per_second=budget) if budget is not None else None
        pipeline = Pipeline(ruleset, XmlEncoder(), inventory=inventory)
        handle, now = pipeline.handle, time.time()

        def go() -> int:
            for line in lines:
                handle(line, "192.0.2.1:514", now)
            pipeline.take()
            return len(lines)

        return go, pipeline

    without, _ = run(None)
    every, pipeline = run(10**9)  # every unmatched message mined
    bounded, _ = run(5000)  # the default budget
    without_rate = rate(without, seconds)
    every_rate = rate(every, seconds)
    bounded_rate = rate(bounded, seconds)
    share = pipeline.stats.unmatched / pipeline.stats.received
    print(f"corpus lines: {len(lines):,}, unmatched by the built-in packs: {share:.1%}")
    print(f"Pipeline.handle lines/s without inventory:                 {without_rate:,.0f}")
    print(f"Pipeline.handle lines/s, every unmatched message mined:    {every_rate:,.0f}")
    print(f"Pipeline.handle lines/s, default budget (5,000 mined/s):   {bounded_rate:,.0f}")
    for name, value in (("every message mined", every_rate), ("default budget", bounded_rate)):
        cost = (1 / value - 1 / without_rate) / share * 1e6
        shown = f"{cost:.1f} us" if cost >= 0.5 else "under 0.5 us (within the run-to-run noise)"
        print(f"inventory cost per unmatched message, {name}: {shown}")


def synthetic(n: int, rng: random.Random) -> list[tuple[object, bytes]]:
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 9))) for _ in range(400)]
    templates = [
        [rng.choice(words) if rng.random() < 0.6 else None for _ in range(rng.randint(4, 14))] for _ in range(1000)
    ]
    now = datetime.now(UTC)
    out = []
    for _ in range(n):
        index = rng.randrange(len(templates))
        text = " ".join(w if w is not None else str(rng.randint(0, 10**6)) for w in templates[index])
        raw = f"<13>Dec  2 10:00:00 host{rng.randint(1, 20)} prog{index % 50}[1]: {text}".encode()
        out.append((parse_syslog(raw, received_at=now), raw))
    return out


def miner_only(seconds: float) -> None:
    messages = synthetic(100_000, random.Random(SEED))

    def go() -> int:
        inventory = Inventory(mine_per_second=10**9)
        add = inventory.add
        for message, raw in messages:
            add(message, raw)  # type: ignore[arg-type]
        return len(messages)

    per_second = rate(go, seconds)
    print(f"Inventory.add, unmatched messages only (50 programs x 20 templates): {per_second:,.0f}/s, "
          f"{1e6 / per_second:.1f} us each")  # fmt: skip


def memory_bound() -> None:
    rng = random.Random(SEED)
    now = datetime.now(UTC)

    def hostile(count: int, start: int) -> list[tuple[object, bytes]]:
        out = []
        for i in range(start, start + count):
            # A new program every 10 messages, a new word count (a new shape) each message.
            words = " ".join("".join(rng.choices(string.ascii_lowercase, k=6)) for _ in range(1 + i % 150))
            raw = f"<13>Dec  2 10:00:00 host-{i} p{i // 10}[1]: {words}".encode()[:1100]
            out.append((parse_syslog(raw, received_at=now), raw))
        return out

    inventory = Inventory(mine_per_second=10**9)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    figures = []
    done = 0
    for target in (10_000, 100_000):
        for start in range(done, target, 10_000):
            for message, raw in hostile(10_000, start):
                inventory.add(message, raw)  # type: ignore[arg-type]
        done = target
        gc.collect()
        figures.append((target, tracemalloc.get_traced_memory()[0] - base, len(inventory), inventory.unshaped))
    tracemalloc.stop()
    for messages, held, shapes, unshaped in figures:
        print(f"memory after {messages:,} hostile messages: {held / 2**20:.1f} MiB in {shapes:,} shapes "
              f"({unshaped:,} counted beyond the bounds)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per measured figure")
    args = parser.parse_args()
    print(f"Python {platform.python_version()} on {platform.machine()}, one core")
    service_path(args.seconds)
    miner_only(args.seconds)
    memory_bound()


if __name__ == "__main__":
    main()
