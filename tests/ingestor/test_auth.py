"""The client's authentication against the emulator's real handshakes: NTLM (what Netwrix
recommends), Digest, Basic, and `auto`, which uses what the server's 401 offers."""

from __future__ import annotations

import pytest

from ingestor.errors import AuthError
from ingestor.netwrix.auth import NegotiatedAuth, build_auth
from ingestor.netwrix.config import AuthConfig, BatchConfig, NetwrixConfig
from tests.conftest import make_record
from tests.ingestor.test_client import submit_all

BATCH = BatchConfig(max_batch_records=10, linger=0.05)


def netwrix(server, method: str, user: str, password: str) -> NetwrixConfig:
    return NetwrixConfig(url=server.base_url, auth=AuthConfig(method=method, username=user, password=password))


@pytest.mark.parametrize("scheme", ["ntlm", "digest", "basic"])
@pytest.mark.parametrize("method", ["auto", "same"])
def test_every_scheme_delivers_with_its_own_method_and_with_auto(emulator, scheme, method):
    user = "EXAMPLE\\svc-nwsyslog" if scheme == "ntlm" else "svc-nwsyslog"
    server = emulator(user=(user, "S3cret!"), auth_scheme=scheme)
    config = netwrix(server, scheme if method == "same" else "auto", user, "S3cret!")
    _client, error, pending = submit_all(config, BATCH, [make_record(i) for i in range(25)])
    assert error is None and pending == []
    assert server.emulator.store.total == 25
    # NTLM authenticates each connection once, not each request: a bare request's 401, with
    # `auto` the first one that chose NTLM, and the challenge, on at most max_in_flight (4).
    assert server.emulator.stats["status_401"] <= (3 * 4 if scheme == "ntlm" else 25)


def test_auto_picks_ntlm_then_digest_then_basic_from_the_401(emulator):
    auth = build_auth(AuthConfig(username="u", password="p"))
    assert isinstance(auth, NegotiatedAuth) and auth.chosen is None  # auto is the default method
    server = emulator(user=("u", "p"), auth_scheme="digest")
    _client, error, _pending = submit_all(netwrix(server, "auto", "u", "p"), BATCH, [make_record(1)])
    assert error is None and server.emulator.stats["status_200"] == 1


@pytest.mark.parametrize("scheme", ["ntlm", "basic"])
def test_wrong_credentials_halt_with_every_record_kept(emulator, scheme):
    server = emulator(user=("u", "right"), auth_scheme=scheme)
    _client, error, pending = submit_all(
        netwrix(server, "auto", "u", "wrong"), BATCH, [make_record(i) for i in range(5)]
    )
    assert isinstance(error, AuthError) and len(pending) == 5 and server.emulator.store.total == 0
