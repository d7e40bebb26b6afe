"""The HTTP side of the output path: one POST per call, its answer as a `SendResult`.

This is the only module that imports httpx for writing. It knows nothing of syslog or batching:
it gets a body, posts it, and reports what the server said, already classified. It never raises
for an HTTP status or a transport failure; only programming errors escape.
"""

from __future__ import annotations

import email.utils
import json
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from lxml import etree

from ..errors import TlsPinError
from .auth import build_auth
from .config import NetwrixConfig
from .encoding import encoder_for
from .records import ERROR_NAMESPACE
from .retry import Outcome, classify
from .tls import transport as make_transport


@dataclass(frozen=True, slots=True)
class SendResult:
    """One write attempt: the outcome, the HTTP status (None if no answer) and a reason."""

    outcome: Outcome
    status: int | None
    reason: str = ""
    retry_after: float | None = None
    elapsed: float = 0.0


def error_list_text(body: bytes, content_type: str) -> str:
    """The human text of a Netwrix ErrorList (XML or JSON); the raw body if it is neither."""
    text = body.decode("utf-8", "replace").strip()
    if not text:
        return ""
    errors: list[str] = []
    try:
        if "json" in content_type or text.startswith("{"):
            data = json.loads(text)
            for err in data.get("ErrorList", []):
                errors.append(_error_line(err.get("Category"), err.get("Description"), err.get("Location")))
        else:
            root = etree.fromstring(body, parser=_SAFE_PARSER)
            ns = {"e": ERROR_NAMESPACE}
            for err in root.iterfind(".//e:Error", ns):
                errors.append(
                    _error_line(
                        err.findtext("e:Category", None, ns),
                        err.findtext("e:Description", None, ns),
                        err.findtext("e:Location", None, ns),
                    )
                )
    except (ValueError, etree.XMLSyntaxError, AttributeError):
        return text[:2000]
    return "; ".join(errors) if errors else text[:2000]


_SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


def _error_line(category: object, description: object, location: object) -> str:
    parts = [str(category or "Error")]
    if description:
        parts.append(str(description))
    line = ": ".join(parts)
    return f"{line} (at {location})" if location else line


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


_HALT_ADVICE = {
    401: "the server refused the credentials: check netwrix.auth (user name, password, method); "
    "the account needs the Contributor role",
    403: "the account is not allowed to write: give it the Contributor role in Netwrix Auditor",
    404: "no such endpoint: check netwrix.url and netwrix.write_path "
    "(/netwrix/api/v1/activity_records/, or the same without the last slash)",
    405: "the endpoint does not accept POST: check netwrix.write_path",
}


class NetwrixSink:
    """Posts request bodies to the Integration API's write endpoint over one keep-alive pool.

    Example:
        >>> sink = NetwrixSink(NetwrixConfig(url="https://nwx:9699"))   # doctest: +SKIP
        >>> result = await sink.send(body)                               # doctest: +SKIP
    """

    def __init__(self, config: NetwrixConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self._url = config.write_url
        self._client = httpx.AsyncClient(
            auth=build_auth(config.auth),
            transport=transport or make_transport(config),
            timeout=httpx.Timeout(config.timeout),
            headers={"Content-Type": encoder_for(config.format).content_type, "User-Agent": "nwsyslog"},
            follow_redirects=False,
        )

    async def send(self, body: bytes) -> SendResult:
        """POST one body; classify the answer. Never raises for HTTP or network trouble."""
        started = time.monotonic()
        try:
            response = await self._client.post(self._url, content=body)
        except TlsPinError as exc:
            return SendResult(Outcome.HALT, None, str(exc), elapsed=time.monotonic() - started)
        except httpx.TimeoutException as exc:
            return self._transport_failure(f"timed out ({type(exc).__name__})", started)
        except httpx.TransportError as exc:
            if _is_certificate_failure(exc):
                reason = (
                    f"{self._url}: TLS certificate not trusted ({exc}); nothing was sent. Set "
                    "netwrix.tls.mode to ca_file (with the server's CA) or thumbprint"
                )
                return SendResult(Outcome.HALT, None, reason, elapsed=time.monotonic() - started)
            return self._transport_failure(f"{type(exc).__name__}: {exc or 'no detail'}", started)
        elapsed = time.monotonic() - started
        status = response.status_code
        outcome = classify(status)
        if outcome is Outcome.DELIVERED:
            return SendResult(outcome, status, elapsed=elapsed)
        if outcome is Outcome.REJECTED:
            reason = error_list_text(response.content, response.headers.get("content-type", ""))
            return SendResult(outcome, status, reason or "400 Bad Request (no ErrorList)", elapsed=elapsed)
        if outcome is Outcome.RETRY:
            retry_after = _retry_after(response.headers.get("retry-after"))
            reason = f"HTTP {status} {response.reason_phrase}".strip()
            detail = error_list_text(response.content, response.headers.get("content-type", ""))
            if detail:
                reason = f"{reason}: {detail}"
            return SendResult(outcome, status, reason, retry_after, elapsed)
        if outcome is Outcome.SPLIT:
            return SendResult(outcome, status, f"413: the server refused a {len(body)}-byte body", elapsed=elapsed)
        advice = _HALT_ADVICE.get(status, "unexpected answer; records are kept until this is fixed")
        return SendResult(Outcome.HALT, status, f"{self._url} answered HTTP {status}: {advice}", elapsed=elapsed)

    def _transport_failure(self, reason: str, started: float) -> SendResult:
        return SendResult(Outcome.RETRY, None, f"{self._url}: {reason}", elapsed=time.monotonic() - started)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


def _is_certificate_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
