"""Client authentication to the Integration API: Basic, Digest, NTLM, or whichever the server
offers.

Netwrix recommends NTLM for the API and also accepts Negotiate, Digest and Basic. With
`method: auto` (the default when a username is given) the first request goes out without
credentials and the server's 401 says which schemes it takes (`WWW-Authenticate`); the client
picks NTLM, then Digest, then Basic, in that order of preference, and keeps that choice for
every later request. Basic never travels before the server has asked for it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator

import httpx

from ..errors import ConfigError
from .config import AuthConfig

# Preference order; each scheme name as WWW-Authenticate spells it.
PREFERENCE = ("ntlm", "digest", "basic")


def _ntlm(username: str, password: str) -> httpx.Auth:
    try:
        from httpx_ntlm import HttpNtlmAuth  # type: ignore[import-untyped]
    except ImportError:  # a dependency of the package; missing only in a broken install
        raise ConfigError("NTLM needs httpx-ntlm: pip install httpx-ntlm", key="netwrix.auth.method") from None
    auth: httpx.Auth = HttpNtlmAuth(username, password)
    return auth


_MAKERS: dict[str, Callable[[str, str], httpx.Auth]] = {
    "ntlm": _ntlm,
    "digest": httpx.DigestAuth,
    "basic": httpx.BasicAuth,
}


def offered_schemes(response: httpx.Response) -> list[str]:
    """The schemes a 401 offers, lower-case, in the order the server lists them."""
    schemes = []
    for header in response.headers.get_list("www-authenticate"):
        for part in header.split(","):
            word = part.strip().split(" ", 1)[0].lower()
            if word and "=" not in word:
                schemes.append(word)
    return schemes


class NegotiatedAuth(httpx.Auth):
    """Asks the server first, then authenticates with the scheme it prefers among those offered."""

    def __init__(self, username: str, password: str) -> None:
        self._username = username
        self._password = password
        self.chosen: str | None = None
        self._auth: httpx.Auth | None = None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._auth is not None:
            yield from self._auth.auth_flow(request)
            return
        response = yield request
        if response.status_code != 401:
            return
        offered = offered_schemes(response)
        scheme = next((s for s in PREFERENCE if s in offered), None)
        if scheme is None:
            return  # nothing this client speaks: the 401 stands and delivery halts with it
        self.chosen = scheme
        self._auth = _MAKERS[scheme](self._username, self._password)
        yield from self._auth.auth_flow(request)


def build_auth(auth: AuthConfig) -> httpx.Auth | None:
    """The httpx auth object for `auth` (None for `method: none`)."""
    if auth.method == "none":
        return None
    password = auth.password.get_secret_value()
    if auth.method == "auto":
        return NegotiatedAuth(auth.username, password)
    return _MAKERS[auth.method](auth.username, password)
