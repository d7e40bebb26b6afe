"""Delivery + NetwrixSink against the real emulator over loopback: every response path."""

from dataclasses import dataclass, field

import pytest

from ingestor.emulator.server import bind
from ingestor.errors import AuthError, DeliveryHalted, EndpointError, RetriesExhausted
from ingestor.loop import run
from ingestor.netwrix.batcher import Batch, Entry
from ingestor.netwrix.config import AuthConfig, NetwrixConfig, RetryConfig, TlsConfig
from ingestor.netwrix.delivery import Delivery
from ingestor.netwrix.encoding import JsonEncoder, XmlEncoder, encoder_for
from ingestor.netwrix.retry import Backoff, Outcome
from ingestor.netwrix.sink import NetwrixSink, SendResult
from tests.conftest import enum_all, make_record

FAST_RETRY = RetryConfig(base=0.01, cap=0.05)
FAST_BACKOFF = Backoff(base=0.01, factor=2.0, cap=0.05)


@dataclass
class Ledger:
    delivered: list = field(default_factory=list)
    quarantined: list = field(default_factory=list)

    def delivered_cb(self, entries):
        self.delivered.extend(e.key for e in entries)

    def quarantined_cb(self, entry, reason):
        self.quarantined.append((entry.key, reason))


class Listener:
    def __init__(self, ledger):
        self.delivered = ledger.delivered_cb
        self.quarantined = ledger.quarantined_cb


def entries_for(fmt, n, start=0):
    enc = encoder_for(fmt)
    return [Entry(i, enc.encode(make_record(i))) for i in range(start, start + n)]


def deliver(config: NetwrixConfig, entries, max_attempts=None, **options):
    """Run one Delivery of `entries` as one batch (`options`: more of Delivery's settings);
    return (ledger, stats, error)."""
    ledger = Ledger()

    async def go():
        sink = NetwrixSink(config)
        delivery = Delivery(
            sink,
            encoder_for(config.format),
            Listener(ledger),
            max_attempts=max_attempts,
            backoff=FAST_BACKOFF,
            **options,
        )
        try:
            await delivery.deliver(Batch(tuple(entries)))
            return delivery.stats, None
        except Exception as exc:
            return delivery.stats, exc
        finally:
            await sink.aclose()

    stats, error = run(go())
    return ledger, stats, error


def cfg(server, **kw):
    return NetwrixConfig(url=server.base_url, retry=FAST_RETRY, **kw)


def whats(records):
    return [r["What"] for r in records]


@pytest.mark.parametrize("fmt", ["xml", "json"])
@pytest.mark.parametrize("path", ["/netwrix/api/v1/activity_records/", "/netwrix/api/v1/activity_records"])
def test_200_acknowledges_every_record(emulator, fmt, path):
    server = emulator()
    ledger, stats, error = deliver(cfg(server, format=fmt, write_path=path), entries_for(fmt, 25))
    assert error is None
    assert ledger.delivered == list(range(25))
    assert stats.requests == 1
    assert whats(enum_all(server.base_url)) == [f"session #{i} on vty0" for i in range(25)]


def test_413_splits_into_halves_until_bodies_fit(emulator):
    server = emulator(max_body_bytes=2000)
    entries = entries_for("xml", 40)
    ledger, stats, error = deliver(cfg(server), entries)
    assert error is None
    assert ledger.delivered == list(range(40)) and not ledger.quarantined
    assert stats.splits > 0
    assert len(enum_all(server.base_url)) == 40
    assert server.emulator.stats["status_413"] >= 1


def test_a_single_record_refused_with_413_is_quarantined_not_lost(emulator):
    server = emulator(max_body_bytes=1200)
    entries = entries_for("xml", 3)
    huge = Entry("huge", XmlEncoder().encode(make_record(99, What="w" * 5000)))
    ledger, _stats, error = deliver(cfg(server), [entries[0], huge, *entries[1:]])
    assert error is None
    assert ledger.delivered == [0, 1, 2]
    assert [k for k, _ in ledger.quarantined] == ["huge"]
    assert "413" in ledger.quarantined[0][1]


def test_after_a_413_bodies_that_large_are_split_before_sending(emulator):
    server = emulator(max_body_bytes=3000)
    ledger, stats, error = deliver(cfg(server), entries_for("xml", 60))
    refused_first = server.emulator.stats["status_413"]
    assert error is None and len(ledger.delivered) == 60
    # Far fewer 413s than splits: the learned limit pre-splits instead of asking again.
    assert refused_first < stats.splits


def bad_xml_entry(key):
    fragment = XmlEncoder().encode(make_record(0)).replace(b"Successful Logon", b"Logged In")
    return Entry(key, fragment)


def test_400_bisects_quarantines_only_the_bad_records_with_the_server_reason(emulator):
    server = emulator()
    good = entries_for("xml", 30)
    batch = [*good[:7], bad_xml_entry("bad1"), *good[7:20], bad_xml_entry("bad2"), *good[20:]]
    ledger, stats, error = deliver(cfg(server), batch)
    assert error is None
    assert sorted(ledger.delivered) == list(range(30))
    assert [k for k, _ in ledger.quarantined] == ["bad1", "bad2"]
    reason = ledger.quarantined[0][1]
    assert "400" in reason and "XMLError" in reason and "Logged In" in reason
    assert len(enum_all(server.base_url)) == 30
    assert stats.bisections > 0


def test_400_on_json_quarantines_with_the_json_error_list(emulator):
    server = emulator()
    bad = Entry("bad", JsonEncoder().encode(make_record(0)).replace(b'"Who":"user0"', b'"Who":""'))
    ledger, _, error = deliver(cfg(server, format="json"), [*entries_for("json", 3), bad])
    assert error is None
    assert ledger.delivered == [0, 1, 2]
    [(key, reason)] = ledger.quarantined
    assert key == "bad" and "InputError" in reason and "Who" in reason


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_is_retried_until_delivered(emulator, status):
    server = emulator(fail_rate=0.6, fail_status=status, seed=7)
    ledger, stats, error = deliver(cfg(server), entries_for("xml", 10))
    assert error is None and ledger.delivered == list(range(10))
    assert stats.retries > 0
    assert stats.requests == stats.retries + 1
    assert len(enum_all(server.base_url)) == 10


def test_connection_refused_is_retried_and_a_retry_limit_keeps_the_records():
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    config = NetwrixConfig(url=f"http://127.0.0.1:{port}", retry=FAST_RETRY)
    ledger, _stats, error = deliver(config, entries_for("xml", 5), max_attempts=3)
    assert isinstance(error, RetriesExhausted)
    assert error.attempts == 3 and "ConnectError" in error.last
    assert [e.key for e in error.pending] == [0, 1, 2, 3, 4]
    assert ledger.delivered == [] and ledger.quarantined == []


def test_timeouts_are_retried(emulator):
    server = emulator(latency_ms=400)
    config = cfg(server, timeout=0.1)
    _ledger, _stats, error = deliver(config, entries_for("xml", 2), max_attempts=2)
    assert isinstance(error, RetriesExhausted) and "timed out" in error.last
    assert [e.key for e in error.pending] == [0, 1]


def test_401_halts_keeps_everything_and_says_what_to_fix(emulator):
    server = emulator(user=("writer", "right"))
    config = cfg(server, auth=AuthConfig(method="basic", username="writer", password="wrong"))
    ledger, stats, error = deliver(config, entries_for("xml", 8))
    assert isinstance(error, AuthError) and error.status == 401
    assert "Contributor" in str(error) and "wrong" not in str(error)
    assert [e.key for e in error.pending] == list(range(8))
    assert ledger.delivered == [] and stats.requests == 1
    assert server.emulator.store.total == 0


def test_basic_auth_with_the_right_password_delivers(emulator):
    server = emulator(user=("writer", "s3cret"))
    config = cfg(server, auth=AuthConfig(method="basic", username="writer", password="s3cret"))
    ledger, _, error = deliver(config, entries_for("xml", 3))
    assert error is None and ledger.delivered == [0, 1, 2]


@pytest.mark.parametrize(("password", "ok"), [("s3cret", True), ("nope", False)])
def test_digest_auth(emulator, password, ok):
    server = emulator(user=("writer", "s3cret"), auth_scheme="digest")
    config = cfg(server, auth=AuthConfig(method="digest", username="writer", password=password))
    ledger, _, error = deliver(config, entries_for("xml", 3))
    if ok:
        assert error is None and ledger.delivered == [0, 1, 2]
    else:
        assert isinstance(error, AuthError) and len(error.pending) == 3


def test_404_wrong_path_halts_with_a_configuration_hint(emulator):
    server = emulator()
    _ledger, _, error = deliver(cfg(server, write_path="/netwrix/api/v2/records/"), entries_for("xml", 2))
    assert isinstance(error, EndpointError) and error.status == 404
    assert "write_path" in str(error) and len(error.pending) == 2


def test_405_wrong_method_halts(emulator):
    server = emulator()
    _ledger, _, error = deliver(cfg(server, write_path="/_emulator/stats"), entries_for("xml", 2))
    assert isinstance(error, EndpointError) and error.status == 405


def test_halt_in_the_middle_of_a_split_returns_only_unsettled_records(emulator):
    # A small body limit makes the delivery split; the sink then refuses the 4th request as if the
    # credentials had been revoked mid-way.
    server = emulator(max_body_bytes=1500)
    config = cfg(server)
    ledger = Ledger()

    class FlakySink:
        def __init__(self):
            self.inner = NetwrixSink(config)
            self.calls = 0

        async def send(self, body):
            self.calls += 1
            if self.calls == 4:
                return SendResult(Outcome.HALT, 401, "credentials revoked")
            return await self.inner.send(body)

    async def go():
        sink = FlakySink()
        delivery = Delivery(sink, XmlEncoder(), Listener(ledger))
        try:
            await delivery.deliver(Batch(tuple(entries_for("xml", 8))))
        except DeliveryHalted as exc:
            return exc
        finally:
            await sink.inner.aclose()

    error = run(go())
    assert isinstance(error, AuthError)
    settled = set(ledger.delivered)
    pending = [e.key for e in error.pending]
    assert settled and pending
    assert sorted([*settled, *pending]) == list(range(8))  # every record exactly once
    assert pending == sorted(pending)


# TLS modes against the emulator's self-signed certificate.


def test_tls_system_trust_refuses_a_self_signed_certificate_and_keeps_data(emulator):
    server = emulator(tls=True)
    _ledger, _stats, error = deliver(cfg(server), entries_for("xml", 4))
    assert isinstance(error, DeliveryHalted) and error.status is None
    assert "certificate" in str(error) and "thumbprint" in str(error)
    assert len(error.pending) == 4 and server.emulator.store.total == 0


def test_tls_ca_file_trusts_the_given_certificate(emulator):
    server = emulator(tls=True)
    config = cfg(server, tls=TlsConfig(mode="ca_file", ca_file=server.cert.cert_file))
    ledger, _, error = deliver(config, entries_for("xml", 4))
    assert error is None and ledger.delivered == [0, 1, 2, 3]


@pytest.mark.parametrize("algo", ["sha1", "sha256"])
@pytest.mark.parametrize("style", ["colons", "plain"])
def test_tls_thumbprint_pinning_accepts_the_right_certificate(emulator, algo, style):
    server = emulator(tls=True)
    hexed = getattr(server.cert, algo)
    pin = ":".join(hexed[i : i + 2] for i in range(0, len(hexed), 2)).upper() if style == "colons" else hexed
    config = cfg(server, tls=TlsConfig(mode="thumbprint", thumbprint=pin))
    ledger, _, error = deliver(config, entries_for("xml", 4))
    assert error is None and ledger.delivered == [0, 1, 2, 3]


def test_tls_thumbprint_mismatch_sends_nothing_and_keeps_data(emulator):
    server = emulator(tls=True)
    wrong = "00" * 32
    config = cfg(server, tls=TlsConfig(mode="thumbprint", thumbprint=wrong))
    _ledger, _stats, error = deliver(config, entries_for("xml", 4))
    assert isinstance(error, DeliveryHalted) and "does not match" in str(error)
    assert len(error.pending) == 4
    assert server.emulator.stats["requests"] == 0  # not one HTTP request reached the server


def test_tls_insecure_is_an_explicit_opt_in_that_works(emulator):
    server = emulator(tls=True)
    ledger, _, error = deliver(cfg(server, tls=TlsConfig(mode="insecure")), entries_for("xml", 2))
    assert error is None and ledger.delivered == [0, 1]
