import sys

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ingestor.errors import ConfigError
from ingestor.netwrix.config import AuthConfig, BatchConfig, NetwrixConfig, TlsConfig
from ingestor.netwrix.sink import build_auth, error_list_text


def test_defaults_are_safe():
    config = NetwrixConfig()
    assert config.tls.mode == "system"  # never "no check" by default
    assert config.write_url == "https://localhost:9699/netwrix/api/v1/activity_records/"
    assert BatchConfig().max_batch_records == 1000
    assert BatchConfig().max_batch_bytes < 50_000_000


def test_json_format_adds_the_query_and_write_path_is_configurable():
    config = NetwrixConfig(url="https://nwx:9699/", format="json", write_path="/netwrix/api/v1/activity_records/write")
    assert config.write_url == "https://nwx:9699/netwrix/api/v1/activity_records/write?format=json"


@pytest.mark.parametrize("url", ["nwx:9699", "ftp://nwx", "https://"])
def test_bad_urls_are_refused(url):
    with pytest.raises(ValidationError, match="url"):
        NetwrixConfig(url=url)


def test_unknown_keys_are_refused():
    with pytest.raises(ValidationError, match="extra"):
        NetwrixConfig(urll="https://x")


def test_max_batch_records_cannot_exceed_the_documented_maximum():
    with pytest.raises(ValidationError):
        BatchConfig(max_batch_records=1001)


@pytest.mark.parametrize(
    ("given", "normalized"),
    [
        ("AB:CD:" + "EF:" * 17 + "01", "abcd" + "ef" * 17 + "01"),
        ("ab cd " + "ef " * 29 + "01", "abcd" + "ef" * 29 + "01"),
        ("a" * 64, "a" * 64),
    ],
)
def test_thumbprints_are_normalized(given, normalized):
    assert TlsConfig(mode="thumbprint", thumbprint=given).thumbprint == normalized


@pytest.mark.parametrize("bad", ["zz" * 20, "ab" * 19, "ab" * 33, ""])
def test_bad_thumbprints_are_refused_with_the_expected_form(bad):
    with pytest.raises(ValidationError, match="SHA-1"):
        TlsConfig(mode="thumbprint", thumbprint=bad)


def test_tls_modes_require_their_parameter():
    with pytest.raises(ValidationError, match="ca_file"):
        TlsConfig(mode="ca_file")
    with pytest.raises(ValidationError, match="thumbprint"):
        TlsConfig(mode="thumbprint")


def test_auth_needs_a_username_and_hides_the_password():
    with pytest.raises(ValidationError, match="username"):
        AuthConfig(method="basic")
    auth = AuthConfig(method="basic", username="u", password="hunter2")
    assert "hunter2" not in repr(auth) and "hunter2" not in str(NetwrixConfig(auth=auth))


def test_auth_objects():
    assert build_auth(AuthConfig(method="none")) is None
    assert isinstance(build_auth(AuthConfig(method="basic", username="u", password="p")), httpx.BasicAuth)
    assert isinstance(build_auth(AuthConfig(method="digest", username="u", password="p")), httpx.DigestAuth)


def test_ntlm_in_a_broken_install_is_a_config_error_naming_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "httpx_ntlm", None)  # makes the import fail
    with pytest.raises(ConfigError, match=r"pip install httpx-ntlm"):
        build_auth(AuthConfig(method="ntlm", username="DOMAIN\\u", password="p"))


@pytest.mark.parametrize(
    ("body", "content_type", "text"),
    [
        (
            b'<ErrorList xmlns="http://schemas.netwrix.com/api/v1/"><Error><Category>XMLError</Category>'
            b"<Description>bad Action</Description><Location>line 3</Location></Error></ErrorList>",
            "application/xml",
            "XMLError: bad Action (at line 3)",
        ),
        (b'{"ErrorList":[{"Category":"InputError","Description":"no Who"}]}', "application/json", "InputError: no Who"),
        (b"plain words", "text/plain", "plain words"),
        (b"", "text/plain", ""),
        (b"<unclosed", "application/xml", "<unclosed"),
    ],
)
def test_error_list_text(body, content_type, text):
    assert error_list_text(body, content_type) == text


# --- Who may connect: client certificates on tls:// listeners, rate limits per source.


@pytest.fixture
def tls_files(tmp_path):
    """Files where a listener's configuration names them (their content is server_context's to read)."""
    files = {}
    for name in ("cert_file", "key_file", "ca_file"):
        files[name] = tmp_path / f"{name}.pem"
        files[name].write_text("-----BEGIN CERTIFICATE-----\n")
    return files


def tls_listener(files, **keys):
    from ingestor.config import ListenerConfig

    return ListenerConfig(url="tls://0.0.0.0:6514", cert_file=files["cert_file"], key_file=files["key_file"], **keys)


def test_client_verification_defaults(tls_files):
    assert tls_listener(tls_files).verify_client == "none"
    with_ca = tls_listener(tls_files, ca_file=tls_files["ca_file"])
    assert (with_ca.verify_client, with_ca.permitted_peers) == ("required", ())
    assert tls_listener(tls_files, ca_file=tls_files["ca_file"], verify_client="optional").verify_client == "optional"


@pytest.mark.parametrize("scheme", ["udp", "tcp"])
@pytest.mark.parametrize(
    ("keys", "named"),
    [
        ({"ca_file": "CA"}, "ca_file"),
        ({"verify_client": "required"}, "verify_client"),
        ({"permitted_peers": ["*.example.com"]}, "permitted_peers"),
    ],
)
def test_client_certificate_keys_are_refused_on_udp_and_tcp(tls_files, scheme, keys, named):
    from ingestor.config import ListenerConfig

    keys = {k: tls_files["ca_file"] if v == "CA" else v for k, v in keys.items()}
    message = rf"{named}: client certificates are checked on tls:// listeners only, not on {scheme}://"
    with pytest.raises(ValidationError, match=message):
        ListenerConfig(url=f"{scheme}://0.0.0.0:514", **keys)
    assert ListenerConfig(url=f"{scheme}://0.0.0.0:514", verify_client="none").verify_client == "none"


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"verify_client": "required"}, r"verify_client required needs ca_file"),
        ({"verify_client": "optional"}, r"verify_client optional needs ca_file"),
        ({"permitted_peers": ["sw1.example.net"]}, r"permitted_peers needs ca_file"),
        ({"ca_file": "CA", "verify_client": "none"}, r"ca_file with verify_client none: no client certificate"),
        ({"ca_file": "missing"}, r"ca_file: \S+missing is not a readable file"),
        ({"ca_file": "CA", "verify_client": "sometimes"}, r"verify_client\n  Input should be 'required', 'optional'"),
        ({"ca_file": "CA", "permitted_peers": ["sha256:AB:CD"]}, r"'sha256:AB:CD' is not a SHA-256 fingerprint"),
        ({"ca_file": "CA", "permitted_peers": ["sha256:" + "g" * 64]}, r"is not a SHA-256 fingerprint"),
        ({"ca_file": "CA", "permitted_peers": [""]}, r"'' is neither a name pattern nor a sha256: fingerprint"),
        ({"ca_file": "CA", "permitted_peers": ["two words"]}, r"neither a name pattern"),
    ],
)
def test_bad_client_verification_settings_are_refused_precisely(tls_files, tmp_path, keys, message):
    keys = {k: tls_files["ca_file"] if v == "CA" else tmp_path / v if v == "missing" else v for k, v in keys.items()}
    with pytest.raises(ValidationError, match=message):
        tls_listener(tls_files, **keys)


def test_permitted_peers_are_normalized(tls_files):
    digest = "AB:" * 31 + "CD"
    listener = tls_listener(
        tls_files, ca_file=tls_files["ca_file"], permitted_peers=["*.Devices.Example.NET", f"SHA256:{digest}"]
    )
    assert listener.permitted_peers == ("*.devices.example.net", "sha256:" + "ab" * 31 + "cd")


def test_a_bad_listener_in_a_file_is_a_config_error_at_its_line(tmp_path, tls_files):
    from ingestor.config import load_service_config

    path = tmp_path / "nwsyslog.yaml"
    path.write_text(f"listeners:\n  - url: udp://0.0.0.0:514\n    ca_file: {tls_files['ca_file']}\n")
    with pytest.raises(ConfigError) as caught:
        load_service_config(path)
    # The line of the key the reason names (ca_file), within the listener it is about.
    assert caught.value.key == "listeners[0]" and caught.value.line == 3
    assert caught.value.reason.startswith(
        "ca_file: client certificates are checked on tls:// listeners only, not on udp://"
    )


def test_rate_limits_per_source():
    from ingestor.config import SourceConfig

    source = SourceConfig(cidr="10.0.0.0/8", rate_limit={"messages_per_second": 50, "burst": 200})
    assert source.rate_limit is not None
    assert (source.rate_limit.messages_per_second, source.rate_limit.burst) == (50.0, 200)
    assert SourceConfig(cidr="10.0.0.0/8").rate_limit is None, "off by default"
    for bad, message in [
        ({"messages_per_second": 0, "burst": 10}, "greater than 0"),
        ({"messages_per_second": 10, "burst": 0}, "greater than or equal to 1"),
        ({"messages_per_second": 10}, r"burst\n  Field required"),
        ({"messages_per_second": 10, "burst": 5, "per": "minute"}, "Extra inputs are not permitted"),
    ]:
        with pytest.raises(ValidationError, match=message):
            SourceConfig(cidr="10.0.0.0/8", rate_limit=bad)


# --- Fuzzing the loaders: whatever the file holds, a configuration or a ConfigError naming it.

_KEYS = ["listeners", "netwrix", "url", "auth", "password", "tls", "mode", "spool", "path", "batching",
         "linger", "max_in_memory", "rules", "paths", "sources", "cidr", "timezone", "metrics", "listen",
         "pack", "id", "match", "regex", "record", "Who", "details", "examples", "line", "x", "ca_file",
         "verify_client", "permitted_peers", "rate_limit", "messages_per_second", "burst"]  # fmt: skip
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
    st.text(max_size=20), st.sampled_from(["udp://127.0.0.1:0", "tcp://[::1]:99999", "{user}", "(?P<a>", "*"]),
)  # fmt: skip
_DOCS = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(_KEYS), inner, max_size=5)),
    max_leaves=25,
)


def _load_both(tmp_path, text: str) -> None:
    from ingestor.config import load_service_config
    from parsers.rules.loader import load_ruleset

    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_service_config(path)
    except ConfigError as exc:
        assert str(exc).startswith(str(path)), exc
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "pack.yaml").write_text(text, encoding="utf-8")
    try:
        load_ruleset([rules], builtin=False)
    except ConfigError as exc:
        assert str(exc).startswith(str(rules / "pack.yaml")), exc


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=_DOCS)
def test_any_yaml_document_is_a_configuration_or_a_config_error_naming_the_file(tmp_path, doc) -> None:
    _load_both(tmp_path, yaml.safe_dump(doc, allow_unicode=True))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=300))
def test_any_text_is_a_configuration_or_a_config_error_naming_the_file(tmp_path, text) -> None:
    _load_both(tmp_path, text)
