"""Literal text every match of a regex must contain, found at load time.

`"literal" in text` is a single C scan, several times cheaper than a regex search that fails,
so the rule engine tests a rule's required literals before running its regex: a line without
`"Accepted "` never reaches `Accepted (?P<method>\\S+) for (?P<user>\\S+)`. The result is a tuple
of alternatives, one of which every match contains: `("Accepted ",)`, or for
`^(?:Connection closed by|Disconnected from) ...` one literal per branch. Only text that is
certainly part of a match counts: optional, repeated and case-insensitive parts are skipped, so
the check can only exclude lines the regex cannot match.
"""

from __future__ import annotations

import re
from re import _constants as sre_constants  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

MIN_LENGTH = 3  # shorter literals are in too many lines to be worth a scan

Literals = tuple[str, ...]  # one of these is in every match


def required_literals(pattern: str, flags: int = 0) -> tuple[str | None, Literals | None]:
    """What every match of `pattern` contains: the longest single literal, and the best set of
    alternatives (one of which is in every match); each None when there is none of at least
    MIN_LENGTH characters. Both may be tested: they come from different parts of the pattern."""
    try:
        parsed = sre_parse.parse(pattern, flags)
    except (re.error, RecursionError):
        return None, None
    if parsed.state.flags & re.IGNORECASE:
        return None, None
    candidates = _candidates(list(parsed))
    single = max((alts[0] for alts in candidates if len(alts) == 1), key=len, default="")
    several = [alts for alts in candidates if len(alts) > 1 and min(map(len, alts)) >= MIN_LENGTH]
    best = max(several, key=lambda alts: (min(map(len, alts)), -len(alts)), default=None)
    return (single if len(single) >= MIN_LENGTH else None), best


def _candidates(items: list[tuple[Any, Any]]) -> list[Literals]:
    candidates: list[Literals] = []
    current: list[str] = []
    _walk(items, candidates, current)
    candidates.append(("".join(current),))
    return candidates


def _best(items: list[tuple[Any, Any]]) -> Literals | None:
    """The best candidate of a sequence: the one whose shortest alternative is longest."""
    best = max(_candidates(items), key=lambda alts: (min(map(len, alts)), -len(alts)))
    return best if min(map(len, best)) >= MIN_LENGTH else None


def _walk(items: list[tuple[Any, Any]], candidates: list[Literals], current: list[str]) -> None:
    """Extend `current` while items are required literals; at anything else close it as a
    candidate. A required alternation adds one candidate with an alternative per branch."""
    for op, arg in items:
        if op is sre_constants.LITERAL:
            current.append(chr(arg))
        elif op is sre_constants.SUBPATTERN and not arg[1] & re.IGNORECASE:
            _walk(list(arg[-1]), candidates, current)  # a plain group: its items are required in sequence
        elif op is sre_constants.AT or op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
            continue  # zero-width: the literal text around it stays adjacent
        else:
            candidates.append(("".join(current),))
            current.clear()
            if op is sre_constants.BRANCH:
                branches = [_best(list(branch)) for branch in arg[1]]
                if all(b is not None for b in branches):
                    candidates.append(tuple(dict.fromkeys(lit for b in branches if b for lit in b)))
