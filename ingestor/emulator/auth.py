"""HTTP authentication for the emulator: Basic, and Digest (RFC 7616, MD5, qop=auth)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from typing import Literal

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
