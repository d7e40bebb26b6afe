"""Hostile traffic against a running service (real sockets, the emulator as the server).

Whatever arrives, the service stays up, keeps memory bounded, delivers the good records that
come with the bad, and counts every message it could not use in its metrics.
"""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx

from ingestor.emulator import EmulatorServer, EmulatorSettings
from ingestor.emulator.process import EmulatorProcess
from ingestor.loop import run
from ingestor.service import Service
from ingestor.sources import udp_drops
from tests.ingestor.test_service import SUDO, config, listener, running, tcp_port, until
from tests.ingestor.test_sources import send_udp


async def metrics(service: Service) -> dict[str, float]:
    """The service's /metrics as {'name{labels}': value} (labels kept as written)."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{service.metrics_port}/metrics")).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def metric(values: dict[str, float], name: str, **labels: str) -> float:
    """Sum of `name` over the series whose labels include `labels`."""
    total = 0.0
    for key, value in values.items():
        base, _, rest = key.partition("{")
        if base == name and all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += value
    return total


def hostile_config(tmp: Path, url: str, **extra: Any) -> Any:
    return config(
        tmp,
        url,
        listeners=[
            {"url": "udp://127.0.0.1:0", "receive_buffer": 4 * 1024 * 1024},
            {"url": "tcp://127.0.0.1:0", "max_message": 65536, "idle_timeout": 1.0},
        ],
        **extra,
    )


def running_service(tmp: Path, url: str, **extra: Any) -> AbstractAsyncContextManager[Service]:
    """A service on loopback UDP and TCP (1 s TCP idle timeout) writing to `url`."""
    return running(hostile_config(tmp, url, **extra))


def test_malformed_datagrams_are_counted_and_the_good_records_among_them_arrive(tmp_path: Path) -> None:
    """Empty datagrams, the largest UDP datagram, NUL bytes, invalid UTF-8 and XML-illegal
    characters: none stops the service; every matched line becomes a record the server's schema
    accepts (the emulator validates every body), with what XML cannot carry replaced."""
    good = [SUDO % i for i in range(20)]
    nasty = [
        b"<86>Mar  4 10:00:01 app01 sudo:    mallory : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/echo \x00nul",
        b"<86>Mar  4 10:00:01 app01 sudo:    mallory : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/\xff\xfe\xc3(",
        b"<86>Mar  4 10:00:01 app01 sudo:    mallory : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/\x01\x1b[31m\x7f",
        b"<86>Mar  4 10:00:01 app01 sudo:    mallory : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=</What><Who>x</Who>",
    ]
    garbage = [b"\x00" * 100, b"\xff" * 300, b"<999>nonsense", b"<13>" + b"A" * (65507 - 4), b"\x00<13>\r\n"]

    async def scenario() -> None:
        with EmulatorServer.running(EmulatorSettings()) as emulator:
            async with running(hostile_config(tmp_path, emulator.base_url)) as service:
                port = listener(service, "udp").port
                await send_udp(port, [b""] * 30 + garbage + nasty + good)
                want = len(good) + len(nasty)
                await until(lambda: emulator.emulator.store.total == want)
                values = await metrics(service)
                label = f"udp://127.0.0.1:{port}"
                assert metric(values, "nwsyslog_framing_errors_total", listener=label, kind="empty") == 30
                assert metric(values, "nwsyslog_received_total", listener=label) == len(garbage + nasty + good)
                assert metric(values, "nwsyslog_records_total") == want
                assert emulator.emulator.stats.get("rejected_requests", 0) == 0
                records = [r for _, r in emulator.emulator.store.records()]
                injected = [r for r in records if "</What>" in r["What"] or "</What>" in str(r.get("DetailList"))]
                assert injected, "markup arrives as text"
                assert all(r["Who"] in ("alice", "mallory") for r in records), "no record gained a second Who"

    run(scenario())


def test_ten_thousand_source_addresses_are_all_heard_and_caches_stay_bounded(tmp_path: Path) -> None:
    """Every 127.x.y.z is a loopback address on Linux: 10,000 devices, one message each."""
    sources = [f"127.{1 + i // 250 // 250}.{i // 250 % 250}.{1 + i % 250}" for i in range(10_000)]

    async def scenario() -> None:
        with EmulatorServer.running(EmulatorSettings()) as emulator:
            async with running(hostile_config(tmp_path, emulator.base_url)) as service:
                port = listener(service, "udp").port
                for i, source in enumerate(sources):
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                        sender.bind((source, 0))
                        sender.sendto(SUDO % i, ("127.0.0.1", port))
                    if i % 200 == 199:
                        await asyncio.sleep(0.005)
                await until(lambda: emulator.emulator.store.total == 10_000, timeout=60)
                workstations = {r.get("Workstation") for _, r in emulator.emulator.store.records()}
                assert workstations == set(sources), "each record names its own device"
                assert service.pipeline is not None
                assert service.pipeline._settings.cache_info().currsize <= 65536

    run(scenario())


def test_tcp_connections_that_never_finish_a_frame_are_closed_and_oversize_frames_cut(tmp_path: Path) -> None:
    async def scenario() -> None:
        with EmulatorServer.running(EmulatorSettings()) as emulator:
            async with running(hostile_config(tmp_path, emulator.base_url)) as service:
                port = tcp_port(service)
                # 200 connections that send half a frame and then nothing.
                stalled = []
                for _ in range(200):
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.write(b"<86>Mar  4 10:00:01 app01 sudo: half a fra")
                    stalled.append((reader, writer))
                # One oversize frame (1 MiB, 16 times max_message) then a good one, on one connection.
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"<13>" + b"B" * (1 << 20) + b"\n" + SUDO % 1 + b"\n")
                await writer.drain()
                await until(lambda: emulator.emulator.store.total == 1)
                tcp = listener(service, "tcp")
                await until(lambda: tcp.stats.idle_closed >= 200, timeout=20)
                for reader, stalled_writer in stalled:
                    assert await asyncio.wait_for(reader.read(), 5) == b"", "closed by the service"
                    stalled_writer.close()
                values = await metrics(service)
                label = f"tcp://127.0.0.1:{port}"
                assert metric(values, "nwsyslog_framing_errors_total", listener=label, kind="oversize") == 1
                writer.close()
                await writer.wait_closed()
                # Still serving.
                _, fresh = await asyncio.open_connection("127.0.0.1", port)
                fresh.write(SUDO % 2 + b"\n")
                await fresh.drain()
                await until(lambda: emulator.emulator.store.total == 2)
                fresh.close()
                await fresh.wait_closed()

    run(scenario())


FLOOD = textwrap.dedent(
    """
    import socket, sys, time
    port, seconds = int(sys.argv[1]), float(sys.argv[2])
    line = b"<86>Mar  4 10:00:01 app01 sudo:    alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/echo flood"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        for _ in range(200):
            s.sendto(line, ("127.0.0.1", port))
        sent += 200
    print(sent)
    """
)


def test_a_flood_keeps_memory_bounded_and_every_datagram_is_accounted_for(tmp_path: Path) -> None:
    """Two senders flat out (far above what one worker takes in): the service stays up, its
    memory does not grow with the flood, and sent = handled + discarded (counted) + kernel drops.
    The emulator runs in its own process, so this process's memory is the service's."""

    async def scenario() -> None:
        with EmulatorProcess("--validate-every", "50") as emulator:
            async with httpx.AsyncClient() as http:

                async def stored() -> int:
                    return int((await http.get(f"{emulator.url}/_emulator/stats")).json()["stored_records"])

                spool = {"path": str(tmp_path / "spool.db"), "max_in_memory": 2000}
                async with running(hostile_config(tmp_path, emulator.url, spool=spool)) as service:
                    udp = listener(service, "udp")
                    port = udp.port
                    await send_udp(port, [SUDO % i for i in range(200)])  # warm up
                    await until(_equals(stored, 200))
                    rss_before = _rss()
                    floods = [
                        await asyncio.create_subprocess_exec(
                            sys.executable, "-c", FLOOD, str(port), "4", stdout=subprocess.PIPE
                        )
                        for _ in range(2)
                    ]
                    peak = rss_before
                    waiting = asyncio.gather(*(f.communicate() for f in floods))
                    while not waiting.done():
                        peak = max(peak, _rss())
                        await asyncio.sleep(0.1)
                    sent = sum(int(out.decode()) for out, _ in waiting.result())
                    drops = udp_drops(udp.socket) or 0
                    await until(lambda: udp.stats.messages + udp.stats.shed + drops >= 200 + sent, timeout=30)
                    assert udp.stats.messages + udp.stats.shed + drops == 200 + sent
                    assert udp.stats.shed + drops > 0, "the flood was larger than the service"
                    await until(_equals(stored, udp.stats.messages), timeout=60)
                    peak = max(peak, _rss())
                    assert peak - rss_before < 100 * 2**20, f"memory grew {(peak - rss_before) / 2**20:.0f} MiB"
                    values = await metrics(service)
                    label = f"udp://127.0.0.1:{port}"
                    assert metric(values, "nwsyslog_overload_dropped_total", listener=label) == udp.stats.shed
                    assert metric(values, "nwsyslog_udp_kernel_drops_total", listener=label) == drops
                    assert (await http.get(f"http://127.0.0.1:{service.metrics_port}/healthz")).status_code == 200

    run(scenario())


def _equals(read: Callable[[], Awaitable[int]], want: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await read() == want

    return check


def _rss() -> int:
    """This process's resident set (the service runs in-process here), bytes."""
    text = Path("/proc/self/status").read_text()
    m = re.search(r"VmRSS:\s+(\d+) kB", text)
    assert m is not None, "no VmRSS in /proc/self/status"
    return int(m.group(1)) * 1024
