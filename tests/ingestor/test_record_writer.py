"""Compiled record writers give the reference path's bytes (or its RenderError) for any input."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ingestor import record_writer
from ingestor.errors import RenderError
from ingestor.netwrix.encoding import JsonEncoder, XmlEncoder
from ingestor.netwrix.records import RecordDefaults
from ingestor.pipeline import Pipeline
from ingestor.record_writer import Writer, reference_writer, writer_for
from parsers.rules.engine import Match, Rule, RuleSet, build_ruleset, compile_pack
from parsers.rules.loader import builtin_dir, load_ruleset
from parsers.syslog import Message, parse_syslog
from parsers.yamlfile import load_yaml

DEFAULTS = [
    RecordDefaults(),
    RecordDefaults.from_mapping({"DataSource": "Sys & log"}),
    RecordDefaults.from_mapping(
        {
            "DataSource": "d",
            "MonitoringPlan": {"Name": "<plan>", "ID": "7"},
            "Item": {"Name": "i"},
            "IsArchiveOnly": True,
        }
    ),
]

# Rules in every shape the generator handles: filters, alternatives, defaults, a templated
# Action and detail name, before and after, a Workstation of its own, groups that shadow message
# fields, no regex at all, a drop rule.
SHAPES = r"""
pack: shapes
data_source: Pack & source
rules:
  - id: shapes.filters
    description: templates with filters, alternatives and defaults
    match: {program: app, regex: '^f (?P<user>\S*) (?P<other>\S*) (?P<what>.*)$'}
    record:
      Who: "{user|or:other|upper}"
      Action: Modified
      What: "{what|default:nothing} on {host|lower}"
      ObjectType: "Thing ({other|default:x})"
      Workstation: "{other}"
    details:
      "{other|default:prop}": {before: "{user}", after: "{what|strip}"}
      fixed: {before: "{user|default:}", after: "{other}"}
      plain: "{what}"
    examples: [{line: "x", unmatched: true}]
  - id: shapes.action
    description: the Action from the message
    match: {program: act, regex: '^a (?P<action>[^:]*):(?P<user>[^:]*):(?P<source>[^:]*):(?P<host>.*)$'}
    record: {Who: "{user}", Action: "{action}", What: "{host}", ObjectType: "{source}", Where: "{host}"}
    examples: [{line: "x", unmatched: true}]
  - id: shapes.workstation
    description: a Workstation of its own, and a group that shadows the message's source
    match: {program: ws, regex: '^(?P<ws>[^:]*):(?P<source>.*)$'}
    record: {Who: "{program}", Action: Read, What: "{ws|default:none}", ObjectType: t, Workstation: "{ws}"}
    examples: [{line: "x", unmatched: true}]
  - id: shapes.noregex
    description: no regex, only message fields
    match: {program: bare}
    record:
      Who: "{pid|default:nobody}"
      Action: Read
      What: "{program}"
      ObjectType: "{hostname|default:none}"
      Where: "{host}"
    details: {mnemonic: "{mnemonic}", source: "{source}"}
    examples: [{line: "x", unmatched: true}]
  - id: shapes.longname
    description: a detail name over the 255-character cap (left to the reference writer)
    match: {program: long}
    record: {Who: "{program}", Action: Read, What: w, ObjectType: t}
    details: {LONGNAME: "{source}"}
    examples: [{line: "x", unmatched: true}]
  - id: shapes.drop
    description: dropped
    match: {program: quiet}
    drop: true
    examples: [{line: "x", unmatched: true}]
"""


@functools.cache
def shapes() -> RuleSet:
    return build_ruleset([compile_pack(load_yaml("shapes.yaml", SHAPES.replace("LONGNAME", "n" * 300)))])


@functools.cache
def builtin() -> RuleSet:
    return load_ruleset()


def outcome(write, match: Match) -> bytes | str | None:  # type: ignore[no-untyped-def]
    try:
        return write(match)
    except RenderError as exc:
        return f"RenderError: {exc}"


def assert_same(match: Match) -> None:
    """Every defaults set: the rule's writer and the reference writer agree."""
    encoder = XmlEncoder()
    for defaults in DEFAULTS:
        write = writer_for(match.rule, encoder, defaults)
        assert outcome(write, match) == outcome(reference_writer(encoder, defaults), match)


TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("ab Z:;=()[]'\"%/.-_{}\\0123456789&<>\r\n\t\x00\x1f\ufffe\ufffd\U0001f600")),
        st.characters(codec="utf-8"),
    ),
    max_size=40,
) | st.text(alphabet="uvw", min_size=250, max_size=300)
PLAIN_WORD = st.text(alphabet=st.sampled_from(list("abZ09.-_")), max_size=12)
WORD = (
    PLAIN_WORD
    | st.text(alphabet=st.sampled_from(list("abZ&<>\r\x01\ufffe.-_:")), max_size=12)
    | st.text(alphabet="h", min_size=254, max_size=258)
)
ZONES = st.sampled_from([UTC, timezone(timedelta(hours=2)), None])


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    program=st.sampled_from(["app", "act", "ws", "bare", "long", "quiet"]),
    host=st.sampled_from([None, "sw-01.example", "10.0.0.1", "h" * 256]) | WORD,
    words=st.lists(WORD, min_size=3, max_size=3),
    rest=TEXT,
    action=st.sampled_from(["Modified", "modified", "Read", "Bogus", "", "Add (Failed Attempt)"]),
    pid=st.sampled_from([None, "42"]) | WORD,
    zone=ZONES,
)
def test_every_shape_writes_what_the_reference_writes(
    program: str, host: str | None, words: list[str], rest: str, action: str, pid: str | None, zone: timezone | None
) -> None:
    message = shape_message(program, host, words, rest, action, pid)
    if zone is None and message.timestamp is not None:
        message.timestamp = message.timestamp.replace(tzinfo=None)  # a naive time: RenderError
    match = shapes().match(message)
    if match is not None:
        assert_same(match)
        event(match.rule.id)


def shape_message(program: str, host: str | None, words: list[str], rest: str, action: str, pid: str | None) -> Message:
    a, b, c = words
    text = {
        "app": f"f {a} {b} {rest}",
        "act": f"a {action}:{a}:{b}:{c}{rest}",
        "ws": f"{a}{rest}:{b}",
    }.get(program, rest)
    tag = program if pid is None else f"{program}[{pid}]"
    head = "Mar  4 10:00:01 " if host is None else f"Mar  4 10:00:01 {host} "
    raw = f"{head}{tag}: {text}".encode("utf-8", "surrogatepass")
    return parse_syslog(raw, source=f"192.0.2.{len(rest)}:514")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    program=st.sampled_from(["app", "act", "ws", "bare"]),
    host=st.none() | PLAIN_WORD,
    words=st.lists(PLAIN_WORD, min_size=3, max_size=3),
    rest=PLAIN_WORD,
    action=st.sampled_from(["Modified", "Read", "Add (Failed Attempt)"]),
    pid=st.none() | PLAIN_WORD,
)
def test_plain_text_takes_the_compiled_route(
    program: str, host: str | None, words: list[str], rest: str, action: str, pid: str | None
) -> None:
    """Where the reference makes a record of plain text, the compiled route makes it alone: a
    compiled writer that fell back for nothing would hide its mistakes behind the reference."""
    match = shapes().match(shape_message(program, host, words, rest, action, pid))
    if match is None:
        return
    encoder = XmlEncoder()
    for defaults in DEFAULTS:
        reference = reference_writer(encoder, defaults)
        expected = outcome(reference, match)
        fell_back: list[Match] = []

        def spy(match: Match, reference: Writer = reference, fell_back: list[Match] = fell_back) -> bytes | None:
            fell_back.append(match)
            return reference(match)

        write = record_writer._compile(match.rule, encoder, defaults, spy)
        assert write is not None
        assert outcome(write, match) == expected
        assert not fell_back or not isinstance(expected, bytes)
        event(f"{match.rule.id}: {'compiled' if not fell_back else 'reference'}")


def golden_lines() -> list[bytes]:
    return [line for f in sorted(builtin_dir().glob("*/tests/*.log")) for line in f.read_bytes().splitlines()]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(line=st.sampled_from(golden_lines()), cut=st.integers(0, 400), insert=TEXT, replace=st.booleans())
def test_builtin_rules_write_what_the_reference_writes(line: bytes, cut: int, insert: str, replace: bool) -> None:
    text = line.decode("utf-8", "replace")
    cut = min(cut, len(text))
    end = text.find(" ", cut + 1) if replace else cut
    text = text[:cut] + insert + text[end if end >= 0 else len(text) :]
    match = builtin().match(parse_syslog(text.encode("utf-8", "surrogatepass"), source="198.51.100.7:514"))
    if match is not None:
        assert_same(match)


def test_every_golden_line_takes_the_compiled_route_and_gives_the_reference_bytes() -> None:
    encoder, defaults = XmlEncoder(), DEFAULTS[2]
    # The built-in rules are all in shapes the generator covers.
    assert all(hasattr(writer_for(rule, encoder, defaults), "source") for rule in builtin().rules if not rule.drop)
    checked = 0
    for line in golden_lines():
        match = builtin().match(parse_syslog(line, source="198.51.100.7:514"))
        if match is not None and not match.rule.drop:
            write = writer_for(match.rule, encoder, defaults)
            assert outcome(write, match) == outcome(reference_writer(encoder, defaults), match)
            checked += 1
    assert checked > 80


def test_rule_file_text_never_becomes_code() -> None:
    pack = r"""
pack: hostile
rules:
  - id: hostile.one
    description: literals that would be code if pasted into source
    match: {program: app, regex: '^(?P<user>\S+)'}
    record:
      Who: "{user}"
      Action: Read
      What: "\" + __import__('os').getcwd() + \""
      ObjectType: "{{v0}} {{format_when(when)}} ' \n"
    details: {"\"); import os; (\"": "{user}"}
    examples: [{line: "x", unmatched: true}]
"""
    (rule,) = compile_pack(load_yaml("hostile.yaml", pack))
    match = RuleSet((rule,)).match(parse_syslog(b"Mar  4 10:00:01 h app: alice", source="192.0.2.1"))
    assert match is not None
    write = writer_for(rule, XmlEncoder(), RecordDefaults())
    assert hasattr(write, "source") and "__import__" not in write.source and "v0}}" not in write.source
    fragment = write(match)
    assert fragment == reference_writer(XmlEncoder(), RecordDefaults())(match)
    assert b"<What>\" + __import__('os').getcwd() + \"</What>" in fragment
    assert b"<ObjectType>{v0} {format_when(when)} ' \n</ObjectType>" in fragment


def test_json_uses_the_reference_writer() -> None:
    rule = builtin().rules[0]
    write = writer_for(rule, JsonEncoder(), RecordDefaults())
    assert not hasattr(write, "source")


def _rule(what: str) -> Rule:
    text = f"""
pack: p
rules:
  - id: p.one
    description: d
    match: {{program: app}}
    record: {{Who: "{{program}}", Action: Read, What: {what}, ObjectType: t}}
    examples: [{{line: "x", unmatched: true}}]
"""
    (rule,) = compile_pack(load_yaml("p.yaml", text))
    return rule


def test_a_new_ruleset_gets_new_writers() -> None:
    pipeline = Pipeline(RuleSet((_rule("first"),)), XmlEncoder())
    raw, now = b"Mar  4 10:00:01 h app: x", datetime.now(UTC).timestamp()
    pipeline.handle(raw, "192.0.2.1:514", now)
    pipeline.ruleset = RuleSet((_rule("second"),))  # same id, another record: a reload
    pipeline.handle(raw, "192.0.2.1:514", now)
    first, second = pipeline.take()
    assert b"<What>first</What>" in first and b"<What>second</What>" in second


@pytest.mark.parametrize("defaults", DEFAULTS)
def test_the_pack_data_source_and_configured_fields_are_written(defaults: RecordDefaults) -> None:
    match = shapes().match(parse_syslog(b"Mar  4 10:00:01 h app: f alice bob did it", source="192.0.2.1"))
    assert match is not None
    fragment = writer_for(match.rule, XmlEncoder(), defaults)(match)
    assert fragment is not None
    expected = "Pack &amp; source" if defaults.DataSource is None else XmlEncoder.escape_text(defaults.DataSource)
    assert f"<DataSource>{expected}</DataSource>".encode() in fragment
