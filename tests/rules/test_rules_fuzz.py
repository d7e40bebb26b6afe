"""Arbitrary bytes through parser, built-in rules and rendering: nothing escapes but a counted RenderError."""

from __future__ import annotations

import functools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingestor.encoding import XmlEncoder
from ingestor.errors import RenderError
from ingestor.records import ActivityRecord, record_fields
from parsers.rules.engine import RuleSet
from parsers.rules.loader import load_ruleset
from parsers.syslog import parse_syslog


@functools.cache
def rules() -> RuleSet:
    return load_ruleset()


# Headers that lead into the rules' regexes, so the fuzzed tail reaches them.
HEADERS = [
    b"",
    b"<86>Mar  4 10:00:01 h sudo: ",
    b"<86>Mar  4 10:00:01 h sudo:  alice : ",
    b"<86>Mar  4 10:00:01 h sshd[1]: ",
    b"<86>Mar  4 10:00:01 h sshd[1]: Failed password for ",
    b"<86>Mar  4 10:00:01 h su[1]: ",
    b"<86>Mar  4 10:00:01 h su(pam_unix)[1]: ",
    b"<86>Mar  4 10:00:01 h useradd[1]: new user: name=",
    b"<86>Mar  4 10:00:01 h usermod[1]: change user '",
    b"<189>1: r: *Mar  1 00:00:00.000 UTC: %SYS-5-CONFIG_I: Configured from ",
    b"<189>1: r: *Mar  1 00:00:00.000 UTC: %SEC-6-IPACCESSLOGP: list ",
    b"<189>1: r: *Mar  1 00:00:00.000 UTC: IKEv2-ERROR:",
    b"<189>1: r: *Mar  1 00:00:00.000 UTC: AAA/ATTR(",
    b"<86>1 2026-01-01T00:00:00Z h sudo - - - ",
]
TAILS = st.one_of(
    st.binary(max_size=300),
    st.text(alphabet=st.sampled_from(list("ab :;=()[]'%/.-_\\0123456789\x00\ufffd\U0001f600&<>\r")), max_size=300).map(
        lambda s: s.encode("utf-8", "surrogatepass")
    ),
)


def _through(raw: bytes) -> ActivityRecord | None:
    message = parse_syslog(raw, source="192.0.2.1")
    match = rules().match(message)
    if match is None:
        return None
    try:
        record = match.render({"DataSource": "fuzz"})
    except RenderError as exc:
        assert exc.rule_id == match.rule.id
        with pytest.raises(RenderError):  # the per-message path refuses the same line
            match.wire({"DataSource": "fuzz"})
        return None
    wire = match.wire({"DataSource": "fuzz"})
    assert (wire is None) == (record is None)
    if record is not None:  # the per-message path gives the same record, to the byte
        assert wire == record_fields(record)
        assert XmlEncoder().encode_fields(wire) == XmlEncoder().encode(record)
        assert XmlEncoder().encode_core(match.core({"DataSource": "fuzz"})) == XmlEncoder().encode(record)
    return record


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header=st.sampled_from(HEADERS), tail=TAILS)
def test_any_bytes_give_a_record_none_or_a_counted_render_error(header: bytes, tail: bytes) -> None:
    record = _through(header + tail)
    if record is not None:
        assert record.Who and record.What and record.Where
        assert len(record.Who) <= 255
        # Built without a second validation pass, it must equal what validation makes of it.
        assert ActivityRecord.model_validate(record.model_dump()) == record


def test_a_huge_line_is_bounded_and_still_mapped() -> None:
    line = b"<86>Mar  4 10:00:01 h sudo:  alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/echo " + b"A" * 65_000
    record = _through(line)
    assert record is not None and record.Who == "alice"


def test_an_overlong_user_is_cut_to_the_schema_limit() -> None:
    record = _through(
        b"<86>Mar  4 10:00:01 h sshd[1]: Failed password for " + b"u" * 400 + b" from 192.0.2.1 port 1 ssh2"
    )
    assert record is not None and len(record.Who) == 255
