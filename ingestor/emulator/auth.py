"""HTTP authentication for the emulator: Basic, Digest (RFC 7616, MD5, qop=auth) and NTLM.

NTLM, the scheme Netwrix recommends for the API, is connection-bound: the client's NEGOTIATE
message, the server's CHALLENGE (in a 401) and the client's AUTHENTICATE travel on one
keep-alive connection, which is then authenticated. The acceptor is pyspnego's pure-Python
NTLM server, which reads the accepted credentials from the file named by the NTLM_USER_FILE
environment variable: the emulator writes that file (mode 0600, one `DOMAIN:USER:PASSWORD`
line) and points the variable at it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import re
import secrets
import tempfile
from collections import OrderedDict
from typing import Any, Literal

REALM = "Netwrix Auditor"
_PARAM = re.compile(r'(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


class Authenticator:
    """Checks `Authorization` headers for one user; `challenge()` is the WWW-Authenticate value."""

    def __init__(self, username: str, password: str, scheme: Literal["basic", "digest"] = "basic") -> None:
        self.username = username
        self._password = password
        self.scheme = scheme
        self._secret = secrets.token_bytes(16)

    def challenge(self) -> str:
        """The WWW-Authenticate header value for a 401."""
        if self.scheme == "basic":
            return f'Basic realm="{REALM}", charset="UTF-8"'
        nonce = secrets.token_hex(8)
        signed = f"{nonce}.{self._sign(nonce)}"
        return f'Digest realm="{REALM}", qop="auth", algorithm=MD5, nonce="{signed}", opaque="{secrets.token_hex(8)}"'

    def _sign(self, nonce: str) -> str:
        return hmac.new(self._secret, nonce.encode(), hashlib.sha256).hexdigest()[:16]

    def check(self, header: str | None, method: str, uri: str) -> bool:
        """Whether `header` proves the configured credentials for this request."""
        if not header:
            return False
        scheme, _, value = header.partition(" ")
        if self.scheme == "basic":
            if scheme.lower() != "basic":
                return False
            try:
                user, _, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return hmac.compare_digest(user, self.username) and hmac.compare_digest(password, self._password)
        if scheme.lower() != "digest":
            return False
        params = {m.group(1): m.group(2) if m.group(2) is not None else m.group(3) for m in _PARAM.finditer(value)}
        nonce = params.get("nonce", "")
        raw, _, signature = nonce.partition(".")
        if not hmac.compare_digest(signature, self._sign(raw)) or params.get("username") != self.username:
            return False
        if params.get("uri") != uri:
            return False
        ha1 = _md5(f"{self.username}:{REALM}:{self._password}")
        ha2 = _md5(f"{method}:{uri}")
        expected = _md5(
            f"{ha1}:{nonce}:{params.get('nc', '')}:{params.get('cnonce', '')}:{params.get('qop', '')}:{ha2}"
        )
        return hmac.compare_digest(expected, params.get("response", ""))


class NtlmAcceptor:
    """NTLM for one user, per connection (a connection is `(client host, client port)`)."""

    MAX_CONNECTIONS = 1024  # handshakes and authenticated connections remembered (oldest dropped)

    def __init__(self, username: str, password: str) -> None:
        domain, sep, user = username.partition("\\")
        if not sep:
            domain, user = "", username
        handle, path = tempfile.mkstemp(prefix="nwsyslog-emulator-ntlm-")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(f"{domain}:{user}:{password}\n")
        self.user_file = path
        os.environ["NTLM_USER_FILE"] = path  # where pyspnego's acceptor reads credentials
        self._pending: OrderedDict[tuple[str, int], Any] = OrderedDict()
        self._authenticated: OrderedDict[tuple[str, int], bool] = OrderedDict()

    def close(self) -> None:
        """Remove the credential file."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.user_file)

    def check(self, connection: tuple[str, int], header: str | None) -> tuple[bool, str | None]:
        """(authenticated, challenge to send with a 401 or None for a bare `NTLM` challenge)."""
        import spnego  # a dependency of httpx-ntlm, which nwsyslog depends on

        if connection in self._authenticated and not header:
            return True, None
        scheme, _, value = (header or "").partition(" ")
        if scheme.lower() != "ntlm" or not value.strip():
            return False, None
        try:
            token = base64.b64decode(value.strip(), validate=True)
        except ValueError:
            return False, None
        context = self._pending.pop(connection, None)
        if context is None or token[8:12] == b"\x01\x00\x00\x00":  # a NEGOTIATE starts over
            context = spnego.server(protocol="ntlm")
        try:
            answer = context.step(token)
        except spnego.exceptions.SpnegoError:
            self._authenticated.pop(connection, None)
            return False, None
        if context.complete:
            self._remember(self._authenticated, connection, True)
            return True, None
        self._remember(self._pending, connection, context)
        return False, base64.b64encode(answer or b"").decode()

    def _remember(self, table: OrderedDict[tuple[str, int], Any], key: tuple[str, int], value: Any) -> None:
        table[key] = value
        table.move_to_end(key)
        while len(table) > self.MAX_CONNECTIONS:
            table.popitem(last=False)
