"""Listeners over real loopback sockets: UDP, TCP (octet counting and LF), TLS, accept list."""

import asyncio
import logging
import socket
import ssl

import pytest

from ingestor.emulator.server import self_signed_certificate
from ingestor.errors import StartupError
from ingestor.loop import run
from ingestor.sources import AcceptList, TcpSource, UdpSource, udp_drops


class Collector:
    """A handler that records messages and wakes the test when `n` have arrived."""

    def __init__(self):
        self.items = []
        self.want = None
        self.done = asyncio.Event()

    def __call__(self, raw, peer, received_at):
        self.items.append((raw, peer, received_at))
        if self.want is not None and len(self.items) >= self.want:
            self.done.set()

    async def wait_for(self, n, timeout=5.0):
        self.want = n
        if len(self.items) >= n:
            return
        await asyncio.wait_for(self.done.wait(), timeout)


async def send_udp(port, payloads, host="127.0.0.1", family=socket.AF_INET):
    """Send datagrams in small bursts, yielding between them as a real network would pace them:
    a burst larger than the socket's receive buffer is dropped by the kernel, not by nwsyslog."""
    with socket.socket(family, socket.SOCK_DGRAM) as sender:
        for i, payload in enumerate(payloads):
            sender.sendto(payload, (host, port))
            if i % 50 == 49:
                await asyncio.sleep(0.001)


def test_udp_receives_every_datagram_with_peer_and_time():
    async def go():
        got = Collector()
        async with UdpSource("127.0.0.1", 0, got) as source:
            await send_udp(source.port, [b"<13>message %d" % i for i in range(500)])
            await got.wait_for(500)
        return got.items, source.stats

    items, stats = run(go())
    assert [raw for raw, _, _ in items] == [b"<13>message %d" % i for i in range(500)]
    assert {peer for _, peer, _ in items} == {"127.0.0.1"}
    assert all(t > 1.7e9 for _, _, t in items)
    assert stats.messages == 500


def test_udp_takes_the_largest_datagram_and_counts_empty_ones():
    async def go():
        got = Collector()
        big = b"<13>" + b"x" * (65507 - 4)
        async with UdpSource("127.0.0.1", 0, got) as source:
            await send_udp(source.port, [b"", big])
            await got.wait_for(1)
        return got.items, source.stats, big

    items, stats, big = run(go())
    assert items[0][0] == big
    assert stats.empty == 1


def test_udp_accept_list_drops_and_counts_other_sources():
    async def go():
        got = Collector()
        async with (
            UdpSource("127.0.0.1", 0, got, accept=AcceptList(["10.0.0.0/8"])) as source,
            UdpSource("127.0.0.1", 0, got, accept=AcceptList(["127.0.0.0/8"])) as allowed,
        ):
            await send_udp(source.port, [b"<13>x"] * 20)
            await send_udp(allowed.port, [b"<13>ok"])  # sent after the denied ones
            await got.wait_for(1)
        return got.items, source.stats

    items, stats = run(go())
    assert [raw for raw, _, _ in items] == [b"<13>ok"]
    assert stats.denied == 20 and stats.messages == 0


def test_a_paused_udp_listener_discards_and_counts_and_resumes():
    async def go():
        got = Collector()
        async with UdpSource("127.0.0.1", 0, got) as source:
            await send_udp(source.port, [b"<13>before"])
            await got.wait_for(1)
            source.pause()
            await send_udp(source.port, [b"<13>paused %d" % i for i in range(300)])
            for _ in range(200):
                if source.stats.shed + udp_drops(source.socket) >= 300:
                    break
                await asyncio.sleep(0.01)
            shed, drops = source.stats.shed, udp_drops(source.socket)
            source.resume()
            await send_udp(source.port, [b"<13>after"])
            await got.wait_for(2)
        return got.items, source.stats, shed, drops

    items, stats, shed, drops = run(go())
    assert [raw for raw, _, _ in items] == [b"<13>before", b"<13>after"]
    assert shed > 0 and shed + drops == 300, "every datagram that arrived while paused is counted"
    assert stats.messages == 2


def test_datagrams_read_in_one_round_share_their_receive_time_and_a_pause_sheds_the_rest():
    async def go():
        got = Collector()
        source = UdpSource("127.0.0.1", 0, got)

        def pause_after_ten(raw, peer, received_at):
            got(raw, peer, received_at)
            if len(got.items) == 10:
                source.pause()  # as the service does when its output is full

        source.handler = pause_after_ten
        async with source:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                for i in range(20):  # all queued at the socket before the loop reads any
                    sender.sendto(b"<13>m%d" % i, ("127.0.0.1", source.port))
            await got.wait_for(10)
            for _ in range(100):
                if source.stats.shed >= 10:
                    break
                await asyncio.sleep(0.01)
        return got.items, source.stats

    items, stats = run(go())
    assert [raw for raw, _, _ in items] == [b"<13>m%d" % i for i in range(10)]
    assert len({t for _, _, t in items}) == 1
    assert (stats.messages, stats.shed) == (10, 10)


def test_udp_over_ipv6():
    if not socket.has_ipv6:
        pytest.fail("IPv6 is required on the test machine")

    async def go():
        got = Collector()
        async with UdpSource("::1", 0, got) as source:
            await send_udp(source.port, [b"<13>v6"], host="::1", family=socket.AF_INET6)
            await got.wait_for(1)
        return got.items

    assert run(go())[0][:2] == (b"<13>v6", "::1")


def test_udp_receive_buffer_is_set_and_a_kernel_cap_is_reported(caplog):
    async def go():
        with caplog.at_level(logging.WARNING, logger="nwsyslog.sources"):
            async with UdpSource("127.0.0.1", 0, Collector(), receive_buffer=1 << 30) as source:
                return udp_drops(source.socket)

    drops = run(go())
    assert "capped SO_RCVBUF" in caplog.text and "rmem_max" in caplog.text
    assert drops == 0


def test_binding_a_taken_port_is_a_startup_error():
    async def go():
        async with UdpSource("127.0.0.1", 0, Collector()) as first:
            with pytest.raises(StartupError, match=r"cannot listen on udp://127\.0\.0\.1"):
                await UdpSource("127.0.0.1", first.port, Collector()).start()

    run(go())


def test_accept_list_semantics():
    acl = AcceptList(["192.0.2.0/24", "2001:db8::/32"])
    assert acl.allows("192.0.2.7") and acl.allows("2001:db8::1") and acl.allows("::ffff:192.0.2.9")
    assert not acl.allows("198.51.100.1") and not acl.allows("not-an-ip")
    assert AcceptList().allows("198.51.100.1")


async def tcp_send(port, chunks, *, ssl_ctx=None):
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ssl_ctx)
    for chunk in chunks:
        writer.write(chunk)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


@pytest.mark.parametrize("framing", ["octet", "lf"])
def test_tcp_both_framings_split_across_writes(framing):
    messages = [b"<13>one", b"<13>two words", b"<13>" + b"3" * 5000]
    if framing == "octet":
        stream = b"".join(b"%d %s" % (len(m), m) for m in messages)
    else:
        stream = b"".join(m + b"\n" for m in messages)
    chunks = [stream[i : i + 7] for i in range(0, len(stream), 7)]

    async def go():
        got = Collector()
        async with TcpSource("127.0.0.1", 0, got) as source:
            await tcp_send(source.port, chunks)
            await got.wait_for(3)
        return got.items, source.stats

    items, stats = run(go())
    assert [raw for raw, _, _ in items] == messages
    assert stats.connections == 1 and stats.messages == 3


def test_tcp_unterminated_last_line_arrives_at_close():
    async def go():
        got = Collector()
        async with TcpSource("127.0.0.1", 0, got) as source:
            await tcp_send(source.port, [b"<13>a\n<13>b"])
            await got.wait_for(2)
        return [raw for raw, _, _ in got.items]

    assert run(go()) == [b"<13>a", b"<13>b"]


def test_tcp_oversize_frames_are_cut_and_counted():
    async def go():
        got = Collector()
        async with TcpSource("127.0.0.1", 0, got, max_message=100) as source:
            await tcp_send(source.port, [b"<13>" + b"y" * 1000 + b"\n<13>next\n"])
            await got.wait_for(2)
        return got.items, source.stats

    items, stats = run(go())
    assert [raw for raw, _, _ in items] == [b"<13>" + b"y" * 96, b"<13>next"]
    assert stats.oversize == 1


def test_tcp_idle_connections_are_closed_and_counted():
    async def go():
        got = Collector()
        async with TcpSource("127.0.0.1", 0, got, idle_timeout=0.2) as source:
            reader, writer = await asyncio.open_connection("127.0.0.1", source.port)
            writer.write(b"<13>partial frame without end")
            await writer.drain()
            closed = await asyncio.wait_for(reader.read(), 3)  # the server closes: EOF
            writer.close()
        return closed, got.items, source.stats

    closed, items, stats = run(go())
    assert closed == b""
    assert stats.idle_closed == 1
    assert [raw for raw, _, _ in items] == [b"<13>partial frame without end"]


def test_tcp_accept_list_refuses_connections():
    async def go():
        async with TcpSource("127.0.0.1", 0, Collector(), accept=AcceptList(["10.0.0.0/8"])) as source:
            reader, writer = await asyncio.open_connection("127.0.0.1", source.port)
            writer.write(b"<13>x\n")
            data = await asyncio.wait_for(reader.read(), 3)
            writer.close()
        return data, source.stats

    data, stats = run(go())
    assert data == b"" and stats.denied == 1 and stats.messages == 0


def test_tls_listener(tmp_path):
    cert = self_signed_certificate(tmp_path, ["127.0.0.1"])
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert.cert_file, cert.key_file)
    client_ctx = ssl.create_default_context(cafile=str(cert.cert_file))

    async def go():
        got = Collector()
        async with TcpSource("127.0.0.1", 0, got, ssl_context=server_ctx) as source:
            await tcp_send(source.port, [b"9 <13>hello"], ssl_ctx=client_ctx)
            await got.wait_for(1)
        return got.items

    assert run(go())[0][0] == b"<13>hello"
