"""TCP syslog framing (RFC 6587): octet counting or LF-terminated, detected per connection.

Non-transparent framing ends a frame at LF, or at NUL as some senders do (RFC 6587 section
3.4.2; Python's `logging.handlers.SysLogHandler` over TCP appends NUL by default); CR LF loses
its CR. A connection's frames are looked for with the terminator it used last first, and the
other only up to that one, so either costs one scan of the bytes.

A `Framer` is a pure feed/iterate object: give it bytes as they arrive, get complete messages
back. The mode is decided by the first frame of the connection: `MSG-LEN SP <PRI>...` means
octet counting, anything else LF framing. Deciding once matters: in LF mode a line that starts
with digits (`2015 Dec 29 ...`) must not be mistaken for a length.

Memory is bounded: no frame is buffered beyond `max_message` bytes. A longer frame is cut to
`max_message` bytes, delivered, counted in `oversize`, and the rest of it is discarded.
"""

from __future__ import annotations

import re
from typing import Literal

_COUNT = re.compile(rb"([1-9][0-9]{0,9}) ")
_MAX_HEADER = 11  # ten digits and a space


class Framer:
    """Splits one TCP stream into syslog messages.

    Example:
        >>> f = Framer()
        >>> f.feed(b"12 <13>hello wo")
        []
        >>> f.feed(b"rld6 <13>hi")
        [b'<13>hello world', b'<13>hi']
    """

    def __init__(self, max_message: int = 65536) -> None:
        self.max_message = max_message
        self.mode: Literal["octet", "lf"] | None = None
        self.oversize = 0
        self.malformed = 0
        self._buf = bytearray()
        self._skip = 0  # bytes of an oversize octet-counted frame still to discard
        self._discarding = False  # LF mode: inside an oversize line, discard to the next LF or NUL
        self._first, self._second = b"\n", b"\x00"  # the terminator this connection used last first

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of a frame (never above max_message + 11)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the messages they complete, in order."""
        buf = self._buf
        buf += data
        out: list[bytes] = []
        pos = 0
        end = len(buf)
        while pos < end:
            if self._skip:
                step = min(self._skip, end - pos)
                pos += step
                self._skip -= step
                continue
            if self._discarding:
                newline = self._terminator(buf, pos, end)
                if newline < 0:
                    pos = end
                    break
                pos = newline + 1
                self._discarding = False
                continue
            if buf[pos] in b"\r\n\x00":  # stray terminators between frames
                pos += 1
                continue
            if self.mode is None and not self._detect(buf, pos, end):
                break  # not enough bytes yet to tell
            if self.mode == "octet":
                taken = self._octet_frame(buf, pos, end, out)
                if taken < 0:
                    break
                if taken > 0:
                    pos = taken
                    continue
                self.malformed += 1  # bad length header: read this one frame up to LF
            taken = self._lf_frame(buf, pos, end, out)
            if taken < 0:
                break
            pos = taken
        del buf[:pos]
        return out

    def close(self) -> list[bytes]:
        """At end of stream: the unterminated last line (LF mode), if any."""
        rest = bytes(self._buf).rstrip(b"\r\n\x00")
        self._buf.clear()
        if not rest or self._skip or self._discarding or self.mode == "octet":
            if rest and self.mode == "octet":
                self.malformed += 1  # a frame cut short by the peer
            return []
        return [rest[: self.max_message]]

    def _detect(self, buf: bytearray, pos: int, end: int) -> bool:
        m = _COUNT.match(buf, pos, min(end, pos + _MAX_HEADER))
        if m is not None:
            if m.end() >= end:
                return False  # wait for the byte after the space
            self.mode = "octet" if buf[m.end()] == ord("<") else "lf"
            return True
        if end - pos < _MAX_HEADER and buf[pos:end].isdigit():
            return False  # maybe a length still arriving
        self.mode = "lf"
        return True

    def _octet_frame(self, buf: bytearray, pos: int, end: int, out: list[bytes]) -> int:
        """Position after one octet-counted frame; -1 = need more bytes; 0 = not a count here."""
        m = _COUNT.match(buf, pos, min(end, pos + _MAX_HEADER))
        if m is None:
            return -1 if end - pos < _MAX_HEADER and buf[pos:end].isdigit() else 0
        length = int(m.group(1))
        start = m.end()
        if length <= self.max_message:
            if end - start < length:
                return -1
            out.append(bytes(buf[start : start + length]))
            return start + length
        if end - start < self.max_message:
            return -1
        out.append(bytes(buf[start : start + self.max_message]))
        self.oversize += 1
        self._skip = length - self.max_message
        return start + self.max_message

    def _terminator(self, buf: bytearray, pos: int, end: int) -> int:
        """Where the next LF or NUL is in buf[pos:end], -1 if neither is."""
        found = buf.find(self._first, pos, end)
        other = buf.find(self._second, pos, found if found >= 0 else end)
        if other >= 0:
            self._first, self._second = self._second, self._first
            return other
        return found

    def _lf_frame(self, buf: bytearray, pos: int, end: int, out: list[bytes]) -> int:
        """Position after one LF- (or NUL-) terminated frame; -1 = need more bytes."""
        newline = self._terminator(buf, pos, min(end, pos + self.max_message + 1))
        if newline < 0:
            if end - pos <= self.max_message:
                return -1
            out.append(bytes(buf[pos : pos + self.max_message]))
            self.oversize += 1
            self._discarding = True
            return pos + self.max_message
        frame = buf[pos:newline]
        if frame.endswith(b"\r"):
            frame = frame[:-1]
        out.append(bytes(frame))
        return newline + 1
