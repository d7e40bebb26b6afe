"""Compiled rules and the indexed RuleSet that maps a parsed Message to an Activity Record.

Everything costly happens in `compile_pack()`: regexes are checked and compiled, templates
parsed, Actions validated. `RuleSet.match()` then looks up candidate rules by mnemonic and by
program (dicts), falls back to the few rules keyed on neither, and tries them in file order;
the first whose conditions hold wins. Its cost does not grow with the number of rules that
cannot apply.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ingestor.errors import RuleError
from ingestor.records import ActivityRecord

from ..regex_safety import UnsafeRegex, compile_safe
from ..syslog import FACILITIES, Message
from ..template import Template, TemplateError
from ..yamlfile import YamlDocument, format_loc
from .schema import PackSpec, RuleSpec

MESSAGE_FIELDS = ("host", "source", "program", "pid", "mnemonic", "hostname")  # always available to templates
MAX_REGEX_INPUT = 8192  # characters of message text a rule regex sees: bounds any backtracking


@dataclass(frozen=True, slots=True, eq=False)
class Rule:
    """A compiled rule (compared and hashed by identity)."""

    id: str
    description: str
    pack: str
    programs: frozenset[str]
    mnemonics: frozenset[str]
    facilities: frozenset[int]
    regex: re.Pattern[str] | None
    record: Mapping[str, Template]
    details: Mapping[str, Template]
    drop: bool
    spec: RuleSpec
    source: str = ""  # "file:line", for messages

    def fields_of(self, message: Message, base: dict[str, str | None]) -> dict[str, str | None] | None:
        """The template fields for `message` (`base` plus the regex's groups), or None when a
        condition does not hold."""
        if self.facilities and message.facility not in self.facilities:
            return None
        if self.regex is None:
            return base
        m = self.regex.search(message.text, 0, MAX_REGEX_INPUT)
        if m is None:
            return None
        return {**base, **m.groupdict()}


def message_fields(message: Message) -> dict[str, str | None]:
    """The fields every template may use, whatever the rule's regex captures."""
    return {name: getattr(message, name) for name in MESSAGE_FIELDS}


@dataclass(frozen=True, slots=True)
class Match:
    """A rule that matched a message, with the fields its regex captured."""

    rule: Rule
    message: Message
    fields: Mapping[str, str | None]

    def render(self, defaults: Mapping[str, Any] | None = None) -> ActivityRecord | None:
        """The Activity Record, or None for a drop rule or when a required template field is empty.

        `defaults` supplies DataSource, MonitoringPlan and Item from configuration.
        """
        if self.rule.drop:
            return None
        values: dict[str, Any] = dict(defaults or {})
        for name, template in self.rule.record.items():
            text = template.render(self.fields)
            if text is None:
                if name == "Workstation":
                    continue
                return None
            values[name] = text
        values.setdefault("Where", self.message.host or "unknown")
        if "Workstation" not in values and self.fields.get("source"):
            values["Workstation"] = self.fields["source"]
        values["When"] = self.message.timestamp or self.message.received_at
        details = []
        for prop, template in self.rule.details.items():
            text = template.render(self.fields)
            if text:
                details.append({"PropertyName": prop, "After": text})
        if details:
            values["DetailList"] = details
        return ActivityRecord(**values)


@dataclass
class RuleSet:
    """An indexed, immutable set of rules; build a new one to change it (SIGHUP swaps references)."""

    rules: tuple[Rule, ...]
    _by_mnemonic: dict[str, tuple[Rule, ...]] = field(init=False, repr=False)
    _by_program: dict[str, tuple[Rule, ...]] = field(init=False, repr=False)
    _rest: tuple[Rule, ...] = field(init=False, repr=False)
    _order: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        order = {rule.id: i for i, rule in enumerate(self.rules)}
        by_mnemonic: dict[str, list[Rule]] = {}
        by_program: dict[str, list[Rule]] = {}
        rest: list[Rule] = []
        for rule in self.rules:
            for mnemonic in rule.mnemonics:
                by_mnemonic.setdefault(mnemonic, []).append(rule)
            for program in rule.programs:
                by_program.setdefault(program, []).append(rule)
            if not rule.mnemonics and not rule.programs:
                rest.append(rule)
        self._by_mnemonic = {k: tuple(v) for k, v in by_mnemonic.items()}
        self._by_program = {k: tuple(v) for k, v in by_program.items()}
        self._rest = tuple(rest)
        self._order = order

    def candidates(self, message: Message) -> tuple[Rule, ...]:
        """Rules that could apply to `message`, in file order."""
        buckets = [
            b
            for b in (
                self._by_mnemonic.get(message.mnemonic or ""),
                self._by_program.get(message.program or ""),
                self._rest,
            )
            if b
        ]
        if len(buckets) <= 1:
            return buckets[0] if buckets else ()  # each bucket is already in file order
        return tuple(sorted({r for b in buckets for r in b}, key=lambda r: self._order[r.id]))

    def match(self, message: Message) -> Match | None:
        """The first rule whose conditions hold, or None (unmatched)."""
        base: dict[str, str | None] | None = None
        for rule in self.candidates(message):
            if rule.mnemonics and message.mnemonic not in rule.mnemonics:
                continue
            if rule.programs and message.program not in rule.programs:
                continue
            if base is None:
                base = message_fields(message)
            fields = rule.fields_of(message, base)
            if fields is not None:
                return Match(rule, message, fields)
        return None


def compile_pack(doc: YamlDocument) -> list[Rule]:
    """Validate and compile one loaded rule file; raise RuleError naming file, line, rule, field."""
    try:
        pack = PackSpec.model_validate(doc.data)
    except ValidationError as exc:
        error = doc.error(exc)
        rule_id = _rule_id_at(doc, exc)
        raise RuleError(error.reason, path=error.path, line=error.line, key=error.key, rule_id=rule_id) from None
    rules = []
    for index, spec in enumerate(pack.rules):
        where = ("rules", index)
        try:
            regex = compile_safe(spec.match.regex) if spec.match.regex else None
        except UnsafeRegex as exc:
            raise _rule_error(doc, spec, (*where, "match", "regex"), str(exc)) from None
        templates: dict[str, Template] = {}
        details: dict[str, Template] = {}
        for target, section, items in ((templates, "record", spec.record), (details, "details", spec.details)):
            for name, text in items.items():
                try:
                    target[name] = Template(text)
                except TemplateError as exc:
                    raise _rule_error(doc, spec, (*where, section, name), str(exc)) from None
        available = set(MESSAGE_FIELDS) | set(regex.groupindex if regex else ())
        for section, compiled in (("record", templates), ("details", details)):
            for name, template in compiled.items():
                missing = sorted(template.fields - available)
                if missing:
                    raise _rule_error(
                        doc, spec, (*where, section, name),
                        f"uses {', '.join('{' + m + '}' for m in missing)}, which neither the regex "
                        "captures (?P<name>...) nor the message provides",
                    )  # fmt: skip
        facilities = frozenset(_facility(doc, spec, index, f) for f in spec.match.facility)
        line = doc.line_of(where)
        rules.append(
            Rule(
                id=spec.id, description=spec.description, pack=pack.pack,
                programs=frozenset(spec.match.program), mnemonics=frozenset(spec.match.mnemonic),
                facilities=facilities, regex=regex, record=templates, details=details, drop=spec.drop,
                spec=spec, source=f"{doc.path}:{line}",
            )
        )  # fmt: skip
    return rules


def _facility(doc: YamlDocument, spec: RuleSpec, index: int, name: str) -> int:
    try:
        return FACILITIES.index(name)
    except ValueError:
        reason = f"unknown facility {name!r}; known: {', '.join(FACILITIES)}"
        raise _rule_error(doc, spec, ("rules", index, "match", "facility"), reason) from None


def _rule_error(doc: YamlDocument, spec: RuleSpec, loc: tuple[str | int, ...], reason: str) -> RuleError:
    return RuleError(reason, path=doc.path, line=doc.line_of(loc), key=format_loc(loc), rule_id=spec.id)


def _rule_id_at(doc: YamlDocument, exc: ValidationError) -> str | None:
    loc = exc.errors()[0]["loc"]
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int) and isinstance(doc.data, dict):
        rules = doc.data.get("rules")
        if isinstance(rules, list) and loc[1] < len(rules) and isinstance(rules[loc[1]], dict):
            rule_id = rules[loc[1]].get("id")
            return rule_id if isinstance(rule_id, str) else None
    return None


def build_ruleset(packs: Iterable[list[Rule]]) -> RuleSet:
    """One RuleSet from several compiled packs; a later pack's rule replaces an earlier one with
    the same id (user folders override built-in rules), keeping the earlier position."""
    merged: dict[str, Rule] = {}
    for rules in packs:
        for rule in rules:
            merged[rule.id] = rule
    return RuleSet(tuple(merged.values()))
