"""Authentication for the metrics listener (`/metrics`, `/readyz`, `/api/status`, the status page).

One ASGI middleware in front of the whole app: a request passes when it carries the configured
bearer token (`Authorization: Bearer TOKEN`, for scrapers) or the configured Basic credentials
(`Authorization: Basic ...`, for a browser opening the status page); otherwise it gets 401 with
a `WWW-Authenticate` challenge for each configured scheme. Secrets are compared with
`hmac.compare_digest`, in constant time. `/healthz` stays open so that liveness probes need no
secret (it says nothing but "ok").
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ConfigError

if TYPE_CHECKING:
    from .config import MetricsConfig

OPEN_PATHS = frozenset({"/healthz"})
REALM = "nwsyslog"


@dataclass(frozen=True)
class Credentials:
    """What the listener accepts: a bearer token and/or one Basic user (None: not configured)."""

    token: bytes | None = None
    username: bytes | None = None
    password: bytes | None = None

    @property
    def configured(self) -> bool:
        """True when any scheme is set (an empty Credentials lets everything through)."""
        return self.token is not None or self.username is not None

    def accepts(self, authorization: bytes | None) -> bool:
        """Whether an `Authorization` header value matches one of the configured schemes."""
        if authorization is None:
            return False
        scheme, _, value = authorization.strip().partition(b" ")
        scheme, value = scheme.lower(), value.strip()
        if scheme == b"bearer" and self.token is not None:
            return hmac.compare_digest(value, self.token)
        if scheme == b"basic" and self.username is not None and self.password is not None:
            try:
                decoded = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                return False
            user, sep, password = decoded.partition(b":")
            # Both comparisons run whatever the first one says: no timing hint about the user.
            user_ok = hmac.compare_digest(user, self.username)
            password_ok = hmac.compare_digest(password, self.password)
            return bool(sep) and user_ok and password_ok
        return False

    def challenges(self) -> list[tuple[bytes, bytes]]:
        """The `WWW-Authenticate` headers of a 401, one per configured scheme."""
        out: list[tuple[bytes, bytes]] = []
        if self.username is not None:
            out.append((b"www-authenticate", f'Basic realm="{REALM}", charset="UTF-8"'.encode()))
        if self.token is not None:
            out.append((b"www-authenticate", f'Bearer realm="{REALM}"'.encode()))
        return out


def load_credentials(config: MetricsConfig) -> Credentials:
    """Read the configured secret files now (at start); ConfigError when one cannot be read."""
    from .config import read_secret_file

    try:
        token = read_secret_file(config.auth_token_file, "auth_token_file") if config.auth_token_file else None
        basic = config.basic_auth
        password = read_secret_file(basic.password_file, "basic_auth.password_file") if basic else None
    except ValueError as exc:
        raise ConfigError(str(exc), key="metrics") from None
    return Credentials(
        token=token.encode() if token is not None else None,
        username=basic.username.encode() if basic is not None else None,
        password=password.encode() if password is not None else None,
    )


class AuthMiddleware:
    """ASGI middleware: HTTP requests outside `open_paths` need `credentials` (401 otherwise)."""

    def __init__(self, app: ASGIApp, credentials: Credentials, open_paths: Iterable[str] = OPEN_PATHS) -> None:
        self.app = app
        self.credentials = credentials
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.credentials.configured or scope.get("path") in self.open_paths:
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope.get("headers", ()) if k == b"authorization"), None)
        if self.credentials.accepts(header):
            await self.app(scope, receive, send)
            return
        body = b"authentication required\n"
        start: Message = {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *self.credentials.challenges(),
            ],
        }
        await send(start)
        await send({"type": "http.response.body", "body": body})
