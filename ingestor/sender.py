"""`nwsyslog send`: replay log lines to a syslog listener over UDP or TCP (RFC 6587 octet counting).

Lines without a PRI get one, so lines copied from /var/log files arrive as a device would send
them. Pacing (`rate`) is done per small group of messages against the clock, so the average
rate holds without a sleep per message.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Sequence
from types import TracebackType

_HAS_PRI = re.compile(rb"<\d{1,3}>")
PROGRESS_EVERY = 2.0  # seconds between progress lines


class Sender:
    """A connected UDP or TCP socket that sends syslog messages.

    Example:
        >>> with Sender("udp", "127.0.0.1", 5514) as s:  # doctest: +SKIP
        ...     print(s.replay([b"Jun 14 15:16:01 combo sshd[1]: Accepted password for a from b port 1 ssh2"]))
    """

    def __init__(self, scheme: str, host: str, port: int, *, pri: bytes = b"<13>") -> None:
        if scheme not in ("udp", "tcp"):
            raise ValueError(f"cannot send over {scheme}")
        self.scheme = scheme
        self.pri = pri
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        kind = socket.SOCK_DGRAM if scheme == "udp" else socket.SOCK_STREAM
        self.sock = socket.socket(family, kind)
        try:
            self.sock.connect((host, port))
        except OSError:
            self.sock.close()
            raise
        self.sent = 0
        self.bytes = 0
        self.refused = 0  # UDP datagrams the receiving host answered with port unreachable

    def frame(self, line: bytes) -> bytes:
        """The message as sent: PRI added when missing; for TCP, the octet-count prefix."""
        message = line if _HAS_PRI.match(line) else self.pri + line
        if self.scheme == "tcp":
            return b"%d %s" % (len(message), message)
        return message

    def replay(
        self,
        lines: Sequence[bytes],
        *,
        rate: float | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> str:
        """Send every line (at `rate` messages/s if given); returns the summary line."""
        frames = [self.frame(line) for line in lines]
        started = time.monotonic()
        next_report = started + PROGRESS_EVERY
        group = max(1, int(rate / 100)) if rate else 256  # messages between clock checks
        send = self.sock.send if self.scheme == "udp" else self.sock.sendall
        for i in range(0, len(frames), group):
            chunk = frames[i : i + group]
            if self.scheme == "tcp":
                send(b"".join(chunk))
            else:
                for frame in chunk:
                    self._send_datagram(frame)
            self.sent += len(chunk)
            self.bytes += sum(map(len, chunk))
            now = time.monotonic()
            if rate:
                ahead = started + self.sent / rate - now
                if ahead > 0:
                    time.sleep(ahead)
                    now = time.monotonic()
            if progress is not None and now >= next_report:
                progress(f"sent {self.sent:,}/{len(frames):,} messages ({self.sent / (now - started):,.0f}/s)")
                next_report = now + PROGRESS_EVERY
        elapsed = max(time.monotonic() - started, 1e-9)
        refused = f"; {self.refused:,} refused (is anything listening?)" if self.refused else ""
        return (
            f"sent {self.sent:,} messages ({self.bytes:,} bytes) over {self.scheme} in {elapsed:.2f} s "
            f"({self.sent / elapsed:,.0f} messages/s){refused}"
        )

    def _send_datagram(self, frame: bytes) -> None:
        while True:
            try:
                self.sock.send(frame)
                return
            except BlockingIOError:  # pragma: no cover - a blocking socket does not raise this
                time.sleep(0.001)
            except ConnectionRefusedError:
                # ICMP port unreachable for an earlier datagram: nobody is listening there.
                self.refused += 1
                return

    def close(self) -> None:
        """Close the socket (TCP: after everything was handed to the kernel)."""
        self.sock.close()

    def __enter__(self) -> Sender:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
