"""Arbitrary bytes through parser, built-in rules and rendering: nothing escapes but a counted RenderError."""

from __future__ import annotations

import functools
import re

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingestor.errors import RenderError
from ingestor.netwrix.encoding import XmlEncoder
from ingestor.netwrix.records import ActivityRecord, record_fields
from parsers.rules.engine import MAX_REGEX_INPUT, Rule, RuleSet, build_ruleset, compile_pack
from parsers.rules.loader import builtin_dir, load_ruleset
from parsers.syslog import Message, parse_syslog
from parsers.yamlfile import load_yaml
from tests.conftest import find_corpus


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


def linear_match(ruleset: RuleSet, message: Message) -> Rule | None:
    """The rule the engine must pick, found the slow way: every rule in file order (fallback
    rules last, and within each part rules naming the message's full FAC-SEV-MNEMONIC before
    the others), every condition checked as the rule file states it. (Called after the engine's
    match, on the message as that left it: a headerless line with its rule's program, a line
    read again whole with its new text.)"""
    mnemonic = message.mnemonic
    # A lower-cased Cisco line (an all-lower-case mnemonic): only the rules keyed on a
    # mnemonic, every key, literal and regex without case.
    folded = mnemonic is not None and mnemonic.islower()
    rules = [r for r in ruleset.rules if r.mnemonics] if folded else list(ruleset.rules)

    def keys(values: frozenset[str]) -> set[str]:
        return {v.lower() for v in values} if folded else set(values)

    order = {id(r): i for i, r in enumerate(rules)}
    ordered = sorted(rules, key=lambda r: (r.fallback, mnemonic not in keys(r.mnemonics), order[id(r)]))
    for rule in ordered:
        if rule.programs and message.program not in keys(rule.programs):
            continue
        mnemonics = keys(rule.mnemonics)
        if mnemonics and not (mnemonic and (mnemonic in mnemonics or mnemonic.rpartition("-")[2] in mnemonics)):
            continue
        if rule.facilities and message.facility not in rule.facilities:
            continue
        if rule.families and message.family not in rule.families:
            continue
        if rule.contains and not any((c.lower() if folded else c) in message.text for c in rule.contains):
            continue
        regex = rule.regex
        if regex is not None and folded:
            regex = re.compile(regex.pattern, regex.flags | re.IGNORECASE)
        if regex is not None and regex.search(message.text, 0, MAX_REGEX_INPUT) is None:
            continue
        return rule
    return None


@functools.cache
def real_lines() -> list[bytes]:
    corpus = find_corpus()
    files = sorted(builtin_dir().glob("*/tests/*.log")) + sorted(corpus.rglob("*.log"))
    return [line for f in files for line in f.read_bytes().splitlines() if line.strip()]


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(index=st.integers(min_value=0), cut=st.integers(0, 300), insert=TAILS)
def test_the_index_picks_the_rule_a_linear_scan_picks(index: int, cut: int, insert: bytes) -> None:
    """Indexing, merged candidate lists, literal prefilters and the checks they make redundant
    change how fast a rule is found, never which."""
    lines = real_lines()
    line = lines[index % len(lines)]
    message = parse_syslog(line[:cut] + insert + line[cut:], source="192.0.2.1")
    match = rules().match(message)
    assert (match.rule if match else None) is linear_match(rules(), message)


def test_every_real_line_gets_the_rule_a_linear_scan_picks() -> None:
    for line in real_lines():
        message = parse_syslog(line, source="192.0.2.1")
        match = rules().match(message)
        assert (match.rule if match else None) is linear_match(rules(), message), line


# Small rule sets over a tiny alphabet, so that every condition (index keys, `contains`, the
# regex's required literals) is often the one that decides.
RULE_SPECS = st.lists(
    st.fixed_dictionaries(
        {
            "program": st.sampled_from([None, "a", "b"]),
            "mnemonic": st.sampled_from([None, "X-5-Y", "Y"]),
            "contains": st.lists(st.sampled_from(["x", "yy", "x y", "zx", "tally"]), max_size=2),
            "regex": st.sampled_from([None, "x", "yy", "x y+", "(?:zx|yx) ", "(?:x y|pam_tally)", "^z", "y$"]),
            "fallback": st.booleans(),
        }
    ),
    min_size=1,
    max_size=8,
)


def spec_ruleset(specs: list[dict[str, object]]) -> RuleSet:
    rules = []
    for i, spec in enumerate(specs):
        match = {k: spec[k] for k in ("program", "mnemonic", "contains", "regex") if spec[k]}
        if not match:
            match = {"contains": ["x"]}
        rules.append(
            {
                "id": f"r{i}",
                "description": "generated",
                "match": match,
                "fallback": spec["fallback"],
                "record": {"Action": "Read", "ObjectType": "t", "Who": "w", "What": f"r{i}"},
                "examples": [{"line": "q", "unmatched": True}],
            }
        )
    return build_ruleset([compile_pack(load_yaml("gen.yaml", yaml.safe_dump({"pack": "gen", "rules": rules})))])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    specs=RULE_SPECS,
    texts=st.lists(st.text(alphabet="xyz pamtl_", max_size=14), min_size=1, max_size=8),
    program=st.sampled_from(["a", "b", "c"]),
    mnemonic=st.sampled_from(["", "%X-5-Y: ", "%Q-5-Y: ", "%X-5-Z: "]),
)
def test_generated_rules_pick_what_a_linear_scan_picks(
    specs: list[dict[str, object]], texts: list[str], program: str, mnemonic: str
) -> None:
    ruleset = spec_ruleset(specs)
    for text in texts:
        message = parse_syslog(f"<13>Jan  1 00:00:00 h {program}[1]: {mnemonic}{text}".encode(), source="192.0.2.1")
        match = ruleset.match(message)
        assert (match.rule if match else None) is linear_match(ruleset, message), (text, message.mnemonic)


def test_contains_is_checked_unless_every_literal_alternative_implies_it() -> None:
    # Only one of the regex's alternatives holds one of the `contains` literals: a text with the
    # other must still pass the `contains` test, so it does not match.
    spec = {
        "program": "a",
        "mnemonic": None,
        "contains": ["tally", "zz"],
        "regex": "(?:x y|pam_tally)",
        "fallback": False,
    }
    ruleset = spec_ruleset([spec])
    assert ruleset.match(parse_syslog(b"<13>Jan  1 00:00:00 h a[1]: x y", source="192.0.2.1")) is None
    assert ruleset.match(parse_syslog(b"<13>Jan  1 00:00:00 h a[1]: pam_tally", source="192.0.2.1")) is not None


def test_a_rule_naming_the_full_mnemonic_wins_over_an_earlier_rule_for_any_message() -> None:
    # Found by the generated-rules test: with no rule keyed on the bare mnemonic or the program,
    # the full mnemonic's list was in plain file order.
    anywhere = {"program": None, "mnemonic": None, "contains": ["x"], "regex": None, "fallback": False}
    named = {"program": None, "mnemonic": "X-5-Y", "contains": [], "regex": None, "fallback": False}
    ruleset = spec_ruleset([anywhere, named])
    message = parse_syslog(b"<13>Jan  1 00:00:00 h a[1]: %X-5-Y: x", source="192.0.2.1")
    match = ruleset.match(message)
    assert match is not None and match.rule.id == "r1"
    assert linear_match(ruleset, message) is match.rule
