"""The literals the rule engine scans for before running a regex must be in every match."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parsers.required_literal import required_literals
from parsers.rules.loader import load_ruleset

BUILTIN_PATTERNS = sorted({rule.regex.pattern for rule in load_ruleset().rules if rule.regex is not None})
HANDPICKED = [
    r"^Accepted (?P<method>\S+) for (?P<user>\S+)",
    r"^(?:Connection (?:closed|reset) by|Disconnected from) (?P<host>\S+)",
    r"(?:abc)?defgh(?:ij|kl)mno",
    r"x(?:opt)*yz",
    r"(?i)Failed password",
    r"pre(?i:CASE)post",
    r"(?:one|two|three) then four",
    r"a|b",
    r"\bword\b boundary",
]


@pytest.mark.parametrize(
    ("pattern", "single", "several"),
    [
        (r"^Accepted (?P<m>\S+) for (?P<u>\S+)", "Accepted ", None),
        (r"^(?:Connection (?:closed|reset) by|Disconnected from) x", None, ("Connection ", "Disconnected from")),
        (r"x(?:opt)*yzw", "yzw", None),
        (r"(?i)Failed password", None, None),
        (r"pre(?i:CASE)post", "post", None),
        (r"ab(?=c)cd", "abcd", None),
        (r"a|b", None, None),
    ],
)
def test_what_is_found(pattern: str, single: str | None, several: tuple[str, ...] | None) -> None:
    assert required_literals(pattern) == (single, several)


@pytest.mark.parametrize("pattern", BUILTIN_PATTERNS + HANDPICKED)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_every_match_contains_the_literals(pattern: str, data: st.DataObject) -> None:
    text = data.draw(st.from_regex(re.compile(pattern)))
    match = re.search(pattern, text)
    assert match is not None
    single, several = required_literals(pattern)
    if single is not None:
        assert single in match.group(0)
    if several is not None:
        assert any(alternative in match.group(0) for alternative in several)
