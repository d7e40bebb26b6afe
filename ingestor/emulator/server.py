"""Run the emulator: uvicorn on a socket bound here (so port 0 works and the real port is known),
optionally with TLS on a freshly generated self-signed certificate.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ..errors import StartupError
from ..loop import run
from .app import Emulator, EmulatorSettings, create_app


@dataclass(frozen=True)
class Certificate:
    """A PEM certificate and key on disk, with the fingerprints a client can pin."""

    cert_file: Path
    key_file: Path
    sha1: str
    sha256: str


def existing_certificate(directory: Path) -> Certificate | None:
    """The certificate an earlier `self_signed_certificate` left in `directory`, if it is there
    and still valid for a day, so that a pinned thumbprint survives a restart."""
    cert_file = directory / "emulator-cert.pem"
    key_file = directory / "emulator-key.pem"
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except (OSError, ValueError):
        return None
    if cert.not_valid_after_utc < dt.datetime.now(dt.UTC) + dt.timedelta(days=1):
        return None
    return Certificate(
        cert_file, key_file, cert.fingerprint(hashes.SHA1()).hex(), cert.fingerprint(hashes.SHA256()).hex()
    )


def self_signed_certificate(directory: Path, hosts: list[str]) -> Certificate:
    """Write a self-signed certificate valid for `hosts` (names or IPs) into `directory`."""
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys([*hosts, "localhost", "127.0.0.1", "::1"]):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nwsyslog Netwrix API emulator")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_file = directory / "emulator-cert.pem"
    key_file = directory / "emulator-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.touch(mode=0o600)
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return Certificate(
        cert_file, key_file, cert.fingerprint(hashes.SHA1()).hex(), cert.fingerprint(hashes.SHA256()).hex()
    )


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (IPv6 when host is an IPv6 address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, minus re-raising the stop signal after a graceful shutdown: a stopped
    emulator exits 0 instead of dying of the signal it already handled."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()


class EmbeddedServer(uvicorn.Server):
    """uvicorn's server inside a program that handles signals itself (`nwsyslog run`): it must
    not replace the program's SIGINT/SIGTERM handlers; the program stops it with `should_exit`."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class EmulatorServer:
    """The emulator bound to a socket; `serve()` runs it until `stop()`.

    Example:
        >>> with EmulatorServer.running(EmulatorSettings()) as server:  # doctest: +SKIP
        ...     print(server.base_url)
    """

    def __init__(
        self,
        settings: EmulatorSettings,
        host: str = "127.0.0.1",
        port: int = 0,
        cert: Certificate | None = None,
        *,
        embedded: bool = False,
    ) -> None:
        self.app = create_app(settings)
        self.emulator: Emulator = self.app.state.emulator
        self.sock = bind(host, port)
        self.cert = cert
        self.port: int = self.sock.getsockname()[1]
        scheme = "https" if cert else "http"
        shown = f"[{host}]" if ":" in host else host
        self.base_url = f"{scheme}://{shown}:{self.port}"
        config = uvicorn.Config(
            self.app,
            loop="uvloop",
            http="httptools",
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_keep_alive=30,
            ssl_certfile=str(cert.cert_file) if cert else None,
            ssl_keyfile=str(cert.key_file) if cert else None,
        )
        self._server = EmbeddedServer(config) if embedded else _Server(config)

    async def serve(self) -> None:
        """Serve until `stop()` (or a signal, when run on the main thread)."""
        try:
            await self._server.serve(sockets=[self.sock])
        finally:
            self.emulator.store.close()
            if self.emulator.ntlm is not None:
                self.emulator.ntlm.close()

    def stop(self) -> None:
        """Ask the server to finish (thread-safe)."""
        self._server.should_exit = True

    @property
    def started(self) -> bool:
        """Whether the server accepts connections."""
        return self._server.started

    @classmethod
    @contextmanager
    def running(
        cls, settings: EmulatorSettings, host: str = "127.0.0.1", port: int = 0, tls: bool = False
    ) -> Iterator[EmulatorServer]:
        """Run an emulator on a background thread (its own event loop) for the `with` block."""
        with tempfile.TemporaryDirectory(prefix="nwsyslog-emulator-") as tmp:
            cert = self_signed_certificate(Path(tmp), [host]) if tls else None
            server = cls(settings, host, port, cert)
            thread = threading.Thread(target=lambda: run(server.serve()), daemon=True)
            thread.start()
            try:
                for _ in range(500):
                    if server.started or not thread.is_alive():
                        break
                    threading.Event().wait(0.01)
                if not server.started:
                    raise StartupError("the emulator did not start")
                yield server
            finally:
                server.stop()
                thread.join(10)
