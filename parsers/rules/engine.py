"""Compiled rules and the indexed RuleSet that maps a parsed Message to an Activity Record.

Everything costly happens in `compile_pack()`: regexes are checked and compiled, templates
parsed, Actions validated. `RuleSet.match()` then looks up candidate rules by mnemonic and by
program (dicts), falls back to the few rules keyed on neither, and tries them in file order;
the first whose conditions hold wins. Its cost does not grow with the number of rules that
cannot apply.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from itertools import compress, repeat
from operator import contains as _contains
from typing import Any, NamedTuple

import yaml
from pydantic import ValidationError

from ingestor.errors import ConfigError, RenderError, RuleError
from ingestor.netwrix.records import (
    EXACT_TIME,
    NVARCHAR_LIMIT,
    SOURCE_KIND,
    Action,
    ActivityRecord,
    Detail,
    RecordCore,
    RecordDefaults,
    cap_utf16,
    clean_xml_text,
    core_fields,
    format_when,
    has_xml_illegal,
    trusted,
    whole_second,
)

from ..regex_safety import UnsafeRegex, compile_safe
from ..required_literal import required_literals
from ..syslog import FACILITIES, Message
from ..template import Template, TemplateError
from ..yamlfile import YamlDocument, combine, each_error, format_loc
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
    contains: tuple[str, ...]
    regex: re.Pattern[str] | None
    record: Mapping[str, Template]
    # (PropertyName, Before, After); a property name may itself be a template ("{property}").
    details: Mapping[str, tuple[Template, Template | None, Template | None]]
    drop: bool
    spec: RuleSpec
    data_source: str | None = None
    item: str | None = None  # the pack's Integration Item name, unless the configuration names one
    optional: bool = False  # the pack is off unless the configuration enables it
    fallback: bool = False
    source: str = ""  # "file:line", for messages
    both_keys: bool = False  # keyed on program and mnemonic: a bucket hit proves only one
    clean_literals: bool = True  # no template literal needs XML cleaning
    # Text every match of `regex` contains (one literal, or one of several): tested first, as a
    # substring scan is far cheaper than a regex search that fails.
    literal: str | None = None
    literals: tuple[str, ...] = ()  # several alternatives (each scan is C; a regex alternation is slow)
    checks: bool = False  # has conditions beyond its index keys and regex (see `admits`)
    fixed_action: Action | None = None  # the Action when it is literal (checked at load)
    # `record` without a literal Action, each as (name, literal text, single field, template,
    # capped at 255): what the per-record loop needs, unpacked once at load.
    outputs: tuple[tuple[str, str | None, str | None, Template, bool], ...] = ()
    families: frozenset[str] = frozenset()  # Cisco platform families (`Message.family`); empty: any

    def __post_init__(self) -> None:
        object.__setattr__(self, "both_keys", bool(self.programs and self.mnemonics))
        sources = [t.source for t in self.record.values()]
        sources += [t.source for parts in self.details.values() for t in parts if t is not None]
        object.__setattr__(self, "clean_literals", not any(has_xml_illegal(text) for text in sources))
        single, several = (
            required_literals(self.regex.pattern, self.regex.flags & ~re.UNICODE) if self.regex else (None, None)
        )
        # A single `contains` literal is as required as the regex's own: scan for the longer.
        if len(self.contains) == 1 and len(self.contains[0]) > len(single or ""):
            single = self.contains[0]
        object.__setattr__(self, "literal", single)
        object.__setattr__(self, "literals", several or ())
        contains = not _implied(self.contains, single, several or ())
        object.__setattr__(self, "checks", bool(self.both_keys or self.facilities or self.families or contains))
        action = self.record.get("Action")
        if action is not None and action.literal is not None:
            object.__setattr__(self, "fixed_action", Action(action.literal))
        outputs = tuple(
            (k, t.literal, t.field, t, k in _NAME255)
            for k, t in self.record.items()
            if k != "Action" or self.fixed_action is None
        )
        object.__setattr__(self, "outputs", outputs)
        if self.data_source is not None:
            object.__setattr__(self, "data_source", _clean(self.data_source))

    def admits(self, message: Message) -> bool:
        """The conditions other than the index keys and the regex: both keys when keyed on
        program and mnemonic, the facility, the family, the `contains` literals."""
        if self.both_keys and (
            not _mnemonic_in(message.mnemonic, self.mnemonics) or message.program not in self.programs
        ):
            return False
        if self.facilities and message.facility not in self.facilities:
            return False
        if self.families and message.family not in self.families:
            return False
        return not self.contains or any(map(_contains, repeat(message.text), self.contains))


def _implied(contains: tuple[str, ...], single: str | None, several: tuple[str, ...]) -> bool:
    """Whether the literal scans that run before a rule's regex (`single`, or one of `several`)
    already prove that the text holds one of the `contains` literals."""
    if not contains:
        return True
    if single is not None and any(c in single for c in contains):
        return True
    return bool(several) and all(any(c in alt for c in contains) for alt in several)


def message_fields(message: Message) -> dict[str, str | None]:
    """The fields every template may use, whatever the rule's regex captures (MESSAGE_FIELDS)."""
    return {
        "host": message.hostname or message.source,
        "source": message.source,
        "program": message.program,
        "pid": message.pid,
        "mnemonic": message.mnemonic,
        "hostname": message.hostname,
    }


_NAME255 = frozenset(("Who", "Where", "ObjectType"))  # the schema caps these at 255 characters


class Match:
    """A rule that matched a message, with the fields its regex captured.

    `render()` makes the ActivityRecord (for `parse`, tests and anything that wants the object);
    `wire()` makes the same record's wire fields (`record_fields()` form) directly, for the
    per-message path that only serializes it. Both come from one checked core, and a property
    test holds `wire() == record_fields(render())`.

    `found` is the rule regex's match (None for a rule without a regex); `fields`, the message's
    fields with the captured groups over them, is built only when something asks for it.
    """

    __slots__ = ("_fields", "found", "message", "rule")

    def __init__(self, rule: Rule, message: Message, found: re.Match[str] | None = None) -> None:
        self.rule = rule
        self.message = message
        self.found = found
        self._fields: dict[str, str | None] | None = None

    @property
    def fields(self) -> Mapping[str, str | None]:
        """What templates see: MESSAGE_FIELDS, overridden by the regex's named groups."""
        fields = self._fields
        if fields is None:
            fields = message_fields(self.message)
            if self.found is not None:
                fields |= self.found.groupdict()
            self._fields = fields
        return fields

    def __repr__(self) -> str:
        return f"Match(rule={self.rule.id!r}, fields={dict(self.fields)!r})"

    def render(self, defaults: RecordDefaults | Mapping[str, Any] | None = None) -> ActivityRecord | None:
        """The Activity Record, or None for a drop rule.

        `defaults` supplies DataSource, MonitoringPlan and Item from configuration; the pack's
        `data_source` applies when the configuration names none. Raises RenderError when a
        required field comes out empty or the schema refuses a value: the caller counts it.
        """
        core = self.core(defaults)
        if core is None:
            return None
        texts, action, when, data_source, config, details = core
        values: dict[str, Any] = {**texts, "Action": action, "When": when}
        if data_source is not None:
            values["DataSource"] = data_source
        if config.MonitoringPlan is not None:
            values["MonitoringPlan"] = config.MonitoringPlan
        if config.Item is not None:
            values["Item"] = config.Item
        if config.IsArchiveOnly is not None:
            values["IsArchiveOnly"] = config.IsArchiveOnly
        entries = []
        for prop, before, after in details:
            entry = {"PropertyName": prop}
            if before is not None:
                entry["Before"] = before
            if after is not None:
                entry["After"] = after
            entries.append(trusted(Detail, entry))
        values["DetailList"] = tuple(entries)
        return trusted(ActivityRecord, values)

    def wire(self, defaults: RecordDefaults | Mapping[str, Any] | None = None) -> list[tuple[str, object]] | None:
        """The record as `record_fields(self.render(defaults))` gives it, without building the
        ActivityRecord: what an encoder's `encode_fields` turns into the record's bytes. None
        for a drop rule; RenderError as for `render`."""
        core = self.core(defaults)
        return None if core is None else core_fields(core)

    def core(self, defaults: RecordDefaults | Mapping[str, Any] | None = None) -> RecordCore | None:
        """The record's checked values (`RecordCore`), what an encoder's `encode_core` writes
        directly; None for a drop rule; RenderError as for `render`. Every value is rendered and
        checked against the schema here: the work validation would do, done directly (several
        times cheaper than pydantic per record)."""
        rule = self.rule
        if rule.drop:
            return None
        if isinstance(defaults, RecordDefaults):
            config = defaults
        else:
            try:
                config = RecordDefaults.from_mapping(defaults)
            except ValueError as exc:
                raise RenderError(rule.id, str(exc)) from None
        config = config.for_pack(rule.pack, rule.item)
        fields = self.fields
        clean = self._clean_message()
        texts: dict[str, str] = {}
        for name, literal, single, template, capped in rule.outputs:
            text = (
                literal
                if literal is not None
                else fields.get(single)
                if single is not None
                else template.render(fields)
            )
            if not text:
                if name == "Workstation":
                    continue
                raise RenderError(rule.id, f"{name} came out empty (template {template.source!r})")
            if not clean:
                text = _clean(text)
            if capped and len(text) > NVARCHAR_LIMIT // 2:  # (cap_utf16's own test, without the call)
                text = cap_utf16(text)
            texts[name] = text
        action = rule.fixed_action
        if action is None:
            text = texts.pop("Action")
            try:
                action = Action(text)
            except ValueError:
                raise RenderError(rule.id, f"Action {text!r} is not a Netwrix action") from None
        if "Where" not in texts:
            where = self.message.host or "unknown"
            texts["Where"] = cap_utf16(where if clean else _clean(where))
        if "Workstation" not in texts:
            source = fields.get("source")
            if source:
                texts["Workstation"] = source if clean else _clean(source)
        when = self.message.timestamp or self.message.received_at
        if when.utcoffset() is None:
            raise RenderError(rule.id, f"When {when!r} is not a timezone-aware time")
        data_source = config.DataSource if config.DataSource is not None else rule.data_source
        details: list[tuple[str, str | None, str | None]] = []
        for name_t, before_t, after_t in rule.details.values():
            # Single-field templates ("{command}") as plain lookups: this loop runs per record.
            before = after = None
            if before_t is not None:
                before = fields.get(before_t.field) if before_t.field is not None else before_t.render(fields)
            if after_t is not None:
                after = fields.get(after_t.field) if after_t.field is not None else after_t.render(fields)
            if not (before or after):
                continue
            prop = name_t.literal if name_t.literal is not None else name_t.render(fields)
            if prop:
                if not clean:
                    prop, before, after = _clean(prop), before and _clean(before), after and _clean(after)
                details.append((cap_utf16(prop), before or None, after or None))
        if when.microsecond and not config.fractional_when:
            details.append((EXACT_TIME, None, format_when(when)))
            when = whole_second(when)
        if rule.item is not None:
            details.append((SOURCE_KIND, None, rule.item))
        return RecordCore(texts, action, when, data_source, config, details)

    def _clean_message(self) -> bool:
        """True when nothing a template can draw from this message needs XML cleaning: then
        every captured field (a substring of these) is clean too, and per-field checks are skipped."""
        m = self.message
        return (
            self.rule.clean_literals
            and not has_xml_illegal(m.text)
            and not has_xml_illegal(f"{m.hostname}{m.program}{m.pid}{m.source}")  # one search for the short ones
        )


def _clean(text: str) -> str:
    return clean_xml_text(text)  # type: ignore[return-value]


class _Candidates(NamedTuple):
    """Rules in match order, with each rule's required literal alongside ("" when it has none),
    so that rules whose literal is absent are skipped in one C-level pass (`compress`)."""

    rules: tuple[Rule, ...]
    literals: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Override:
    """A rule that replaced an earlier one with the same id: `source` and `replaced` are the
    file:line of each. `load_ruleset` refuses any replacement but a user rule's of a built-in
    one (two user rules with one id are an error), so `replaced` is a built-in rule there."""

    rule_id: str
    source: str
    replaced: str

    def __str__(self) -> str:
        return f"rule {self.rule_id} from {self.source} replaces the built-in one from {self.replaced}"


@dataclass
class RuleSet:
    """An indexed, immutable set of rules; build a new one to change it (SIGHUP swaps references).

    Candidate lists are merged at build time: a message with a mnemonic (or a program) looks up
    one tuple that already holds, in file order, the rules keyed on it and the few rules keyed on
    neither. A message with both a mnemonic and a program merges two lists once per pair (then
    cached). Within a list, rules whose required literal (from the regex, or a single `contains`)
    is not in the text are skipped by a C-level scan before any Python code looks at them, so
    site-wide rules keyed on neither cost a substring scan each, not a call.
    """

    rules: tuple[Rule, ...]
    overrides: tuple[Override, ...] = ()  # the rules that replaced one with the same id, in load order
    _by_mnemonic: dict[str, _Candidates] = field(init=False, repr=False)
    _by_program: dict[str, _Candidates] = field(init=False, repr=False)
    _rest: _Candidates = field(init=False, repr=False)
    _headerless: _Candidates = field(init=False, repr=False)
    _order: dict[int, int] = field(init=False, repr=False)
    _pairs: dict[tuple[int, int, str | None], _Candidates] = field(init=False, repr=False)
    _folded: RuleSet | None = field(init=False, repr=False, default=None)
    _unfolded: dict[int, Rule] = field(init=False, repr=False, default_factory=dict)  # twin -> rule

    def __post_init__(self) -> None:
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
        # Fallback rules sort after all others; file order otherwise (and see `_candidates`).
        n = len(self.rules)
        self._order = {id(rule): i + (2 * n if rule.fallback else 0) for i, rule in enumerate(self.rules)}
        self._rest = self._candidates(rest)
        # A full FAC-SEV-MNEMONIC key's list serves only messages with that very mnemonic: its
        # rules come first there (a bare key, `CONFIG_I`, never equals a message's mnemonic).
        self._by_mnemonic = {
            k: self._candidates(v, rest, exact=k if "-" in k else None) for k, v in by_mnemonic.items()
        }
        self._by_program = {k: self._candidates(v, rest) for k, v in by_program.items()}
        # A line with no header at all (other tools' test data, a program's own log file, a
        # relay that strips it): no program to look up, so every rule keyed on a program is a
        # candidate, in file order, the rules keyed on neither too.
        # The rules keyed on neither come first: written for any program, they read such a line as
        # they would with its header (a PAM line of any service), where a program's own rule
        # may rely on its program being the one it names.
        general = self._candidates(rest)
        # (A program's rule with no literal to require is left out: its regex is loose because
        # its program is the filter, and it would run on every such line.)
        keyed = self._candidates(
            [r for r in self.rules if r.programs and not r.mnemonics and (r.literal or r.literals)]
        )
        self._headerless = _Candidates(general.rules + keyed.rules, general.literals + keyed.literals)
        self._pairs = {}

    def _candidates(self, *lists: Iterable[Rule], exact: str | None = None) -> _Candidates:
        """The rules of `lists` in file order (fallback rules last); with `exact`, a message's
        full FAC-SEV-MNEMONIC, the rules naming it come before those naming only its bare
        mnemonic, whatever their packs' order: `MGBL-SYS-5-CONFIG_I` of the IOS XR pack wins over
        the IOS pack's `CONFIG_I`, as the more specific key."""
        unique = {id(r): r for rules in lists for r in rules}
        n = len(self.rules)
        order = self._order

        def rank(r: Rule) -> int:
            return order[id(r)] - n if exact is not None and exact in r.mnemonics else order[id(r)]

        ordered = tuple(sorted(unique.values(), key=rank))
        return _Candidates(ordered, tuple(r.literal or "" for r in ordered))

    def _merged(self, a: _Candidates, b: _Candidates, exact: str | None = None) -> _Candidates:
        key = (id(a), id(b), exact)
        merged = self._pairs.get(key)
        if merged is None:
            # A pair of build-time lists (and `exact` only where a build-time list is keyed on
            # it): this cache is bounded by the rules' keys, whatever messages arrive.
            merged = self._pairs[key] = self._candidates(a.rules, b.rules, exact=exact)
        return merged

    def __len__(self) -> int:
        return len(self.rules)

    def _lookup(self, message: Message) -> _Candidates:
        mnemonic = message.mnemonic
        by_mnemonic = None
        exact = None
        if mnemonic:
            by_mnemonic = self._by_mnemonic.get(mnemonic)
            if by_mnemonic is not None:
                exact = mnemonic  # rules keyed on the full FAC-SEV-MNEMONIC come first
            bare = self._by_mnemonic.get(mnemonic.rpartition("-")[2])  # rules written for any FAC-SEV
            if bare is not None:
                by_mnemonic = bare if by_mnemonic is None else self._merged(by_mnemonic, bare, exact)
        program = message.program
        by_program = self._by_program.get(program) if program else None
        if by_mnemonic is None:
            if by_program is not None:
                return by_program
            if program is None and message.hostname is None:
                # No program and no host (a timestamp alone does not make a header: Dovecot's
                # own log file, socklog's stamps). A PAM module's line names its service, the
                # program that wrote it: su's "pam_unix(su:session): ..." is read by su's rules.
                pam = _PAM_SERVICE.match(message.text)
                if pam is not None and (own := self._by_program.get(pam[1])) is not None:
                    return own
                return self._headerless
            return self._rest
        if by_program is None:
            return by_mnemonic
        return self._merged(by_mnemonic, by_program, exact)

    def candidates(self, message: Message) -> tuple[Rule, ...]:
        """Rules that could apply to `message`, in file order."""
        return self._lookup(message).rules

    def _lowercase(self) -> RuleSet:
        """The rules keyed on a Cisco mnemonic, matching case-insensitively: for messages some
        pipeline lower-cased whole (`%sys-5-config_i: configured from console by ...`), which no
        device writes and other tools' test data holds. Built on first use."""
        folded = self._folded
        if folded is None:
            twins = {r: _folded(r) for r in self.rules if r.mnemonics}
            self._unfolded = {id(twin): rule for rule, twin in twins.items()}
            folded = self._folded = RuleSet(tuple(twins.values()))
        return folded

    def match(self, message: Message) -> Match | None:
        """The first rule whose conditions hold, or None (unmatched)."""
        mnemonic = message.mnemonic
        if mnemonic is not None and mnemonic.islower():
            # No device writes a lower-case mnemonic: a lower-cased line (see `_lowercase`).
            found = self._lowercase()._scan(message)
            if found is not None:
                found.rule = self._unfolded[id(found.rule)]  # the rule as loaded: its id, metrics
            return found
        found = self._scan(message)
        if found is None and message.unparsed is not None:
            found = self._rescan_bare(message)
        return found

    def _rescan_bare(self, message: Message) -> Match | None:
        """What read as a header may be the message's own first words (see `Message.unparsed`):
        read the line whole as one with no header; a match keeps that reading (as a headerless
        match keeps its rule's program), none restores the first."""
        before = message.text, message.hostname, message.program, message.unparsed
        message.text, message.hostname, message.program, message.unparsed = message.unparsed or "", None, None, None
        found = self._scan(message)
        if found is None:
            message.text, message.hostname, message.program, message.unparsed = before
        return found

    def _scan(self, message: Message) -> Match | None:
        text = message.text
        rules, literals = self._lookup(message)
        # operator.contains over repeat(text): a plain C call per literal, where the bound
        # text.__contains__ wrapper builds an argument tuple per call (~25% of the scan).
        for rule in compress(rules, map(_contains, repeat(text), literals)):
            if rule.checks and not rule.admits(message):
                continue
            alternatives = rule.literals
            if alternatives and not any(map(_contains, repeat(text), alternatives)):
                continue
            regex = rule.regex
            m = regex.search(text, 0, MAX_REGEX_INPUT) if regex is not None else None
            if regex is None or m is not None:
                if message.program is None and rule.programs:
                    # A headerless line a program's rule recognised: the program is the rule's
                    # (its first), so that templates naming {program} can render.
                    message.program = rule.spec.match.program[0]
                return Match(rule, message, m)
        return None


def _folded(rule: Rule) -> Rule:
    """`rule` matching a lower-cased message: keys, literals and regex without case."""
    regex = rule.regex
    folded = replace(
        rule,
        mnemonics=frozenset(m.lower() for m in rule.mnemonics),
        programs=frozenset(p.lower() for p in rule.programs),
        contains=tuple(c.lower() for c in rule.contains),
        regex=re.compile(regex.pattern, regex.flags | re.IGNORECASE) if regex is not None else None,
    )
    object.__setattr__(folded, "literal", rule.literal.lower() if rule.literal else rule.literal)
    object.__setattr__(folded, "literals", tuple(x.lower() for x in rule.literals))
    return folded


def _mnemonic_in(mnemonic: str | None, wanted: frozenset[str]) -> bool:
    return mnemonic is not None and (mnemonic in wanted or mnemonic.rpartition("-")[2] in wanted)


def compile_pack(doc: YamlDocument) -> list[Rule]:
    """Validate and compile one loaded rule file; raise RuleError naming file, line, rule, field
    (ConfigErrors of them all when several rules of the file are wrong)."""
    try:
        pack = PackSpec.model_validate(doc.data)
    except ValidationError as exc:
        raise combine([_with_rule_id(doc, error) for error in doc.errors(exc, PackSpec)]) from None
    rules = []
    errors: list[ConfigError] = []
    for index, spec in enumerate(pack.rules):
        try:
            rules.append(_compile_rule(doc, pack, index, spec))
        except ConfigError as exc:
            errors.extend(each_error(exc))
    if errors:
        raise combine(errors)
    return rules


def _compile_rule(doc: YamlDocument, pack: PackSpec, index: int, spec: RuleSpec) -> Rule:
    """One rule of a validated pack, compiled; RuleError naming where it is wrong."""
    where = ("rules", index)
    regex = _regex(doc, spec, (*where, "match", "regex"))
    available = set(MESSAGE_FIELDS) | set(regex.groupindex if regex else ())
    templates = {
        name: _template(doc, spec, (*where, "record", name), text, available, regex)
        for name, text in spec.record.items()
    }
    details: dict[str, tuple[Template, Template | None, Template | None]] = {}
    for name, value in spec.details.items():
        loc = (*where, "details", name)
        # A plain string is the After value; a mapping gives before and/or after.
        parts = {"after": (loc, value)} if isinstance(value, str) else {
            key: ((*loc, key), text) for key, text in (("before", value.before), ("after", value.after))
            if text is not None
        }  # fmt: skip
        compiled = {key: _template(doc, spec, at, text, available, regex) for key, (at, text) in parts.items()}
        details[name] = (
            _template(doc, spec, loc, name, available, regex), compiled.get("before"), compiled.get("after")
        )  # fmt: skip
    facilities = frozenset(_facility(doc, spec, index, f) for f in spec.match.facility)
    line = doc.line_of(where)
    return Rule(
        id=spec.id, description=spec.description, pack=pack.pack,
        programs=frozenset(spec.match.program), mnemonics=frozenset(spec.match.mnemonic),
        facilities=facilities, contains=spec.match.contains, regex=regex, record=templates,
        details=details, drop=spec.drop, spec=spec, data_source=pack.data_source, fallback=spec.fallback,
        item=pack.item if pack.item is not None else pack.data_source, optional=not pack.enabled,
        source=f"{doc.path}:{line}", families=frozenset(spec.match.family),
    )  # fmt: skip


# A PAM module's line names its service first: "pam_unix(su:session): ..." (see `_lookup`).
_PAM_SERVICE = re.compile(r"pam_\w+\(([\w-]+):\w+\): ")
# `(?<name>...)`: how PCRE, .NET and JavaScript name a group; `(?<=` and `(?<!` are lookbehinds.
_ANGLE_GROUP = re.compile(r"\(\?<(?![=!])")
_QUOTED_HINT = (
    "; the regex is in double quotes, where YAML reads backslash escapes before the regex sees "
    "them: write it in single quotes ('\\d+ \\S+') or as a block scalar (|)"
)


def _double_quoted(doc: YamlDocument, loc: tuple[str | int, ...]) -> bool:
    """Whether the scalar at `loc` is written in double quotes with a backslash in it."""
    node = doc.node_at(loc)
    if not isinstance(node, yaml.ScalarNode) or node.style != '"':
        return False
    buffer = node.start_mark.buffer
    return buffer is not None and "\\" in buffer[node.start_mark.index : node.end_mark.index]


def _regex(doc: YamlDocument, spec: RuleSpec, loc: tuple[str | int, ...]) -> re.Pattern[str] | None:
    """The rule's compiled regex (None without one); RuleError with a hint for the usual slips."""
    pattern = spec.match.regex
    if not pattern:
        return None
    quoted = _double_quoted(doc, loc)
    try:
        regex = compile_safe(pattern)
    except UnsafeRegex as exc:
        reason = str(exc)
        if _ANGLE_GROUP.search(pattern):
            reason += "; Python spells a named group (?P<name>...), not (?<name>...)"
        if quoted:
            reason += _QUOTED_HINT
        raise _rule_error(doc, spec, loc, reason) from None
    if quoted and "\x08" in pattern:
        # YAML made "\b" a backspace character: the word boundary meant would never match.
        raise _rule_error(doc, spec, loc, "the regex holds a backspace character, YAML's \\b" + _QUOTED_HINT)
    return regex


def _template(
    doc: YamlDocument,
    spec: RuleSpec,
    loc: tuple[str | int, ...],
    text: str,
    available: set[str],
    regex: re.Pattern[str] | None,
) -> Template:
    try:
        compiled = Template(text)
    except TemplateError as exc:
        raise _rule_error(doc, spec, loc, str(exc)) from None
    missing = sorted(compiled.fields - available)
    if missing:
        reason = (
            f"uses {', '.join('{' + m + '}' for m in missing)}, which neither the regex "
            "captures (?P<name>...) nor the message provides"
        )
        groups = sorted(regex.groupindex) if regex is not None else []
        for name in missing:
            close = difflib.get_close_matches(name, groups, n=1, cutoff=0.6)
            if close:
                reason += f"; did you mean {{{close[0]}}}?"
        if regex is not None and regex.groups > len(regex.groupindex):
            reason += "; the regex has groups without a name: name the one meant, (?P<name>...)"
        if groups:
            reason += f" (the regex captures {', '.join(groups)})"
        raise _rule_error(doc, spec, loc, reason)
    return compiled


def _facility(doc: YamlDocument, spec: RuleSpec, index: int, name: str) -> int:
    try:
        return FACILITIES.index(name)
    except ValueError:
        reason = f"unknown facility {name!r}; known: {', '.join(FACILITIES)}"
        raise _rule_error(doc, spec, ("rules", index, "match", "facility"), reason) from None


def _rule_error(doc: YamlDocument, spec: RuleSpec, loc: tuple[str | int, ...], reason: str) -> RuleError:
    return RuleError(reason, path=doc.path, line=doc.line_of(loc), key=format_loc(loc), rule_id=spec.id)


_RULE_KEY = re.compile(r"rules\[(\d+)\]")


def _with_rule_id(doc: YamlDocument, error: ConfigError) -> RuleError:
    """A validation error of a rule file as a RuleError naming the rule it is in (when it has an id)."""
    rule_id = None
    m = _RULE_KEY.match(error.key or "")
    rules = doc.data.get("rules") if isinstance(doc.data, dict) else None
    if m is not None and isinstance(rules, list) and int(m[1]) < len(rules) and isinstance(rules[int(m[1])], dict):
        found = rules[int(m[1])].get("id")
        rule_id = found if isinstance(found, str) else None
    return RuleError(error.reason, path=error.path, line=error.line, key=error.key, rule_id=rule_id)


def build_ruleset(packs: Iterable[list[Rule]]) -> RuleSet:
    """One RuleSet from several compiled packs; a later pack's rule replaces an earlier one with
    the same id (user folders override built-in rules), keeping the earlier position. Each
    replacement is in `RuleSet.overrides`."""
    merged: dict[str, Rule] = {}
    overrides: list[Override] = []
    for rules in packs:
        for rule in rules:
            earlier = merged.get(rule.id)
            if earlier is not None:
                overrides.append(Override(rule.id, rule.source, earlier.source))
            merged[rule.id] = rule
    return RuleSet(tuple(merged.values()), tuple(overrides))
