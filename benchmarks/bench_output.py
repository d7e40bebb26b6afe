"""Output-path figures: serialization records/s (XML, JSON) and emulator write records/s.

    python3 benchmarks/bench_output.py [--seconds 5] [--records 20000]

Serialization runs on one core in this process: model construction, then encoding each record
once into its fragment, then joining fragments into 1,000-record bodies. The emulator runs as a
separate process (`nwsyslog emulator`, in-memory store); this process posts pre-built 1,000-record
XML bodies over several keep-alive connections and reads the emulator's own count of stored
records, so the figure is what the emulator validated and stored, not what was sent.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

# The checkout's code, not an installed copy (which may be older).
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingestor.emulator.process import EmulatorProcess  # noqa: E402
from ingestor.loop import run  # noqa: E402
from ingestor.netwrix.encoding import JsonEncoder, XmlEncoder  # noqa: E402
from ingestor.netwrix.records import ActivityRecord  # noqa: E402

BASE = datetime(2026, 11, 22, tzinfo=UTC)


def record_fields(i: int) -> dict[str, object]:
    return {
        "Who": f"user{i % 97}",
        "Action": ("Successful Logon", "Modified", "Failed Logon", "Session start")[i % 4],
        "What": f"running-config line {i}: interface GigabitEthernet0/{i % 48}",
        "When": BASE + timedelta(milliseconds=i),
        "Where": f"core-sw{i % 8}.example.net",
        "ObjectType": "Configuration",
        "Workstation": f"10.0.{i % 250}.{i % 200}",
        "MonitoringPlan": {"Name": "Network devices"},
        "Item": {"Name": "Linux"},
        "DetailList": [{"PropertyName": "Command", "After": f"description uplink {i}"}],
    }


def bench_serialization(n: int) -> dict[str, float]:
    fields = [record_fields(i) for i in range(n)]
    started = time.perf_counter()
    records = [ActivityRecord(**f) for f in fields]  # type: ignore[arg-type]
    model_rate = n / (time.perf_counter() - started)
    out = {"model records/s": model_rate}
    for name, enc in (("xml", XmlEncoder()), ("json", JsonEncoder())):
        started = time.perf_counter()
        fragments = [enc.encode(r) for r in records]
        bodies = [enc.join(fragments[i : i + 1000]) for i in range(0, n, 1000)]
        elapsed = time.perf_counter() - started
        assert sum(len(b) for b in bodies) > 0
        out[f"{name} serialize records/s"] = n / elapsed
    return out


async def _post_loop(url: str, body: bytes, deadline: float, counts: list[int]) -> None:
    async with httpx.AsyncClient(timeout=60) as http:
        while time.monotonic() < deadline:
            response = await http.post(url, content=body, headers={"Content-Type": "application/xml"})
            response.raise_for_status()
            counts[0] += 1


def bench_emulator(seconds: float, connections: int) -> dict[str, float]:
    with EmulatorProcess() as emulator:
        base = emulator.url
        enc = XmlEncoder()
        body = enc.join([enc.encode(ActivityRecord(**record_fields(i))) for i in range(1000)])  # type: ignore[arg-type]
        url = f"{base}/netwrix/api/v1/activity_records/"

        async def drive() -> tuple[int, float]:
            # Warm up the emulator's threads and connections before timing.
            await _post_loop(url, body, time.monotonic() + 0.5, [0])
            before = httpx.get(f"{base}/_emulator/stats").json()["stored_records"]
            counts = [0]
            started = time.monotonic()
            deadline = started + seconds
            await asyncio.gather(*(_post_loop(url, body, deadline, counts) for _ in range(connections)))
            elapsed = time.monotonic() - started
            after = httpx.get(f"{base}/_emulator/stats").json()["stored_records"]
            return after - before, elapsed

        stored, elapsed = run(drive())
        return {
            "emulator write records/s": stored / elapsed,
            "request body bytes": float(len(body)),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20_000, help="records for the serialization figures")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of the emulator write run")
    parser.add_argument("--connections", type=int, default=4, help="concurrent keep-alive connections")
    args = parser.parse_args()
    print(f"# nwsyslog output-path benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"# machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    for name, value in bench_serialization(args.records).items():
        print(f"{name:32s} {value:12,.0f}")
    for name, value in bench_emulator(args.seconds, args.connections).items():
        print(f"{name:32s} {value:12,.0f}")


if __name__ == "__main__":
    main()
