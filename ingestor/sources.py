"""Syslog listeners: UDP (a datagram protocol on uvloop) and TCP/TLS (RFC 6587 framing).

A source knows nothing of Netwrix or of parsing: it receives bytes, applies the accept list and
framing, and hands each raw message to `handler(raw, peer_ip, received_at)` synchronously.
Nothing raises out of a source for bad input; every drop is counted in `SourceStats`. A TLS
listener does each handshake itself and checks the client's certificate (`tls_server`) before
the connection may send; a failed handshake or a refused client is closed, counted and logged
(at most once a minute per address).

A sender outside the accept list is refused and counted per listener in `SourceStats.refused`
(address -> count, first and last seen; at most `REFUSED_MAX` addresses, the rest together under
`OTHER`). Each new refused address is logged once, at most `REFUSED_LOG_LINES` of them per
`REFUSED_LOG_EVERY` seconds, then one line counting the rest: a flood of spoofed addresses is
counted, not written out. TCP and TLS connections are counted as accepted, closed with an error
(a reset, a malformed frame) and closed after `idle_timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
import ssl
import time
from asyncio.trsock import TransportSocket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Self, cast

from parsers.framing import Framer

from .errors import StartupError
from .rate_limit import LogBudget, LogThrottle
from .tls_server import PermittedPeers, check_peer, handshake_failure

log = logging.getLogger("nwsyslog.sources")

Handler = Callable[[bytes, str, float], None]
"""Receives one raw message, the sender's IP address and the receive time (time.time())."""

MAX_DATAGRAM = 65535
HANDSHAKE_TIMEOUT = 60.0  # seconds a TLS client has to complete its handshake (asyncio's default)
REFUSAL_LOG_EVERY = 60.0  # seconds between log lines about refused TLS clients of one address
REFUSED_MAX = 1000  # refused sender addresses remembered per listener; the rest count under OTHER
OTHER = "other"  # the key of SourceStats.refused for the addresses beyond REFUSED_MAX
REFUSED_LOG_LINES, REFUSED_LOG_EVERY = 10, 60.0  # new refused senders logged per window, per listener


@dataclass(slots=True)
class RefusedSender:
    """What one listener refused from one address (not in the accept list)."""

    count: int  # datagrams (UDP) or connections (TCP, TLS) refused
    first_seen: float  # epoch seconds
    last_seen: float  # epoch seconds


@dataclass
class SourceStats:
    """Counters of one listener (monotonic), and the table of refused senders."""

    messages: int = 0
    bytes: int = 0
    denied: int = 0  # from a source outside the accept list (datagrams, or TCP/TLS connections)
    empty: int = 0  # empty datagrams
    oversize: int = 0  # TCP frames cut at max_message
    malformed: int = 0  # TCP frames with a bad length header or cut short
    connections: int = 0  # TCP/TLS connections accepted (past the accept list and the TLS checks)
    connection_errors: int = 0  # of those, ended by a reset or a transport error, or with a malformed frame
    idle_closed: int = 0  # of those, closed after idle_timeout seconds without data
    shed: int = 0  # datagrams read and discarded while the service was paused (overload)
    # TLS clients refused for their certificate: none where one is required, not signed by the
    # CA (both in the handshake), or not in permitted_peers (after it).
    tls_refused: int = 0
    tls_handshake_failures: int = 0  # other failed TLS handshakes: no TLS spoken, protocol errors, timeouts
    # Senders refused by the accept list: address (as the socket gives it) -> what was refused;
    # at most REFUSED_MAX addresses, the ones after them together under OTHER.
    refused: dict[str, RefusedSender] = field(default_factory=dict)


class AcceptList:
    """Source addresses allowed to send, as CIDRs (like the Accept List of Netwrix's add-ons).

    An empty list allows everyone. Decisions are cached per address.
    """

    def __init__(self, cidrs: Iterable[str] = ()) -> None:
        self.networks = tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)
        self.allows = lru_cache(maxsize=65536)(self._allows)

    def _allows(self, address: str) -> bool:
        if not self.networks:
            return True
        ip = peer_ip(address)
        return ip is not None and any(ip in net for net in self.networks)


def _networks(accept: AcceptList, shown: int = 5) -> str:
    """The accept list for a log line: its first `shown` networks, and how many more."""
    names = [str(n) for n in accept.networks[:shown]]
    more = len(accept.networks) - shown
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")


def peer_ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """A sender's address as an IP to compare with CIDRs: the zone id dropped (`fe80::1%eth0`),
    IPv4-mapped IPv6 (`::ffff:10.0.0.1`, from a dual-stack socket) seen as IPv4; None if invalid."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def set_receive_buffer(sock: socket.socket | TransportSocket, wanted: int) -> int:
    """Ask for a `wanted`-byte SO_RCVBUF; return what the kernel granted, warning when capped."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, wanted)
    granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    # Linux reports twice the usable size it reserved; compare like with like.
    usable = granted // 2 if os.uname().sysname == "Linux" else granted
    if usable < wanted:
        log.warning(
            "the kernel capped SO_RCVBUF at %d bytes (asked for %d); bursts may be dropped: raise "
            "net.core.rmem_max (sysctl -w net.core.rmem_max=%d)",
            usable,
            wanted,
            wanted,
        )
    return usable


def udp_drops(sock: socket.socket | TransportSocket) -> int | None:
    """The kernel's count of datagrams dropped on this socket (Linux /proc/net/udp), or None."""
    try:
        inode = str(os.fstat(sock.fileno()).st_ino)
    except OSError:
        return None
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if len(cols) > 12 and cols[9] == inode:
                        return int(cols[-1])
        except OSError:
            continue
    return None


class Source:
    """What every listener shares: its handler, its counters, the hand-over step, and use as
    `async with source:` (start on entry, close on exit)."""

    kind = "source"

    def __init__(self, host: str, port: int, handler: Handler, accept: AcceptList | None) -> None:
        self.host, self.port = host, port
        self.handler = handler
        self.accept = accept or AcceptList()
        self.stats = SourceStats()
        self.paused = False
        self._refusals = LogBudget(REFUSED_LOG_LINES, REFUSED_LOG_EVERY)
        self._refusal_summary: asyncio.TimerHandle | None = None

    @property
    def name(self) -> str:
        """The listener as configured: `udp://0.0.0.0:514`."""
        return f"{self.kind}://{self.host}:{self.port}"

    async def start(self) -> None:
        """Bind and start receiving; raises StartupError if the address cannot be bound."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop receiving; idempotent."""
        raise NotImplementedError

    def stop_accepting(self) -> None:
        """Take no new connections (what is connected is still read, until `close`)."""

    def pause(self) -> None:
        """Stop taking messages in until `resume()` (back-pressure: the spool is full, or the
        records waiting for it reached their bound). UDP datagrams are then read and discarded,
        each counted in `stats.shed` (a UDP socket cannot be paused without its queue growing
        in memory); TCP senders are held back by the TCP window and lose nothing."""
        self.paused = True

    def resume(self) -> None:
        """Take messages in again."""
        self.paused = False

    def _hand_over(self, raw: bytes, peer: str, received_at: float) -> None:
        """Count one message and give it to the handler; a failing handler is logged, and the
        listener keeps receiving (this is the one boundary where input errors stop)."""
        stats = self.stats
        stats.messages += 1
        stats.bytes += len(raw)
        try:
            self.handler(raw, peer, received_at)
        except Exception:
            log.exception("handler failed on a %s message from %s", self.kind, peer)

    def _refuse_sender(self, ip: str, now: float) -> None:
        """Count a datagram or connection from `ip`, which the accept list refused (`now`:
        time.time()); the first from an address is logged, within the log budget."""
        stats = self.stats
        stats.denied += 1
        table = stats.refused
        seen = table.get(ip)
        if seen is None and len(table) >= REFUSED_MAX + (OTHER in table):
            ip, seen = OTHER, table.get(OTHER)
        if seen is not None:
            seen.count += 1
            seen.last_seen = now
            return
        table[ip] = RefusedSender(1, now, now)
        if ip == OTHER:
            log.warning(
                "refused %s traffic from more than %d addresses not in the accept list: the ones after them are "
                "counted together as %r, not logged",
                self.name,
                REFUSED_MAX,
                OTHER,
            )
        elif self._refusals.allow(now):
            log.warning(
                "refused %s traffic from %s: not in the accept list (accept: %s); further %s from it are counted, "
                "not logged",
                self.name,
                ip,
                _networks(self.accept),
                "messages" if self.kind == "udp" else "connections",
            )
        elif self._refusal_summary is None:
            delay = max(0.0, self._refusals.window_end - now)
            self._refusal_summary = asyncio.get_running_loop().call_later(delay, self._log_refusal_summary)

    def _log_refusal_summary(self) -> None:
        """The line for the new refused senders the log budget did not let through one by one."""
        self._refusal_summary = None
        more = self._refusals.take_suppressed()
        if more:
            log.warning(
                "refused %s traffic from %d more new addresses not in the accept list within %.0f s (counted, not "
                "logged one by one; %d refused addresses so far)",
                self.name,
                more,
                REFUSED_LOG_EVERY,
                len(self.stats.refused) - (OTHER in self.stats.refused),
            )

    def _flush_refusals(self) -> None:
        """At close: the summary line that was still to come, now."""
        if self._refusal_summary is not None:
            self._refusal_summary.cancel()
            self._log_refusal_summary()

    def _bind_error(self, exc: OSError) -> StartupError:
        return StartupError(f"cannot listen on {self.kind}://{self.host}:{self.port}: {exc.strerror}")

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()


class _UdpProtocol(asyncio.DatagramProtocol):
    """Collects the datagrams the loop reads in one round and hands them over in one callback.

    `datagram_received` only appends (the loop calls it per datagram, between its reads, taking
    the GIL each time); the first datagram of a round schedules `_hand_over_round` with
    `call_soon`, which runs once the loop's reads are done: one receive time and one tight loop
    for them all.
    """

    def __init__(self, source: UdpSource) -> None:
        self._source = source
        self._stats = source.stats
        self._allows = source.accept.allows if source.accept.networks else None  # no list: no check
        self._round: list[tuple[bytes, str]] = []
        self._loop = asyncio.get_running_loop()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self._source.paused:
            # A UDP socket cannot be paused without its queue growing: read and discard, counted.
            self._stats.shed += 1
            return
        peer: str = addr[0]
        if self._allows is not None and not self._allows(peer):
            self._source._refuse_sender(peer, time.time())
        elif not data:
            self._stats.empty += 1
        else:
            if not self._round:
                self._loop.call_soon(self._hand_over_round)
            self._round.append((data, peer))

    def _hand_over_round(self) -> None:
        received, self._round = self._round, []
        source, now = self._source, time.time()
        hand_over = source._hand_over
        for data, peer in received:
            if source.paused:  # the handler paused the source (its output is full): the rest waits no more
                self._stats.shed += 1
                continue
            hand_over(data, peer, now)

    def error_received(self, exc: Exception) -> None:
        # An ICMP error for an earlier send; this socket never sends, and nothing was lost here.
        log.debug("udp socket error: %s", exc)


class UdpSource(Source):
    """Receives syslog datagrams on HOST:PORT (IPv4 or IPv6).

    A plain `asyncio.DatagramProtocol` on uvloop, without asyncio-dgram's queue and awaited
    `recv()` on top: measured on the 2-core benchmark machine, a listener with a do-nothing
    handler spent 4.3-4.6 us of CPU per datagram at 50,000 datagrams/s against 6.0-6.5 us
    through asyncio-dgram, and the service's listener thread 33.5 us per message at 25,000/s
    against 35.4-36.5 us.
    """

    kind = "udp"

    def __init__(
        self,
        host: str,
        port: int,
        handler: Handler,
        *,
        accept: AcceptList | None = None,
        receive_buffer: int | None = None,
        reuse_port: bool = False,
    ) -> None:
        super().__init__(host, port, handler, accept)
        self._receive_buffer = receive_buffer
        self._reuse_port = reuse_port
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self) -> None:
        """Bind and start receiving; raises StartupError if the address cannot be bound."""
        # The socket is made here rather than by the loop: uvloop sets SO_REUSEADDR on UDP, with
        # which a second listener on the same port binds silently and steals part of the traffic.
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if self._reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if self._receive_buffer:
                set_receive_buffer(sock, self._receive_buffer)
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise self._bind_error(exc) from None
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _UdpProtocol(self), sock=sock)
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]

    @property
    def socket(self) -> socket.socket | TransportSocket | None:
        """The bound socket (for metrics such as `udp_drops`)."""
        return self._transport.get_extra_info("socket") if self._transport is not None else None

    def close(self) -> None:
        """Stop receiving; idempotent."""
        if self._transport is not None:
            self._transport.close()
        self._flush_refusals()


class _TcpConnection(asyncio.Protocol):
    def __init__(self, source: TcpSource) -> None:
        self._source = source
        self._framer = Framer(source.max_message)
        self._transport: asyncio.Transport | None = None
        self._peer = ""
        self._last = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None
        self._counted = (0, 0)  # framer counters already added to the source's stats
        self._idle = False  # closed for its idle timeout

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport implements asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self._peer = peer[0] if peer else ""
        stats = self._source.stats
        if not self._source.accept.allows(self._peer):
            self._source._refuse_sender(self._peer, time.time())
            transport.abort()
            return
        stats.connections += 1
        self._transport = transport
        self._source.connections.add(self)
        if self._source.paused:
            transport.pause_reading()
        self._schedule(self._source.idle_timeout)

    def _schedule(self, delay: float) -> None:
        self._timer = asyncio.get_running_loop().call_later(delay, self._check_idle)

    def _check_idle(self) -> None:
        left = self._last + self._source.idle_timeout - time.monotonic()
        if left > 0:
            self._schedule(left)
            return
        self._source.stats.idle_closed += 1
        self._idle = True
        self._deliver(self._framer.close())
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        self._last = time.monotonic()
        self._deliver(self._framer.feed(data))

    def eof_received(self) -> bool | None:
        self._deliver(self._framer.close())
        return None

    def _deliver(self, messages: list[bytes]) -> None:
        self._sync_counts()
        now = time.time()
        for raw in messages:
            self._source._hand_over(raw, self._peer, now)

    def _sync_counts(self) -> None:
        framer, stats = self._framer, self._source.stats
        oversize, malformed = self._counted
        if (framer.oversize, framer.malformed) != self._counted:
            stats.oversize += framer.oversize - oversize
            stats.malformed += framer.malformed - malformed
            self._counted = (framer.oversize, framer.malformed)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._sync_counts()
        if self._transport is not None and not self._idle and (exc is not None or self._framer.malformed):
            self._source.stats.connection_errors += 1
            why = exc if exc is not None else "a malformed frame"
            log.debug("%s connection from %s ended with an error: %s", self._source.name, self._peer, why)
        self._source.connections.discard(self)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def unread_bytes(self) -> int:
        """Bytes the sender sent that wait unread in the kernel's receive buffer."""
        if self._transport is None:
            return 0
        sock = self._transport.get_extra_info("socket")
        if sock is None:
            return 0
        try:
            import fcntl
            import struct
            import termios

            return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0])
        except (OSError, ValueError):
            return 0

    def pause_reading(self, paused: bool) -> None:
        if self._transport is not None and not self._transport.is_closing():
            if paused:
                self._transport.pause_reading()
            else:
                self._transport.resume_reading()


def _closer(sock: socket.socket) -> Callable[[asyncio.Task[None]], None]:
    """A done callback closing `sock` (a listening socket, once its accept loop ended)."""

    def close(_: asyncio.Task[None]) -> None:
        sock.close()

    return close


class _Held(asyncio.Protocol):
    """The application protocol of a TLS connection until its client is admitted.

    It holds the accepted socket (closed here if the handshake never started), and what the
    connection receives between the handshake and the peer check (asyncio's TLS protocol reads
    the first data before the awaiting task resumes), for the `_TcpConnection` it is then handed
    to, or to be discarded with a refused client."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.started = False
        self.data: list[bytes] = []
        self.eof = False
        self.lost: tuple[Exception | None] | None = None

    def data_received(self, data: bytes) -> None:
        self.data.append(data)

    def eof_received(self) -> bool | None:
        self.eof = True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = (exc,)

    def hand_to(self, connection: _TcpConnection, transport: asyncio.Transport) -> None:
        """Make `connection` the transport's protocol, and give it what was held."""
        transport.set_protocol(connection)
        connection.connection_made(transport)
        for data in self.data:
            connection.data_received(data)
        if self.eof:
            connection.eof_received()
        if self.lost is not None:
            connection.connection_lost(self.lost[0])


class TcpSource(Source):
    """Receives syslog over TCP, or TLS (RFC 5425) when given an SSL context.

    A TLS listener accepts connections itself and does each handshake with
    `loop.connect_accepted_socket` rather than through `create_server(ssl=...)`: a server's
    failed handshake never reaches the application (asyncio and uvloop close it, logging at
    most at debug level), and this way each one is counted and logged. A client's certificate
    (when the context asks for one) must then also match `permitted_peers`
    (`tls_server.check_peer`; empty: any certificate the context verified) before a byte it sent
    is handed over. Plain TCP keeps the loop's own accept path.
    """

    kind = "tcp"

    def __init__(
        self,
        host: str,
        port: int,
        handler: Handler,
        *,
        accept: AcceptList | None = None,
        max_message: int = 65536,
        idle_timeout: float = 300.0,
        ssl_context: ssl.SSLContext | None = None,
        permitted_peers: Iterable[str] = (),
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
        reuse_port: bool = False,
    ) -> None:
        super().__init__(host, port, handler, accept)
        if ssl_context is not None:
            self.kind = "tls"
        self.max_message = max_message
        self.idle_timeout = idle_timeout
        self._ssl = ssl_context
        self.permitted = PermittedPeers(permitted_peers)
        self._handshake_timeout = handshake_timeout
        self._reuse_port = reuse_port
        self._server: asyncio.Server | None = None
        self.connections: set[_TcpConnection] = set()
        self._accepting: list[asyncio.Task[None]] = []  # TLS: one accept loop per listening socket
        self._handshakes: dict[asyncio.Task[None], _Held] = {}
        self._refusals_logged = LogThrottle(REFUSAL_LOG_EVERY)

    async def start(self) -> None:
        """Bind and start accepting; raises StartupError if the address cannot be bound."""
        loop = asyncio.get_running_loop()
        if self._ssl is not None:
            for sock in self._listening_sockets():
                task = loop.create_task(self._accept_loop(sock), name=f"nwsyslog-tls-accept-{self.port}")
                task.add_done_callback(_closer(sock))
                self._accepting.append(task)
            return
        try:
            self._server = await loop.create_server(
                lambda: _TcpConnection(self),
                self.host,
                self.port,
                reuse_port=self._reuse_port or None,
                backlog=1024,
            )
        except OSError as exc:
            raise self._bind_error(exc) from None
        self.port = self._server.sockets[0].getsockname()[1]

    def _listening_sockets(self) -> list[socket.socket]:
        """Bound, listening, non-blocking sockets for host:port, as `create_server` makes them
        (one per address the host resolves to; IPv6 ones IPv6 only)."""
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except OSError as exc:
            raise self._bind_error(exc) from None
        socks: list[socket.socket] = []
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            socks.append(sock)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if self._reuse_port:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
                sock.listen(1024)
                sock.setblocking(False)
            except OSError as exc:
                for s in socks:
                    s.close()
                raise self._bind_error(exc) from None
        self.port = socks[0].getsockname()[1]
        return socks

    async def _accept_loop(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, address = await loop.sock_accept(sock)
            except OSError as exc:  # out of file descriptors, and the like: the listener goes on
                if self._refusals_logged.allow("accept"):
                    log.error("tls://%s:%d cannot accept connections: %s", self.host, self.port, exc)
                await asyncio.sleep(0.1)
                continue
            ip, port = address[0], address[1]
            if not self.accept.allows(ip):
                self._refuse_sender(ip, time.time())
                conn.close()
                continue
            held = _Held(conn)
            task = loop.create_task(self._handshake(held, ip, port))
            self._handshakes[task] = held
            task.add_done_callback(self._handshake_done)

    async def _handshake(self, held: _Held, ip: str, port: int) -> None:
        """The TLS handshake over an accepted connection, then the peer check: hand it to a
        `_TcpConnection`, or close it (counted, logged)."""
        assert self._ssl is not None
        held.started = True  # from here the connection's transport owns (and closes) the socket
        try:
            tls, _ = await asyncio.get_running_loop().connect_accepted_socket(
                lambda: held, held.sock, ssl=self._ssl, ssl_handshake_timeout=self._handshake_timeout
            )
        except Exception as exc:  # (a cancellation, at close, is no client's failure: not caught)
            reason, refused = handshake_failure(exc)
            self._refuse(ip, port, "TLS handshake from %s failed: %s", reason, refused=refused)
            return
        why = check_peer(tls.get_extra_info("ssl_object"), self.permitted)
        if why is not None:
            tls.abort()
            self._refuse(ip, port, "TLS client %s refused: %s", why, refused=True)
            return
        held.hand_to(_TcpConnection(self), tls)

    def _handshake_done(self, task: asyncio.Task[None]) -> None:
        held = self._handshakes.pop(task, None)
        if held is not None and not held.started:  # cancelled before it began
            held.sock.close()
        if not task.cancelled() and task.exception() is not None:  # a bug: say so, the listener goes on
            log.error("TLS connection setup failed", exc_info=task.exception())

    def _refuse(self, ip: str, port: int, template: str, reason: str, *, refused: bool) -> None:
        """Count a refused client or a failed handshake; log it (`template` % (address, reason))
        unless this address was logged in the last minute (a client retrying in a loop must not
        flood the log)."""
        if refused:
            self.stats.tls_refused += 1
        else:
            self.stats.tls_handshake_failures += 1
        if self._refusals_logged.allow(ip):
            address = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
            log.warning(
                template + " (counted; more from this address within %d s are not logged)",
                address,
                reason,
                REFUSAL_LOG_EVERY,
            )

    def pause(self) -> None:
        super().pause()
        for connection in list(self.connections):
            connection.pause_reading(True)

    def resume(self) -> None:
        super().resume()
        for connection in list(self.connections):
            connection.pause_reading(False)

    def stop_accepting(self) -> None:
        """Take no new connections (what is connected is still read, until `close`)."""
        if self._server is not None:
            self._server.close()
        for task in self._accepting:
            task.cancel()  # its done callback closes the listening socket

    def unread_bytes(self) -> int:
        """Bytes senders sent that wait unread in the kernel (what a close now would discard)."""
        return sum(connection.unread_bytes() for connection in list(self.connections))

    def close(self) -> None:
        """Stop accepting and close every connection; idempotent."""
        self.stop_accepting()
        for task in list(self._handshakes):
            task.cancel()
        for connection in list(self.connections):
            with contextlib.suppress(Exception):
                connection.abort()
        self._flush_refusals()
