"""The fault matrix: `nwsyslog run` against a misbehaving Integration API, nothing lost.

    python3 -m tests.e2e.fault_matrix            # long form (a 60 s outage, ~3 minutes in all)
    python3 -m tests.e2e.fault_matrix --short    # what CI asserts (tests/e2e/test_fault_matrix.py)

Each scenario starts the emulator (a real HTTP server on loopback, HTTPS where the scenario
needs it) with one fault, runs the service in-process on real sockets with its SQLite spool,
sends numbered sudo lines over TCP while the fault lasts, removes the fault where the scenario
has a fix (credentials corrected in the file and SIGHUP's reload), and waits until every record
is accounted for. Then it counts, per scenario: records sent, delivered (distinct), duplicated
(delivered more than once), quarantined (the server refused them alone: in the spool's
quarantine with its reason), kept (still spooled, e.g. after a refused certificate), and lost:
sent and none of these. Lost must be 0 everywhere.

Faults: 503 for the whole outage; 500 on 20% of requests; 2 s latency on every request; 413
above 64 KiB; 401 until the credentials are fixed and the service reloaded; the connection
reset in the middle of a request (a TCP proxy that cuts every connection with an RST part way
through a request body); a TLS thumbprint that does not match (nothing may be
sent, everything kept).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ingestor.config import load_service_config
from ingestor.emulator import EmulatorServer, EmulatorSettings
from ingestor.loop import run
from ingestor.service import Service
from ingestor.spool import Spool
from tests.ingestor.test_service import running

LINE = "<86>Mar  4 10:00:01 app01 sudo:    alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/echo fault-{n}"
NUMBER = re.compile(r"fault-(\d+)")
WRONG_PIN = "00" * 32


@dataclass(frozen=True)
class Scenario:
    name: str
    emulator: dict[str, Any] = field(default_factory=dict)
    netwrix: dict[str, Any] = field(default_factory=dict)  # merged into the service's netwrix section
    batching: dict[str, Any] = field(default_factory=dict)
    tls: bool = False
    proxy_reset: bool = False  # put the connection-resetting proxy between service and server
    fix_credentials: bool = False  # after the traffic: right password into the file, then reload
    expect_delivery: bool = True  # False: the service must refuse to send and keep everything


@dataclass(frozen=True)
class Result:
    name: str
    sent: int
    delivered: int
    duplicated: int
    quarantined: int
    kept: int
    seconds: float
    injected: int  # how often the fault struck: failed or refused requests, resets, delayed requests

    @property
    def lost(self) -> int:
        return self.sent - self.delivered - self.quarantined - self.kept


def scenarios(outage: float, latency_ms: float = 2000) -> list[Scenario]:
    """The matrix; `outage` is how long the 503 outage lasts."""
    return [
        Scenario(f"503 for {outage:g} s", emulator={"outage_s": outage, "fail_status": 503}),
        Scenario("500 on 20% of requests", emulator={"fail_rate": 0.2, "fail_status": 500, "seed": 7}),
        Scenario(f"{latency_ms / 1000:g} s latency", emulator={"latency_ms": latency_ms}),
        # Batches of up to 1,000 records (~700 KB) gathered for 3 s: the server's 413s make the
        # service split them.
        Scenario(
            "413 above 64 KiB",
            emulator={"max_body_bytes": 64 * 1024},
            batching={"max_batch_records": 1000, "linger": 3.0},
        ),
        Scenario(
            "401 until fixed + reload",
            emulator={"user": ("writer", "right")},
            netwrix={"auth": {"method": "basic", "username": "writer", "password": "wrong"}},
            fix_credentials=True,
        ),
        Scenario("reset mid-request", proxy_reset=True),
        Scenario(
            "TLS thumbprint mismatch",
            tls=True,
            netwrix={"tls": {"mode": "thumbprint", "thumbprint": WRONG_PIN}},
            expect_delivery=False,
        ),
    ]


# ---------------------------------------------------------------------------------------------
# A TCP proxy that resets every other connection in the middle of a request


class ResettingProxy:
    """Forwards loopback TCP to `upstream` and cuts every connection with an RST in the middle
    of a request, so the server never sees that whole body: odd connections after 4 KiB, even
    ones after 256 KiB (a later request on the kept-alive connection), so resets keep coming."""

    def __init__(self, upstream: tuple[str, int], cuts: tuple[int, int] = (4096, 256 * 1024)) -> None:
        self.upstream = upstream
        self.cuts = cuts
        self.connections = 0
        self.resets = 0
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        cut_after = self.cuts[(self.connections - 1) % 2]
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            _reset(writer)
            return

        async def upstream() -> None:
            sent = 0
            while data := await reader.read(65536):
                if sent + len(data) > cut_after:
                    up_writer.write(data[: max(1, cut_after - sent)])
                    await up_writer.drain()
                    self.resets += 1
                    _reset(writer)
                    _reset(up_writer)
                    return
                sent += len(data)
                up_writer.write(data)
                await up_writer.drain()
            up_writer.close()

        async def downstream() -> None:
            while data := await up_reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.close()

        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            await asyncio.gather(upstream(), downstream())


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


# ---------------------------------------------------------------------------------------------
# Running one scenario


def _service_config(folder: Path, url: str, scenario: Scenario, password: str | None = None) -> dict[str, Any]:
    netwrix: dict[str, Any] = {
        "url": url,
        "retry": {"base": 0.05, "factor": 2, "cap": 0.5},
        "timeout": 10,
        **scenario.netwrix,
    }
    if password is not None:
        netwrix["auth"] = {**netwrix["auth"], "password": password}
    return {
        "listeners": ["tcp://127.0.0.1:0"],
        "netwrix": netwrix,
        # Small batches: many requests, so faults hit many of them.
        "batching": {"max_batch_records": 50, "linger": 0.05, **scenario.batching},
        "spool": {"path": str(folder / "spool.db")},
        "metrics": {"listen": None},
    }


async def _until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def _send(port: int, count: int, seconds: float) -> None:
    """`count` numbered lines over one TCP connection, spread over `seconds`."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    chunks = max(1, int(seconds * 20))
    per = -(-count // chunks)
    for start in range(0, count, per):
        writer.write(b"".join(LINE.format(n=n).encode() + b"\n" for n in range(start, min(count, start + per))))
        await writer.drain()
        await asyncio.sleep(seconds / chunks)
    writer.close()
    await writer.wait_closed()


def _numbers(texts: list[str]) -> list[int]:
    return [int(m.group(1)) for t in texts for m in [NUMBER.search(t)] if m is not None]


async def run_scenario(scenario: Scenario, folder: Path, count: int, seconds: float, timeout: float) -> Result:
    """Run one scenario end to end and count what happened to each of `count` records."""
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    settings = EmulatorSettings(**scenario.emulator)
    with EmulatorServer.running(settings, tls=scenario.tls) as emulator:
        store = emulator.emulator.store
        proxy = None
        url = emulator.base_url
        if scenario.proxy_reset:
            proxy = ResettingProxy(("127.0.0.1", emulator.port))
            await proxy.start()
            url = f"http://127.0.0.1:{proxy.port}"
        path = folder / "nwsyslog.yaml"
        path.write_text(yaml.safe_dump(_service_config(folder, url, scenario)))
        try:
            async with running(load_service_config(path), config_path=path) as service:
                port = next(s.port for s in service.sources)
                await _send(port, count, seconds)
                pipeline = service.pipeline
                assert pipeline is not None
                await _until(lambda: pipeline.stats.records >= count, timeout)
                if scenario.fix_credentials:
                    await _until(lambda: service.halted is not None, timeout)
                    path.write_text(yaml.safe_dump(_service_config(folder, url, scenario, password="right")))
                    service.reload()
                if scenario.expect_delivery:
                    await _until(lambda: len(set(_numbers(_texts(store)))) + _quarantined(service) >= count, timeout)
                    await _until(lambda: service.spool is not None and service.spool.records == 0, timeout)
                else:
                    await _until(lambda: service.halted is not None, timeout)
                    await _until(lambda: service.spool is not None and service.spool.records >= count, timeout)
                refused = 1 if service.halted and "thumbprint" in service.halted else 0
        finally:
            if proxy is not None:
                await proxy.close()
        stats = emulator.emulator.stats
        injected = stats["faults"] + stats["status_413"] + stats["status_401"] + refused
        injected += proxy.resets if proxy is not None else 0
        injected += stats["requests"] if settings.latency_ms else 0
        delivered = Counter(_numbers(_texts(store)))
    with Spool(folder / "spool.db", fmt="xml") as spool:
        kept = set(_numbers([data.decode() for _, data in spool.read_after(0, 10 * count)]))
        quarantined = set(_numbers([q.data.decode() for q in spool.quarantined(limit=10 * count)]))
    return Result(
        scenario.name,
        count,
        len(set(delivered) & set(range(count))),
        sum(n - 1 for n in delivered.values() if n > 1),
        len(quarantined - set(delivered)),
        len(kept - set(delivered) - quarantined),
        time.monotonic() - started,
        injected,
    )


def _texts(store: Any) -> list[str]:
    return [str(record) for _, record in store.records()]


def _quarantined(service: Service) -> int:
    return service.spool.quarantine_count if service.spool is not None else 0


def table(results: list[Result]) -> str:
    head = "| fault | struck | sent | delivered | duplicated | quarantined | kept in spool | lost | seconds |"
    rows = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        rows.append(
            f"| {r.name} | {r.injected:,} | {r.sent:,} | {r.delivered:,} | {r.duplicated:,} | {r.quarantined:,} "
            f"| {r.kept:,} | {r.lost:,} | {r.seconds:.0f} |"
        )
    return "\n".join(rows)


async def run_matrix(
    folder: Path, *, outage: float, count: int, seconds: float, timeout: float, latency_ms: float = 2000
) -> list[Result]:
    results = []
    for i, scenario in enumerate(scenarios(outage, latency_ms)):
        result = await run_scenario(scenario, folder / f"s{i}", count, seconds, timeout)
        print(f"  {result.name}: struck {result.injected} times, sent {result.sent}, delivered {result.delivered}, "
              f"duplicated {result.duplicated}, quarantined {result.quarantined}, kept {result.kept}, "
              f"lost {result.lost}", flush=True)  # fmt: skip
        results.append(result)
    return results


def host_table() -> int:
    """Run tests/e2e/test_host_faults.py and print its figures as a table; its exit code."""
    import json
    import os
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="nwsyslog-host-faults-") as tmp:
        target = Path(tmp) / "figures.jsonl"
        code = subprocess.call(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/e2e/test_host_faults.py"],
            env={**os.environ, "NWSYSLOG_FIGURES": str(target)},
            cwd=Path(__file__).resolve().parents[2],
        )
        rows = [json.loads(line) for line in target.read_text().splitlines()] if target.exists() else []
    print()
    print("| host fault | sent | accepted | delivered | duplicated | lost, reported | lost |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['fault']} | {r['sent']:,} | {r['accepted']:,} | {r['delivered']:,} | {r['duplicated']:,} | "
              f"{r['reported_lost']:,} | {r['lost']:,} |")  # fmt: skip
    return code


def main() -> None:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="the CI durations (3 s outage, 600 records)")
    parser.add_argument(
        "--host", action="store_true", help="the host's faults instead (tests/e2e/test_host_faults.py, with figures)"
    )
    args = parser.parse_args()
    if args.host:
        raise SystemExit(host_table())
    outage, count, seconds = (3.0, 600, 2.0) if args.short else (60.0, 5000, 70.0)
    with tempfile.TemporaryDirectory(prefix="nwsyslog-faults-") as tmp:

        async def go() -> list[Result]:
            return await run_matrix(Path(tmp), outage=outage, count=count, seconds=seconds, timeout=outage + 120)

        results = run(go())
    print()
    print(table(results))
    if any(r.lost for r in results):
        raise SystemExit("records were lost")


if __name__ == "__main__":
    main()
