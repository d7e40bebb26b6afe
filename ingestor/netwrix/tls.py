"""TLS trust for the Netwrix connection: trust store, CA bundle, thumbprint pin, or (opt-in) none.

Thumbprint pinning is checked by a network backend wrapper right after the TLS handshake and
before a single HTTP byte is written, so neither the credentials nor any record reach a server
whose certificate does not match. A mismatch raises `TlsPinError`, which halts delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
import typing

import httpcore
import httpx

from ..errors import TlsPinError
from .config import NetwrixConfig, TlsConfig


def ssl_context(tls: TlsConfig) -> ssl.SSLContext:
    """The client SSL context for a TLS mode (pinning adds its own check on top)."""
    if tls.mode == "system":
        return ssl.create_default_context()
    if tls.mode == "ca_file":
        return ssl.create_default_context(cafile=str(tls.ca_file))
    # thumbprint and insecure: chain and name are not checked by OpenSSL. For thumbprint, the
    # pin below is the check (Netwrix servers use a self-signed certificate by default).
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def fingerprint(der: bytes, length: int) -> str:
    """Hex SHA-1 (length 40) or SHA-256 (length 64) fingerprint of a DER certificate."""
    algo = hashlib.sha1 if length == 40 else hashlib.sha256
    return algo(der).hexdigest()


class _PinnedStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream, pin: str) -> None:
        self._inner = inner
        self._pin = pin

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        tls_stream = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        ssl_object = tls_stream.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if der is None:
            await tls_stream.aclose()
            raise TlsPinError(f"{server_hostname}: the server presented no certificate to check")
        seen = fingerprint(der, len(self._pin))
        if not hmac.compare_digest(seen, self._pin):
            await tls_stream.aclose()
            raise TlsPinError(
                f"{server_hostname}: certificate thumbprint {colon_hex(seen)} does not match the "
                f"configured {colon_hex(self._pin)}; nothing was sent. If the Netwrix server's "
                "certificate was renewed, update tls.thumbprint"
            )
        return tls_stream

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class _PinningBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, pin: str) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._pin = pin

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _PinnedStream(stream, self._pin)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def colon_hex(hexed: str) -> str:
    """`ab12...` as `AB:12:...`, the way Windows and Netwrix show certificate thumbprints."""
    return ":".join(hexed[i : i + 2] for i in range(0, len(hexed), 2)).upper()


def transport(config: NetwrixConfig) -> httpx.AsyncHTTPTransport:
    """The httpx transport for `config`: keep-alive pool sized to `max_in_flight`."""
    limits = httpx.Limits(max_connections=config.max_in_flight, max_keepalive_connections=config.max_in_flight)
    ctx = ssl_context(config.tls)
    tr = httpx.AsyncHTTPTransport(verify=ctx, limits=limits, trust_env=False)
    if config.tls.mode == "thumbprint" and config.tls.thumbprint:
        # httpx has no public hook for the network backend; httpcore's pool does. Replace the pool
        # with one built the same way plus the pinning backend.
        tr._pool = httpcore.AsyncConnectionPool(
            ssl_context=ctx,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_PinningBackend(config.tls.thumbprint),
        )
    return tr
