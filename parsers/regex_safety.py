"""Load-time safety check for rule regexes.

Python's `re` has no evaluation timeout, so a rule regex that backtracks catastrophically could
stall the service on one crafted line. The classic exponential shape is an unbounded repeat
inside another unbounded repeat: `(a+)+`, `(\\w+\\s?)*`, `(.*,)*`. `compile_safe()` parses the
pattern with the standard library's own parser and rejects that shape, at load time, with the
offending fragment. (The rule engine also caps the text a regex sees, which bounds the remaining
polynomial cases.)
"""

from __future__ import annotations

import re

# The standard library's own regex parser and compiler (Python 3.11+ layout).
from re import _compiler as sre_compiler  # type: ignore[attr-defined]
from re import _constants as sre_constants  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

_REPEATS = {sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT, getattr(sre_constants, "POSSESSIVE_REPEAT", None)}
_UNBOUNDED = 64  # a repeat allowing more than this many iterations counts as unbounded


class UnsafeRegex(ValueError):
    """A regex that is invalid, or that could backtrack catastrophically."""


def compile_safe(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """Compile `pattern`, or raise UnsafeRegex saying what is wrong and where."""
    try:
        compiled = re.compile(pattern, flags)
    except re.error as exc:
        where = f" at position {exc.pos}" if exc.pos is not None else ""
        raise UnsafeRegex(f"invalid regex{where}: {exc.msg}") from None
    parsed = sre_parse.parse(pattern, flags)
    _check(list(parsed), pattern)
    return compiled


_SINGLE = {sre_constants.LITERAL, sre_constants.NOT_LITERAL, sre_constants.IN, sre_constants.ANY}
_PROBES = "".join(map(chr, range(0x250))) + "\u00a0\u2028\u3000\u4e2d\u0436\U0001f600"


def _charset(item: tuple[Any, Any]) -> frozenset[str]:
    """The probe characters one single-character item matches (by compiling just that item)."""
    sub = sre_parse.SubPattern(sre_parse.State(), [item])
    matcher = sre_compiler.compile(sub, re.DOTALL)
    return frozenset(c for c in _PROBES if matcher.fullmatch(c))


def _separated(outer: list[tuple[Any, Any]], inner: list[tuple[Any, Any]]) -> bool:
    """Whether each iteration of the outer repeat must end a run of the inner one with a character
    the inner repeat cannot take: `(?:\\w+\\s)*` is unambiguous, `(\\w+\\s?)*` is not."""
    if len(inner) != 1 or inner[0][0] not in _SINGLE:
        return False
    consumed = _charset(inner[0])
    return any(op in _SINGLE and not (_charset((op, arg)) & consumed) for op, arg in outer)


def _unwrap(body: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """A body that is one group, seen as the group's own items: `(\\w+\\s)*` like `(?:\\w+\\s)*`."""
    while len(body) == 1 and body[0][0] is sre_constants.SUBPATTERN:
        body = list(body[0][1][-1])
    return body


def _check(items: list[tuple[Any, Any]], pattern: str, outer: list[tuple[Any, Any]] | None = None) -> None:
    """Walk the parse tree; `outer` is the body of the nearest enclosing unbounded repeat."""
    for op, arg in items:
        if op in _REPEATS and op is not None:
            _, high, body = arg
            body = list(body)
            unbounded = high > _UNBOUNDED
            if unbounded and outer is not None and not _separated(outer, body):
                raise UnsafeRegex(
                    f"regex {pattern!r} nests an unbounded repeat inside another one (like '(a+)+'), which can "
                    "backtrack exponentially on a crafted line; separate the iterations with a character "
                    "the inner part cannot match, e.g. '(?:\\w+\\s)*\\w+' instead of '(\\w+\\s?)+', or "
                    "make it atomic: '(?>...)'"
                )
            _check(body, pattern, _unwrap(body) if unbounded else outer)
        elif op is sre_constants.SUBPATTERN:
            _check(list(arg[-1]), pattern, outer)
        elif op is sre_constants.BRANCH:
            for branch in arg[1]:
                _check(list(branch), pattern, outer)
        elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
            _check(list(arg[1]), pattern, outer)
        # ATOMIC_GROUP: never backtracks into its body, nothing to check inside.
