import pytest
from hypothesis import given
from hypothesis import strategies as st

from parsers.template import Template, TemplateError


@pytest.mark.parametrize(
    ("source", "fields", "text"),
    [
        ("{user}", {"user": "alice"}, "alice"),
        ("running-config", {}, "running-config"),
        ("{command} (as {runas})", {"command": "/bin/ls", "runas": "root"}, "/bin/ls (as root)"),
        ("{host|lower}", {"host": "Core-SW1"}, "core-sw1"),
        ("{host|strip|upper}", {"host": "  sw1 "}, "SW1"),
        ("{rhost|default:-}", {}, "-"),
        ("{rhost|default:console}", {"rhost": ""}, "console"),
        ("{tty|default:none|upper}", {}, "NONE"),
        ("{{literal}} {x}", {"x": "1"}, "{literal} 1"),
        ("{sd.origin.ip}", {"sd.origin.ip": "192.0.2.1"}, "192.0.2.1"),
        # auditd's hex values decode; text that only looks like hex (or is not printable) stays.
        ("{cmd|unhex}", {"cmd": "6C73202D6C"}, "ls -l"),
        ("{acct|or:hex|unhex}", {"hex": "28696E76616C6964207573657229"}, "(invalid user)"),
        ("{acct|unhex}", {"acct": "cafe"}, "cafe"),
        ("{acct|unhex}", {"acct": "0a0d"}, "0a0d"),
        ("{acct|unhex}", {"acct": "abc"}, "abc"),
        ("{addr|unhex}", {"addr": "192.0.2.1"}, "192.0.2.1"),
        # A user id where a name belongs: uid 0 is root, another bare number a uid, names stay.
        ("{by|account}", {"by": "0"}, "root"),
        ("{a|or:b|account}", {"b": "auid=0"}, "root"),
        ("{u|account}", {"u": "id=0"}, "root"),
        ("{by|account}", {"by": "1000"}, "uid=1000"),
        ("{u|account}", {"u": "uid=1000"}, "uid=1000"),
        ("{u|account}", {"u": "alice"}, "alice"),
        ("{u|account}", {"u": "pid=0"}, "pid=0"),
        ("{u|account|default:unknown}", {}, "unknown"),
        ("", {}, ""),
    ],
)
def test_render(source, fields, text):
    assert Template(source).render(fields) == text


def test_a_missing_field_without_default_gives_none():
    assert Template("{user} on {tty}").render({"user": "alice"}) is None
    assert Template("{user}").render({"user": ""}) is None


def test_fields_lists_the_names_the_template_needs():
    assert Template("{a} {b|lower} {c|default:x} text").fields == {"a", "b", "c"}


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{user", "brace"),
        ("user}", "brace"),
        ("{}", "brace"),
        ("{user|shout}", "unknown filter 'shout'"),
        ("{1user}", "brace"),
    ],
)
def test_bad_templates_fail_at_compile_time_with_a_column(source, message):
    with pytest.raises(TemplateError, match=message) as info:
        Template(source)
    assert info.value.column >= 1


@given(st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=50))
def test_text_without_braces_renders_as_itself(text):
    assert Template(text).render({}) == text


@given(st.dictionaries(st.sampled_from(["a", "b"]), st.text(min_size=1, max_size=20)))
def test_render_never_raises_on_any_captured_values(fields):
    result = Template("{a|upper}-{b|default:none}").render(fields)
    assert result is None or result.endswith(fields.get("b", "none"))


@given(st.text(min_size=1).filter(str.isprintable))
def test_unhex_reads_back_any_printable_text_auditd_encoded(text):
    assert Template("{v|unhex}").render({"v": text.encode().hex().upper()}) == text


@pytest.mark.parametrize(
    ("tag", "service"),
    [
        ("pop(pam_unix)", "pop"),
        ("sshd(pam_unix)", "sshd"),
        ("crond(pam_unix)", "crond"),
        ("sshd", "sshd"),
        ("(pam_unix)", "(pam_unix)"),
        ("java(main)", "java(main)"),
        ("gdm(pam_unix", "gdm(pam_unix"),
    ],
)
def test_service_takes_the_service_out_of_an_old_pam_tag_only(tag, service):
    assert Template("{program|or:other|service}").render({"program": tag}) == service
