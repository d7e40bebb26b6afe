"""Who may connect to a tls:// listener (RFC 5425 section 5.2): client certificates verified
against `ca_file`, narrowed by `permitted_peers`; refusals and failed handshakes closed, counted
and logged once a minute per address. Real sockets, certificates made here with `cryptography`."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ingestor.config import ListenerConfig
from ingestor.errors import ConfigError
from ingestor.loop import run
from ingestor.sources import AcceptList, TcpSource
from ingestor.tls_server import PermittedPeers, check_peer, handshake_failure, server_context

from .test_service import until
from .test_sources import Collector

MESSAGE = b"<13>hello over tls"
FRAME = b"%d %s" % (len(MESSAGE), MESSAGE)


@dataclass
class Issued:
    cert_file: Path
    key_file: Path
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def fingerprint(self) -> str:
        """`sha256:AB:CD:...`, as an administrator copies it from `openssl x509 -fingerprint`."""
        digest = self.cert.fingerprint(hashes.SHA256()).hex().upper()
        return "sha256:" + ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def issue(
    folder: Path,
    stem: str,
    cn: str,
    *,
    ca: Issued | None = None,
    sans: list[x509.GeneralName] | None = None,
    usage: x509.ObjectIdentifier | None = None,
) -> Issued:
    """A key and certificate for `cn`, signed by `ca` (self-signed CA when None), in `folder`."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    issuer_key = ca.key if ca else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca.cert.subject if ca else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    if ca is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        if usage is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    cert = builder.sign(issuer_key, hashes.SHA256())
    cert_file, key_file = folder / f"{stem}-cert.pem", folder / f"{stem}-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return Issued(cert_file, key_file, cert, key)


@dataclass
class Pki:
    ca: Issued
    server: Issued
    good: Issued  # CN and DNS name under *.devices.example.net
    foreign: Issued  # the same names, signed by another CA
    outsider: Issued  # signed by the CA, CN outside permitted_peers


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca = issue(folder, "ca", "nwsyslog test CA")
    other_ca = issue(folder, "other-ca", "some other CA")
    server = issue(
        folder,
        "server",
        "nwsyslog",
        ca=ca,
        sans=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
    )
    client = ExtendedKeyUsageOID.CLIENT_AUTH
    good_names = [x509.DNSName("sw1.devices.example.net")]
    return Pki(
        ca=ca,
        server=server,
        good=issue(folder, "good", "sw1.devices.example.net", ca=ca, sans=good_names, usage=client),
        foreign=issue(folder, "foreign", "sw1.devices.example.net", ca=other_ca, sans=good_names, usage=client),
        outsider=issue(folder, "outsider", "laptop.office.example.net", ca=ca, usage=client),
    )


def listener(pki: Pki, **keys) -> ListenerConfig:
    return ListenerConfig(url="tls://127.0.0.1:0", cert_file=pki.server.cert_file, key_file=pki.server.key_file, **keys)


def client_context(pki: Pki, cert: Issued | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca.cert_file))
    if cert is not None:
        context.load_cert_chain(cert.cert_file, cert.key_file)
    return context


async def try_send(port: int, context: ssl.SSLContext) -> None:
    """Connect, send one frame and close. A refusal shows on the client side as a failed
    handshake, or (TLS 1.3: the client's certificate is checked after the client finished its
    part) as an alert or a reset later: the callers look at the listener's side."""
    with contextlib.suppress(OSError):
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
        try:
            writer.write(FRAME)
            await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await asyncio.wait_for(writer.wait_closed(), 5)


def attempt(pki: Pki, config: ListenerConfig, clients: list[Issued | None]):
    """Each client in turn against a real TLS listener made from `config`: (messages, stats)."""

    async def go():
        got = Collector()
        source = TcpSource(
            "127.0.0.1", 0, got, ssl_context=server_context(config), permitted_peers=config.permitted_peers
        )
        async with source:
            for cert in clients:
                before = (len(got.items), source.stats.tls_refused, source.stats.tls_handshake_failures)
                await try_send(source.port, client_context(pki, cert))
                await until(
                    lambda before=before: (
                        (len(got.items), source.stats.tls_refused, source.stats.tls_handshake_failures) != before
                    )
                )
        return [raw for raw, _, _ in got.items], source.stats

    return run(go())


def test_a_client_with_a_certificate_the_ca_signed_is_delivered(pki):
    async def go():
        got = Collector()
        config = listener(pki, ca_file=pki.ca.cert_file)
        async with TcpSource("127.0.0.1", 0, got, ssl_context=server_context(config)) as source:
            _, writer = await asyncio.open_connection("127.0.0.1", source.port, ssl=client_context(pki, pki.good))
            for part in (FRAME[:3], FRAME[3:] + b"\n" + MESSAGE + b"\n"):  # framing across TLS records
                writer.write(part)
                await writer.drain()
            await got.wait_for(2)
            writer.close()
        return got.items, source.stats, source.kind

    items, stats, kind = run(go())
    assert [(raw, peer) for raw, peer, _ in items] == [(MESSAGE, "127.0.0.1")] * 2
    assert (stats.connections, stats.tls_refused, stats.tls_handshake_failures) == (1, 0, 0)
    assert kind == "tls"


def test_verify_client_defaults_to_required_with_a_ca_file(pki):
    assert listener(pki, ca_file=pki.ca.cert_file).verify_client == "required"
    assert listener(pki).verify_client == "none"


def test_a_client_without_a_certificate_is_refused_and_counted_when_one_is_required(pki, caplog):
    with caplog.at_level(logging.WARNING, logger="nwsyslog.sources"):
        messages, stats = attempt(pki, listener(pki, ca_file=pki.ca.cert_file), [None])
    assert messages == []
    assert (stats.connections, stats.tls_refused, stats.tls_handshake_failures) == (0, 1, 0)
    assert "TLS handshake from 127.0.0.1:" in caplog.text
    assert "failed: no client certificate (verify_client: required)" in caplog.text


def test_a_client_certificate_from_another_ca_is_refused_counted_and_logged_once_a_minute(pki, caplog):
    with caplog.at_level(logging.WARNING, logger="nwsyslog.sources"):
        messages, stats = attempt(pki, listener(pki, ca_file=pki.ca.cert_file), [pki.foreign, pki.foreign])
    assert messages == []
    assert (stats.connections, stats.tls_refused) == (0, 2)
    lines = [r.getMessage() for r in caplog.records if r.name == "nwsyslog.sources"]
    assert len(lines) == 1, "the second refusal from the same address within 60 s is counted, not logged"
    assert lines[0].startswith("TLS handshake from 127.0.0.1:")
    assert "failed: certificate verify failed: unable to get local issuer certificate" in lines[0]


def test_a_certificate_outside_permitted_peers_is_refused_and_counted(pki, caplog):
    config = listener(pki, ca_file=pki.ca.cert_file, permitted_peers=["*.devices.example.net"])
    with caplog.at_level(logging.WARNING, logger="nwsyslog.sources"):
        messages, stats = attempt(pki, config, [pki.outsider, pki.good])
    assert messages == [MESSAGE], "the permitted client that came next was delivered"
    assert (stats.connections, stats.tls_refused, stats.tls_handshake_failures) == (1, 1, 0)
    assert "TLS client 127.0.0.1:" in caplog.text
    assert "refused: certificate of laptop.office.example.net" in caplog.text
    assert "matches no permitted_peers entry" in caplog.text


def test_a_fingerprint_entry_admits_the_matching_certificate_only(pki):
    config = listener(pki, ca_file=pki.ca.cert_file, permitted_peers=[pki.outsider.fingerprint.lower()])
    messages, stats = attempt(pki, config, [pki.outsider, pki.good])
    assert messages == [MESSAGE]
    assert (stats.connections, stats.tls_refused) == (1, 1)


def test_verify_client_optional_admits_a_client_without_a_certificate_but_not_a_foreign_one(pki):
    config = listener(pki, ca_file=pki.ca.cert_file, verify_client="optional")
    messages, stats = attempt(pki, config, [None, pki.good, pki.foreign])
    assert messages == [MESSAGE, MESSAGE]
    assert (stats.connections, stats.tls_refused) == (2, 1)


def test_without_a_ca_file_no_client_certificate_is_asked_for(pki):
    messages, stats = attempt(pki, listener(pki), [None, pki.foreign])
    assert messages == [MESSAGE, MESSAGE]
    assert stats.tls_refused == 0


def test_a_client_speaking_no_tls_is_a_counted_handshake_failure(pki, caplog):
    async def go():
        got = Collector()
        config = listener(pki, ca_file=pki.ca.cert_file)
        async with TcpSource("127.0.0.1", 0, got, ssl_context=server_context(config)) as source:
            reader, writer = await asyncio.open_connection("127.0.0.1", source.port)
            writer.write(b"<13>plain text to a TLS port\n")
            await writer.drain()
            with contextlib.suppress(OSError):
                await asyncio.wait_for(reader.read(), 5)
            writer.close()
            await until(lambda: source.stats.tls_handshake_failures == 1)
        return got.items, source.stats

    with caplog.at_level(logging.WARNING, logger="nwsyslog.sources"):
        items, stats = run(go())
    assert items == [] and (stats.tls_refused, stats.tls_handshake_failures) == (0, 1)
    assert "TLS handshake from 127.0.0.1:" in caplog.text and "wrong version number" in caplog.text


def test_the_accept_list_refuses_before_any_handshake(pki):
    async def go():
        config = listener(pki, ca_file=pki.ca.cert_file)
        accept = AcceptList(["10.0.0.0/8"])
        async with TcpSource("127.0.0.1", 0, Collector(), accept=accept, ssl_context=server_context(config)) as source:
            await try_send(source.port, client_context(pki, pki.good))
            await until(lambda: source.stats.denied == 1)
        return source.stats

    stats = run(go())
    assert (stats.denied, stats.connections, stats.tls_refused, stats.tls_handshake_failures) == (1, 0, 0, 0)


def test_a_pending_handshake_is_closed_with_the_listener(pki):
    async def go():
        config = listener(pki, ca_file=pki.ca.cert_file)
        source = TcpSource("127.0.0.1", 0, Collector(), ssl_context=server_context(config))
        async with source:
            reader, writer = await asyncio.open_connection("127.0.0.1", source.port)  # says nothing
            await until(lambda: bool(source._handshakes))
        data = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        await until(lambda: not source._handshakes)
        return data, source.stats

    data, stats = run(go())
    assert data == b"" and stats.tls_handshake_failures == 0, "closing is not a client's failure"


def test_server_context_names_the_file_at_fault(pki, tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    base = {"cert_file": pki.server.cert_file, "key_file": pki.server.key_file}
    cases = [
        ({**base, "cert_file": junk}, "listeners.cert_file", "cannot load the certificate"),
        ({**base, "key_file": junk}, "listeners.key_file", "cannot load the private key"),
        ({**base, "key_file": pki.good.key_file}, "listeners.key_file", "not the certificate's key"),
        ({**base, "ca_file": junk}, "listeners.ca_file", "cannot load the CA certificates"),
    ]
    for keys, key, reason in cases:
        with pytest.raises(ConfigError, match=reason) as caught:
            server_context(ListenerConfig(url="tls://127.0.0.1:0", **keys))
        assert caught.value.key == key


def test_permitted_peers_matching():
    peers = PermittedPeers(["*.Devices.example.net", "SHA256:" + "Ab" * 32, "syslog-relay"])
    assert peers.fingerprints == {"ab" * 32}
    assert peers.admits(b"", ["sw1.devices.example.NET"]) and peers.admits(b"", ["a.b.devices.example.net"])
    assert peers.admits(b"", ["syslog-relay"]) and not peers.admits(b"", ["syslog-relay2"])
    assert not peers.admits(b"", ["devices.example.net"]) and not peers.admits(b"", ["x.devices.example.net.evil"])
    assert not PermittedPeers() and PermittedPeers(["x"])


def test_handshake_failure_reasons():
    assert handshake_failure(ConnectionAbortedError("SSL handshake is taking longer than 60.0 seconds")) == (
        "SSL handshake is taking longer than 60.0 seconds",
        False,
    )
    assert handshake_failure(TimeoutError()) == ("TimeoutError", False)


def test_check_peer_accepts_a_plain_list(pki):
    """`check_peer` over a real handshake, with the entries as configuration holds them."""

    async def go():
        context = server_context(listener(pki, ca_file=pki.ca.cert_file))
        results: list[str | None] = []

        async def serve(reader, writer):
            ssl_object = writer.get_extra_info("ssl_object")
            results.append(check_peer(ssl_object, ["*.devices.example.net"]))
            results.append(check_peer(ssl_object, ["other.example.net"]))
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
        async with server:
            await try_send(server.sockets[0].getsockname()[1], client_context(pki, pki.good))
            await until(lambda: len(results) == 2)
        return results

    admitted, refused = run(go())
    assert admitted is None
    assert refused is not None and refused.startswith("certificate of sw1.devices.example.net")
