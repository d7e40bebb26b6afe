"""The server side of tls:// listeners: their SSL context, and who may connect (RFC 5425 section 5.2).

Like rsyslog's `x509/name` with `PermittedPeer` and syslog-ng's `peer-verify`: with a
`ca_file`, a client must show a certificate that CA signed (`verify_client: required`) or may
show none (`optional`), and `permitted_peers` narrows the certificates admitted to those whose
subject CN or a DNS subjectAltName matches a pattern, or whose SHA-256 fingerprint is listed.
OpenSSL refuses a missing or unverifiable certificate during the handshake; `check_peer` applies
`permitted_peers` once the handshake is done, before any message is read.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import ssl
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from .config import ListenerConfig

_VERIFY_MODES = {"required": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}
_FINGERPRINT = re.compile(r"sha256:((?:[0-9a-f]{2}:?){31}[0-9a-f]{2})")
# Handshake failures that are a refusal of the client's certificate (rather than a client that
# speaks no TLS, or broken TLS): OpenSSL's reasons when a required certificate is missing.
_NO_CERTIFICATE = {"PEER_DID_NOT_RETURN_A_CERTIFICATE", "CERTIFICATE_REQUIRED"}


def normalize_peer(pattern: str) -> str:
    """A `permitted_peers` entry in the form it is matched in: a name pattern lowercased
    (`*.Example.com` -> `*.example.com`), a fingerprint as `sha256:` and 64 lowercase hex digits
    without colons; ValueError for an empty entry or a malformed fingerprint."""
    value = pattern.strip().lower()
    if not value or any(c.isspace() for c in value):
        raise ValueError(f"permitted_peers: {pattern!r} is neither a name pattern nor a sha256: fingerprint")
    if value.startswith("sha256:"):
        m = _FINGERPRINT.fullmatch(value)
        if m is None:
            raise ValueError(
                f"permitted_peers: {pattern!r} is not a SHA-256 fingerprint "
                "(sha256: and 64 hex digits, colons optional: sha256:AB:CD:...)"
            )
        return "sha256:" + m[1].replace(":", "")
    return value


class PermittedPeers:
    """`permitted_peers`, parsed once: name patterns (fnmatch wildcards, case-insensitive; `*`
    also spans dots) and SHA-256 fingerprints. Empty admits every certificate."""

    def __init__(self, entries: Iterable[str] = ()) -> None:
        normalized = [normalize_peer(e) for e in entries]
        self.fingerprints = frozenset(e.removeprefix("sha256:") for e in normalized if e.startswith("sha256:"))
        self.names = tuple(e for e in normalized if not e.startswith("sha256:"))

    def __bool__(self) -> bool:
        return bool(self.fingerprints or self.names)

    def admits(self, der: bytes, names: Iterable[str]) -> bool:
        """Whether the certificate (`der`, its `names`: CN and DNS subjectAltNames) is listed."""
        if self.fingerprints and hashlib.sha256(der).hexdigest() in self.fingerprints:
            return True
        return any(fnmatch.fnmatchcase(name.lower(), pattern) for name in names for pattern in self.names)


def server_context(listener: ListenerConfig) -> ssl.SSLContext:
    """The SSL context of a tls:// listener: its certificate and key, and with a `ca_file` the
    CA(s) client certificates are verified against (no system CA is trusted for clients).
    Raises ConfigError naming `listeners.cert_file`, `listeners.key_file` or `listeners.ca_file`."""
    if listener.cert_file is None or listener.key_file is None:
        raise ConfigError("a tls:// listener needs cert_file and key_file", key="listeners.cert_file")
    cert, key = str(listener.cert_file), str(listener.key_file)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        # The certificate alone first, so that a bad key is not reported as a bad certificate.
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_verify_locations(cafile=cert)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the certificate {cert}: {exc}", key="listeners.cert_file") from None
    try:
        # A passphrase-protected key fails here rather than prompting on the terminal.
        context.load_cert_chain(cert, key, password=_no_passphrase)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot load the private key {key} (unreadable, protected by a passphrase, or not the "
            f"certificate's key): {exc}",
            key="listeners.key_file",
        ) from None
    if listener.ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(listener.ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"cannot load the CA certificates {listener.ca_file}: {exc}", key="listeners.ca_file"
            ) from None
    context.verify_mode = _VERIFY_MODES[listener.verify_client]
    return context


def _no_passphrase() -> str:
    return ""


def peer_names(cert: dict[str, Any]) -> list[str]:
    """The names `permitted_peers` patterns are matched against: the subject's CNs and the DNS
    subjectAltNames of a certificate as `SSLObject.getpeercert()` returns it."""
    names = [value for rdn in cert.get("subject", ()) for attr, value in rdn if attr == "commonName"]
    names += [value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"]
    return names


def check_peer(ssl_object: ssl.SSLObject | ssl.SSLSocket, permitted: PermittedPeers | Iterable[str]) -> str | None:
    """After a completed handshake: why the client may not send (its certificate is not in
    `permitted`, or it has none where one is required), or None when it may."""
    if not isinstance(permitted, PermittedPeers):
        permitted = PermittedPeers(permitted)
    der = ssl_object.getpeercert(binary_form=True)
    if der is None:
        if ssl_object.context.verify_mode == ssl.CERT_REQUIRED:
            return "no client certificate"
        return None  # verify_client optional: admitted without one
    if not permitted:
        return None
    names = peer_names(ssl_object.getpeercert() or {})
    if permitted.admits(der, names):
        return None
    shown = ", ".join(dict.fromkeys(names)) or "no CN or DNS name"
    return f"certificate of {shown} (sha256:{hashlib.sha256(der).hexdigest()}) matches no permitted_peers entry"


def handshake_failure(exc: BaseException) -> tuple[str, bool]:
    """A failed handshake's reason for the log, and whether it refused the client's certificate
    (none shown where required, or not signed by the CA) rather than broke down otherwise."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}", True
    if isinstance(exc, ssl.SSLError) and exc.reason:
        if exc.reason in _NO_CERTIFICATE:
            return "no client certificate (verify_client: required)", True
        return exc.reason.lower().replace("_", " "), False
    return str(exc) or type(exc).__name__, False
