"""Draft a rule file for a shape of unmatched messages (`nwsyslog unmatched --draft ID`).

From a shape (its kind, key, Drain template and sample lines) it writes a complete rule file:
a `match` on the program or mnemonic, a regex with one named group per word that varies (named
after the word before it or the text around it: `user`, `address`, `port`, ...), a record
skeleton with Who, What and Workstation guessed from those names, `TODO` where a person must
decide (Action, ObjectType), and `examples` made of the samples with the values the regex takes
from them. `test-rules` refuses a rule while a TODO is left in it, so a draft cannot be loaded
half-decided by mistake.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from os.path import commonprefix

from ..syslog import parse_syslog

WILDCARD = "<*>"
TODO = "TODO"

# The word before a varying one (or inside its `key=` prefix) -> the group's name.
_NAMES = {
    "user": "user", "username": "user", "usr": "user", "login": "user", "account": "user", "for": "user",
    "by": "user", "uid": "uid", "ruser": "user", "luser": "user", "name": "user", "who": "user",
    "from": "address", "src": "address", "source": "address", "client": "address", "rhost": "address",
    "host": "address", "ip": "address", "addr": "address", "address": "address", "peer": "address",
    "port": "port", "sport": "port", "dport": "port",
    "to": "target", "target": "target", "object": "target", "file": "target", "path": "target",
    "group": "group", "command": "command", "cmd": "command", "session": "session", "id": "id",
}  # fmt: skip
_STOPWORDS = frozenset({"the", "and", "with", "was", "has", "have", "after", "before", "not", "are", "this", "that"})
_IP = re.compile(r"^(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9a-fA-F:]*:[0-9a-fA-F:.]+)$")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
# A shared prefix is kept literal up to the last of these (`user=`, `(uid=`, `'`), a shared
# suffix from the first of the others: cutting inside a word or an address would name nothing.
_OPENERS = frozenset("=:([<{'\"")
_CLOSERS = frozenset(")]>}'\",;:")
_SPECIAL = re.compile(r"([.^$*+?{}\[\]\\|()])")


def _escape(text: str) -> str:
    """`re.escape` for the characters that need it only (drafts stay readable: `%SYS-5-X`)."""
    return _SPECIAL.sub(r"\\\1", text)


@dataclass(frozen=True)
class Group:
    """One varying word of the template, as a named group."""

    name: str
    prefix: str  # literal text every sample has before the value ("user=", "(")
    suffix: str  # and after it (",", ")")


def _affixes(values: Sequence[str]) -> tuple[str, str]:
    """The literal prefix (up to its last punctuation) and suffix (from its first) that every
    value shares, leaving at least one character of value between them."""
    if len(values) < 2:
        return "", ""
    prefix = commonprefix(list(values))  # noqa: RUF071 (character by character is meant)
    cut = max((i for i, c in enumerate(prefix) if c in _OPENERS), default=-1)
    prefix = prefix[: cut + 1]
    suffix = commonprefix([v[::-1] for v in values])[::-1]  # noqa: RUF071
    cut = min((i for i, c in enumerate(suffix) if c in _CLOSERS), default=len(suffix))
    suffix = suffix[cut:]
    if any(len(v) <= len(prefix) + len(suffix) for v in values):
        return "", ""
    return prefix, suffix


def _name(previous: str, prefix: str, values: Sequence[str]) -> str:
    """A group's name: a known word in its prefix or before it (`user`, `from`, `port`), an
    address by its values, else that word itself, else `value`."""
    inside: list[str] = _WORD.findall(prefix)[-1:]
    before: list[str] = _WORD.findall(previous)[-1:]
    for word in (*inside, *before):
        if word.lower() in _NAMES:
            return _NAMES[word.lower()]
    if values and all(_IP.match(v.strip("[](),;'\"")) for v in values):
        return "address"
    for word in (*inside, *before):
        if len(word) >= 3 and word.lower() not in _STOPWORDS:
            return word.lower()
    return "value"


def groups_of(tokens: Sequence[str], samples: Sequence[Sequence[str]]) -> list[Group | None]:
    """For each template token, its Group when it varies (None for a literal word)."""
    out: list[Group | None] = []
    used: dict[str, int] = {}
    for i, token in enumerate(tokens):
        if token != WILDCARD:
            out.append(None)
            continue
        values = [s[i] for s in samples]
        prefix, suffix = _affixes(values)
        previous = next((t for t in reversed(tokens[:i]) if t != WILDCARD), "")
        name = _name(previous, prefix, [v[len(prefix) : len(v) - len(suffix)] for v in values])
        used[name] = used.get(name, 0) + 1
        out.append(Group(name if used[name] == 1 else f"{name}{used[name]}", prefix, suffix))
    return out


def regex_of(tokens: Sequence[str], groups: Sequence[Group | None]) -> str:
    """The rule regex: literal words escaped, each varying word a named group, any run of
    spaces between words, anchored at both ends."""
    pieces = []
    for token, group in zip(tokens, groups, strict=True):
        if group is None:
            pieces.append(_escape(token))
        else:
            value = r"\S+?" if group.suffix else r"\S+"
            pieces.append(f"{_escape(group.prefix)}(?P<{group.name}>{value}){_escape(group.suffix)}")
    return "^" + r"\s+".join(pieces) + r"\s*$"


def _q(text: str) -> str:
    """A YAML single-quoted scalar (backslashes stay as written)."""
    return "'" + text.replace("'", "''") + "'"


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return slug or "message"


def draft_rule(
    *,
    shape_id: str,
    kind: str,
    key: str,
    template: str,
    samples: Sequence[str] = (),
    count: int = 0,
    hosts: Sequence[str] = (),
) -> str:
    """A rule file (YAML text) for one shape; see the module docstring."""
    tokens = template.split()
    texts = [parse_syslog(s.encode("utf-8", "surrogateescape")).text for s in samples]
    fitting = [(line, text.split()) for line, text in zip(samples, texts, strict=True)]
    fitting = [(line, words) for line, words in fitting if len(words) == len(tokens)]
    groups = groups_of(tokens, [words for _, words in fitting])
    pattern = regex_of(tokens, groups)
    compiled = re.compile(pattern)
    names = [g.name for g in groups if g is not None]
    who_field = next((n for n in names if n.startswith("user")), None)
    address = next((n for n in names if n.startswith("address")), None)
    target = next((n for n in names if n.startswith("target")), None)
    literal = [t for t in tokens if t != WILDCARD]
    rule_id = f"local.{_slug(key or 'untagged')}.{_slug('_'.join(literal[:3]))}"[:128]

    lines = [
        f"# Drafted by `nwsyslog unmatched --draft {shape_id}` from {count} unmatched message(s)"
        + (f" of {', '.join(hosts)}" if hosts else ""),
        f"# shape: {kind} {key or '(no tag)'}: {template}",
        "# Fill in every TODO, check the guesses, save this in a rule folder (rules.paths), then",
        "# run `nwsyslog test-rules FOLDER`: it refuses the rule while a TODO is left.",
        "pack: local",
        "description: Rules drafted from unmatched messages",
        f"data_source: {_q(key or 'Syslog')}",
        "rules:",
        f"  - id: {rule_id}",
        f"    description: {_q(f'{TODO}: what this event is')}",
        "    match:",
    ]
    if kind == "cisco":
        lines.append(f"      mnemonic: {_q(key)}")
    elif kind == "syslog":
        lines.append(f"      program: {_q(key)}")
    elif literal:
        lines.append(f"      contains: {_q(max(literal, key=len))}")
    lines.append(f"      regex: {_q(pattern)}")
    lines.append("    record:")
    lines.append(f"      Action: {TODO}  # one of Netwrix's actions: Added, Removed, Modified, Successful Logon, ...")
    lines.append(f"      ObjectType: {TODO}  # what was acted on: Logon, User account, Configuration, ...")
    if who_field:
        lines.append(f"      Who: {_q('{' + who_field + '}')}")
    elif address:
        lines.append(f"      Who: {_q('{' + address + '}')}  # the line names no person: its client address")
    else:
        lines.append(f"      Who: unknown  # {TODO}? the line names no person (rules/README.md conventions)")
    what = "{" + target + "}" if target else key or TODO
    lines.append(f"      What: {_q(what)}")
    if address:
        lines.append(f"      Workstation: {_q('{' + address + '}')}")
    rest = [n for n in names if n not in (who_field, address, target)]
    if rest:
        lines.append("    details:")
        lines.extend(f"      {_q(n.replace('_', ' ').capitalize())}: {_q('{' + n + '}')}" for n in rest)
    lines.append("    examples:")
    examples = 0
    for line, words in fitting:
        found = compiled.search(" ".join(words))
        if found is None:
            continue
        values = found.groupdict()
        lines.append(f"      - line: {_q(line)}")
        who = values[who_field or address or ""] if who_field or address else "unknown"
        expect = [f"Who: {_q(who)}", f"What: {_q(values[target] if target else what)}"]
        if address:
            expect.append(f"Workstation: {_q(values[address])}")
        if rest:
            details = ", ".join(f"{_q(n.replace('_', ' ').capitalize())}: {_q(values[n])}" for n in rest)
            expect.append(f"DetailList: {{{details}}}")
        lines.append(f"        record: {{{', '.join(expect)}}}")
        examples += 1
    if not examples:
        lines.append(f"      - line: {_q(f'{TODO}: a real line of this shape (samples are off or none fitted)')}")
    return "\n".join(lines) + "\n"
