"""A read-only question to the Netwrix server (`nwsyslog check-config --connect`).

`probe()` posts a search that matches nothing to the search endpoint beside the write path, over
the client's own transport, TLS pinning and authentication, so that reaching the server, its
certificate and the credentials are proven without writing a record. What it proved, in order,
and why it failed (with the configuration key to fix) come back in a `Probe`.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..errors import TlsPinError
from .config import NetwrixConfig

if TYPE_CHECKING:
    import httpx

# A search that cannot match: one second at the epoch, by a user nobody is called.
_NOTHING = {
    "FilterList": {
        "Who": {"Equals": "nwsyslog check-config: matches no record"},
        "When": {"From": "1970-01-01T00:00:00Z", "To": "1970-01-01T00:00:01Z"},
    }
}
_CONNECT_TIMEOUT = 30.0  # seconds at most, whatever netwrix.timeout says: a check must not hang long


@dataclass
class Probe:
    """What the read-only request to the Netwrix server proved (`proven`, in order) and, when
    it failed, why (`error`, with the configuration key to fix)."""

    url: str
    proven: list[str] = field(default_factory=list)
    error: str | None = None
    key: str = "netwrix.url"


def search_url(nw: NetwrixConfig) -> str:
    """The search endpoint beside the configured write path (`.../activity_records/search`)."""
    return f"{nw.url}{nw.write_path.rstrip('/')}/search?format=json&count=1"


def probe(nw: NetwrixConfig) -> Probe:
    """Ask the server for the activity records of a search that matches nothing, with the
    service's TLS trust and credentials: proves the server is reached, its certificate is
    trusted (or matches the pin) and the credentials and the account's read access are
    accepted. Nothing is written; whether the account may write stays unproven."""
    return asyncio.run(_probe(nw))


async def _probe(nw: NetwrixConfig) -> Probe:
    import httpx

    from .auth import NegotiatedAuth, build_auth, offered_schemes
    from .sink import error_list_text
    from .tls import transport

    result = Probe(search_url(nw))
    parts = urlsplit(nw.url)
    target = parts.netloc
    auth = build_auth(nw.auth)
    async with httpx.AsyncClient(
        auth=auth,
        transport=transport(nw),
        timeout=httpx.Timeout(min(nw.timeout, _CONNECT_TIMEOUT)),
        headers={"Content-Type": "application/json; charset=UTF-8", "User-Agent": "nwsyslog check-config"},
        follow_redirects=False,
    ) as client:
        try:
            response = await client.post(result.url, content=json.dumps(_NOTHING).encode())
        except TlsPinError as exc:
            result.proven.append(f"reached the server at {target}")
            result.error, result.key = str(exc), "netwrix.tls.thumbprint"
            return result
        except httpx.TimeoutException:
            waited = min(nw.timeout, _CONNECT_TIMEOUT)
            result.error = f"{target}: no answer within {waited:.0f} s (wrong host, or a firewall dropping packets)"
            return result
        except httpx.TransportError as exc:
            _transport_failure(nw, exc, result)
            return result
    result.proven.append(f"reached the server at {target}")
    result.proven.append(_tls_proof(nw))
    status = response.status_code
    chosen = auth.chosen if isinstance(auth, NegotiatedAuth) else (nw.auth.method if auth is not None else None)
    if status == 401:
        offered = ", ".join(s.upper() for s in offered_schemes(response)) or "no scheme"
        if auth is None:
            result.error = f"the server requires credentials (it offers {offered}): set netwrix.auth"
        elif chosen is None:
            result.error = f"the server offers {offered}, none of which nwsyslog speaks"
        else:
            result.error = (
                f"the server refused the credentials (HTTP 401 to {chosen.upper()} as {nw.auth.username}; "
                f"it offers {offered}): check netwrix.auth (user name, password, method)"
            )
        result.key = "netwrix.auth"
        return result
    who = f"{chosen} as {nw.auth.username}" if chosen else None
    if status == 403:
        result.proven.append(f"credentials accepted ({who})" if who else "the server asked for no credentials")
        result.error = (
            f"{result.url} answered 403: the account may not read activity records. This check proves "
            "access by reading; an account with the Contributor role alone may be refused here and still "
            "write (check it by running the service), else give it the Contributor role"
        )
        result.key = "netwrix.auth"
        return result
    if status in (404, 405):
        result.error = (
            f"{result.url} answered {status}: {'no such endpoint' if status == 404 else 'POST not allowed'}; "
            f"check netwrix.url and netwrix.write_path ({nw.write_path}: the search endpoint is beside it)"
        )
        result.key = "netwrix.write_path"
        return result
    if status != 200:
        detail = error_list_text(response.content, response.headers.get("content-type", ""))
        result.error = f"{result.url} answered HTTP {status} {response.reason_phrase}{': ' + detail if detail else ''}"
        return result
    result.proven.append(
        f"credentials accepted ({who})" if who else "the server asked for no credentials (none were sent)"
    )
    result.proven.append("the account may read activity records (the search answered 200)")
    return result


def _tls_proof(nw: NetwrixConfig) -> str:
    from .tls import colon_hex

    tls = nw.tls
    if not nw.url.startswith("https://"):
        return "no TLS (http://): credentials and records travel unencrypted"
    if tls.mode == "thumbprint" and tls.thumbprint:
        return f"TLS: the certificate matches the pinned thumbprint {colon_hex(tls.thumbprint)}"
    if tls.mode == "ca_file":
        return f"TLS: the certificate is signed by a CA in {tls.ca_file} and names the host"
    if tls.mode == "insecure":
        return "TLS: the certificate was NOT checked (tls.mode insecure): anyone in the path could answer"
    return "TLS: the certificate is trusted by the system trust store and names the host"


def _transport_failure(nw: NetwrixConfig, exc: httpx.TransportError, result: Probe) -> None:
    parts = urlsplit(nw.url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    causes = list(_causes(exc))
    verify = next((c for c in causes if isinstance(c, ssl.SSLCertVerificationError)), None)
    if verify is not None:
        result.proven.append(f"reached the server at {host}:{port}")
        result.error = (
            f"{nw.url}: the TLS certificate is not trusted ({verify.verify_message or verify}){_seen(host, port)}; "
            "set netwrix.tls.mode: thumbprint with the server's thumbprint, or ca_file with its CA"
        )
        result.key = "netwrix.tls"
        return
    tls_error = next((c for c in causes if isinstance(c, ssl.SSLError)), None)
    if tls_error is not None:
        result.proven.append(f"reached the server at {host}:{port}")
        result.error = f"{nw.url}: TLS handshake failed ({tls_error}); is it an HTTPS port?"
        result.key = "netwrix.url"
        return
    refused = any(isinstance(c, ConnectionRefusedError) for c in causes) or "refused" in str(exc).lower()
    if refused:
        result.error = (
            f"{host}:{port}: connection refused: nothing listens there (wrong host or port, the Netwrix "
            "service stopped, or a firewall rejecting)"
        )
    elif any(isinstance(c, socket.gaierror) for c in causes):
        result.error = f"{host}: no such host (the name does not resolve)"
    else:
        result.error = f"{nw.url}: {type(exc).__name__}: {exc or 'no detail'}"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = exc
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def _seen(host: str, port: int) -> str:
    """The thumbprints of the certificate the server shows, for an operator to compare and pin."""
    from .tls import colon_hex, fingerprint

    try:
        der = ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate((host, port), timeout=10))
    except (OSError, ValueError):
        return ""
    return f"; it shows a certificate with SHA-256 thumbprint {colon_hex(fingerprint(der, 64))}"
