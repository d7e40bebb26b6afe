"""Senders the accept list refuses, and TCP connections, as a listener counts and logs them (real
loopback sockets; the many senders of the flood tests are 127.0.0.0/8 addresses, all loopback on
Linux)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from collections.abc import Callable

import pytest

from ingestor.loop import run
from ingestor.sources import OTHER, REFUSED_LOG_LINES, REFUSED_MAX, AcceptList, TcpSource, UdpSource
from tests.ingestor.test_sources import Collector, send_udp

ACCEPT = AcceptList(["10.0.0.0/8", "192.168.0.0/16"])


def lines(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "nwsyslog.sources" and text in r.getMessage()]


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_a_refused_sender_is_logged_once_counted_and_listed_per_listener(caplog: pytest.LogCaptureFixture) -> None:
    """UDP and TCP listeners with an accept list: datagrams and connections from 127.0.0.1 are
    refused, one line per listener names the sender and the list, and each listener's table has
    the address with its count and when it was seen."""

    async def go() -> tuple[UdpSource, TcpSource]:
        got = Collector()
        async with (
            UdpSource("127.0.0.1", 0, got, accept=ACCEPT) as udp,
            TcpSource("127.0.0.1", 0, got, accept=ACCEPT) as tcp,
        ):
            await send_udp(udp.port, [b"<13>refused %d" % i for i in range(7)])
            for _ in range(3):
                reader, writer = await asyncio.open_connection("127.0.0.1", tcp.port)
                writer.write(b"<13>refused\n")
                assert await asyncio.wait_for(reader.read(), 3) == b""  # closed at once
                writer.close()
                await writer.wait_closed()
            await until(lambda: udp.stats.denied == 7 and tcp.stats.denied == 3)
        assert got.items == []
        return udp, tcp

    before = time.time()
    with caplog.at_level(logging.WARNING, logger="nwsyslog.sources"):
        udp, tcp = run(go())
    assert (udp.stats.messages, tcp.stats.messages, tcp.stats.connections) == (0, 0, 0)
    for source, count in ((udp, 7), (tcp, 3)):
        [(address, seen)] = source.stats.refused.items()
        assert address == "127.0.0.1" and seen.count == count
        assert before <= seen.first_seen <= seen.last_seen <= time.time()
    assert lines(caplog, "refused") == [
        f"refused udp://127.0.0.1:{udp.port} traffic from 127.0.0.1: not in the accept list (accept: 10.0.0.0/8, "
        "192.168.0.0/16); further messages from it are counted, not logged",
        f"refused tcp://127.0.0.1:{tcp.port} traffic from 127.0.0.1: not in the accept list (accept: 10.0.0.0/8, "
        "192.168.0.0/16); further connections from it are counted, not logged",
    ]


def test_a_flood_of_refused_addresses_logs_a_few_lines_and_keeps_a_bounded_table(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """1,005 addresses, two datagrams each: REFUSED_LOG_LINES of them are logged one by one, one
    line says the table is full, and one (at close, the window not over yet) counts the rest; the
    table keeps REFUSED_MAX addresses and counts the others together."""
    senders = REFUSED_MAX + 5

    async def go() -> UdpSource:
        async with UdpSource("127.0.0.1", 0, Collector(), accept=ACCEPT) as udp:
            for i in range(senders):
                address = socket.inet_ntoa(struct.pack("!I", 0x7F000000 + 2 + i))  # 127.0.0.2, ...
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                    sender.bind((address, 0))
                    sender.sendto(b"<13>one", ("127.0.0.1", udp.port))
                    sender.sendto(b"<13>two", ("127.0.0.1", udp.port))
                if i % 10 == 9:  # (paced: a burst beyond the socket's buffer is the kernel's to drop)
                    await asyncio.sleep(0.001)
            await until(lambda: udp.stats.denied == 2 * senders)
        return udp

    with caplog.at_level(logging.WARNING, logger="nwsyslog.sources"):
        udp = run(go())
    table = udp.stats.refused
    assert len(table) == REFUSED_MAX + 1 and table[OTHER].count == 10
    assert sum(seen.count for seen in table.values()) == 2 * senders
    assert table["127.0.0.2"].count == 2
    assert len(lines(caplog, "further messages from it are counted")) == REFUSED_LOG_LINES
    assert len(lines(caplog, f"from more than {REFUSED_MAX} addresses")) == 1
    [summary] = lines(caplog, "more new addresses")
    assert f"traffic from {REFUSED_MAX - REFUSED_LOG_LINES} more new addresses" in summary
    assert f"{REFUSED_MAX} refused addresses so far" in summary
    assert len(caplog.records) == REFUSED_LOG_LINES + 2


def test_tcp_connections_are_counted_by_how_they_end() -> None:
    """Accepted: every admitted connection; error: a reset, or a frame cut short; idle_timeout:
    closed for silence. A clean close is neither, nor one the listener closes as it stops."""

    async def go() -> TcpSource:
        got = Collector()
        async with TcpSource("127.0.0.1", 0, got, idle_timeout=0.3) as tcp:
            _, writer = await asyncio.open_connection("127.0.0.1", tcp.port)
            writer.write(b"<13>clean\n")
            writer.close()
            await writer.wait_closed()
            await got.wait_for(1)

            _, writer = await asyncio.open_connection("127.0.0.1", tcp.port)
            writer.write(b"30 <13>cut short")  # octet counting, 16 of 30 bytes
            writer.close()
            await writer.wait_closed()
            await until(lambda: tcp.stats.malformed == 1)

            sock = socket.create_connection(("127.0.0.1", tcp.port))
            sock.sendall(b"<13>then a reset\n")
            await got.wait_for(2)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # RST

            reader, writer = await asyncio.open_connection("127.0.0.1", tcp.port)
            assert await asyncio.wait_for(reader.read(), 3) == b""  # closed by the listener
            writer.close()
            await writer.wait_closed()
            await until(lambda: not tcp.connections)

            _, open_writer = await asyncio.open_connection("127.0.0.1", tcp.port)
            open_writer.write(b"<13>still open at the stop\n")
            await got.wait_for(3)
        # (the listener closed: it aborted the open connection)
        open_writer.close()
        with contextlib.suppress(ConnectionError):
            await open_writer.wait_closed()
        return tcp

    stats = run(go()).stats
    assert (stats.connections, stats.connection_errors, stats.idle_closed) == (5, 2, 1)


def test_the_connections_metric_has_each_outcome_per_listener() -> None:
    from ingestor.metrics import Metrics, Readings
    from ingestor.pipeline import PipelineStats

    async def go() -> bytes:
        async with TcpSource("127.0.0.1", 0, Collector(), accept=AcceptList(["127.0.0.0/8"])) as tcp:
            _, writer = await asyncio.open_connection("127.0.0.1", tcp.port)
            writer.write(b"<13>x\n")
            await until(lambda: tcp.stats.messages == 1)
            writer.close()
            await writer.wait_closed()
            await until(lambda: not tcp.connections)
            metrics = Metrics(
                Readings(
                    sources=lambda: [("tcp", f"127.0.0.1:{tcp.port}", tcp.stats)],
                    pipeline=PipelineStats,
                    spool=lambda: (0, 0, 0, 0, 0),
                    delivery=lambda: None,
                    udp_drops=list,
                )
            )
            return metrics.text().replace(str(tcp.port).encode(), b"PORT")

    text = run(go()).decode()
    assert 'nwsyslog_tcp_connections_total{listener="tcp://127.0.0.1:PORT",outcome="accepted"} 1.0' in text
    assert 'nwsyslog_tcp_connections_total{listener="tcp://127.0.0.1:PORT",outcome="error"} 0.0' in text
    assert 'nwsyslog_tcp_connections_total{listener="tcp://127.0.0.1:PORT",outcome="idle_timeout"} 0.0' in text
    assert 'nwsyslog_accept_list_dropped_total{listener="tcp://127.0.0.1:PORT"} 0.0' in text
