import re

import pytest

from parsers.regex_safety import UnsafeRegex, compile_safe


@pytest.mark.parametrize(
    "pattern",
    [
        r"Configured from (?P<via>\S+) by (?P<user>\S+)",
        r"^Accepted (?P<method>\w+) for (?P<user>\S+) from (?P<ip>[\d.]+) port \d+",
        r"(?:\w+\s)*\w+",
        r"(\d{1,3}\.){3}\d{1,3}",
        r"(?>\w+\s?)+$",  # atomic: no backtracking into the body
        r"a{2,5}(b+)",
        r"(?=.*user)(?P<all>.*)",
    ],
)
def test_ordinary_rule_regexes_compile(pattern):
    assert isinstance(compile_safe(pattern), re.Pattern)


@pytest.mark.parametrize(
    "pattern",
    [r"(a+)+b", r"(\w+\s?)*$", r"(.*,)*x", r"((ab)*c)*d", r"(?:x|(y+))+z", r"(a{1,100})+", r"(?=(a+)+)b"],
)
def test_nested_unbounded_repeats_are_rejected_with_advice(pattern):
    with pytest.raises(UnsafeRegex, match="nests an unbounded repeat"):
        compile_safe(pattern)


@pytest.mark.parametrize(("pattern", "where"), [("(unclosed", "position 0"), ("a{2,1}", "position")])
def test_invalid_regexes_say_where(pattern, where):
    with pytest.raises(UnsafeRegex, match=where):
        compile_safe(pattern)


@pytest.mark.parametrize(
    "pattern",
    [r"(?:\w+\s)*\w+", r"(\w+\s)*\w+", r"((\d+)\.)+\d+", r"(?:[^,]+,)*[^,]*", r"(?:\d+\.)+\d+", r"(?:[a-z]+-)+[a-z]+"],
)
def test_nested_repeats_separated_by_a_character_they_cannot_take_are_allowed(pattern):
    assert isinstance(compile_safe(pattern), re.Pattern)
