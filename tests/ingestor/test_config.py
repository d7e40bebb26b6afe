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


# --- Fuzzing the loaders: whatever the file holds, a configuration or a ConfigError naming it.

_KEYS = ["listeners", "netwrix", "url", "auth", "password", "tls", "mode", "spool", "path", "batching",
         "linger", "max_in_memory", "rules", "paths", "sources", "cidr", "timezone", "metrics", "listen",
         "pack", "id", "match", "regex", "record", "Who", "details", "examples", "line", "x"]  # fmt: skip
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
