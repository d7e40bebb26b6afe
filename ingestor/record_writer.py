"""Record writers: one function per (rule, configured defaults) from a rule match to its
request-body fragment, the transform stage's per-record step.

The reference path is `encoder.encode_core(match.core(defaults))`: render every template into
a dict of checked values, then serialize them. It is general (any encoder, any text) and it
is what the tests define as right. For XML, a rule also gets a *compiled* writer: Python source
generated once per rule at first use, in which every field is a local read straight from the
regex's groups, the record's fixed parts (Action when literal, literal templates, DataSource,
MonitoringPlan, Item) are one escaped constant, and the fragment is one f-string. It takes the
fast route only when the outcome is plain: every value present, within its length cap, free of
characters that need escaping or cleaning, the time zone-aware. Anything else (an empty Who, an
`&`, a control character, a 300-character hostname) goes to the reference path, so the output
is the reference output for every input (`tests/ingestor/test_record_writer.py` holds them
equal on arbitrary text). About three times cheaper per record than the reference path.

Generated source never contains text from a rule file: constants and filter functions are
passed in as named values (`_k0`, `_k1`), regex groups are read by number, and message fields by
attribute names fixed here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from parsers.rules.engine import MESSAGE_FIELDS, Match, Rule
from parsers.template import Template

from .netwrix.encoding import Encoder, XmlEncoder
from .netwrix.records import (
    EXACT_TIME,
    NVARCHAR_LIMIT,
    SOURCE_KIND,
    Action,
    RecordDefaults,
    format_when,
    utf16_length,
    whole_second,
)

Writer = Callable[[Match], bytes | None]  # the fragment, or None for a drop rule; RenderError

# One search finds what the fast route cannot write as is: XML's specials (&, <, >, and CR,
# which is written as a character reference) and every character XML 1.0 cannot carry.
_NOT_PLAIN = re.compile("[^\t\n\u0020-\u0025\u0027-\u003b\u003d\u003f-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ACTION_TEXT = {action.value: action.value for action in Action}

# How generated code reads each message field (MESSAGE_FIELDS), when no regex group shadows it.
_MESSAGE_EXPR = {
    "host": "(message.hostname or message.source)",
    "source": "message.source",
    "program": "message.program",
    "pid": "message.pid",
    "mnemonic": "message.mnemonic",
    "hostname": "message.hostname",
}
assert set(_MESSAGE_EXPR) == set(MESSAGE_FIELDS)


def reference_writer(encoder: Encoder, defaults: RecordDefaults) -> Writer:
    """The general writer: `encoder.encode_core(match.core(defaults))`, for any rule."""
    encode = encoder.encode_core

    def write(match: Match) -> bytes | None:
        core = match.core(defaults)
        return None if core is None else encode(core)

    return write


def writer_for(rule: Rule, encoder: Encoder, defaults: RecordDefaults) -> Writer:
    """The writer for `rule`'s records under `defaults`: compiled when the encoder is XML and
    the rule's shape allows it, else the reference writer. Both give the same bytes."""
    reference = reference_writer(encoder, defaults)
    if not isinstance(encoder, XmlEncoder):
        return reference
    return _compile(rule, encoder, defaults, reference) or reference


class _Unsupported(Exception):
    """A rule shape the generator leaves to the reference writer."""


class _Source:
    """The generated function's body and the values it refers to by name."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: dict[str, Any] = {}
        self.count = 0

    def local(self) -> str:
        self.count += 1
        return f"t{self.count}"

    def const(self, value: object) -> str:
        name = f"_k{len(self.names)}"
        self.names[name] = value
        return name

    def line(self, text: str) -> None:
        self.lines.append("    " + text)


def _compile(rule: Rule, encoder: XmlEncoder, defaults: RecordDefaults, reference: Writer) -> Writer | None:
    """The compiled writer, or None when the rule has a shape it does not cover (it then has
    the reference writer: literals that need cleaning or exceed a cap are left to it)."""
    if rule.drop:
        return lambda match: None
    if not rule.clean_literals:
        return None
    try:
        return _generate(rule, encoder, defaults, reference)
    except _Unsupported:
        return None


def _generate(rule: Rule, encoder: XmlEncoder, defaults: RecordDefaults, reference: Writer) -> Writer:
    defaults = defaults.for_pack(rule.pack, rule.item)
    groups = rule.regex.groupindex if rule.regex is not None else {}
    src = _Source()
    slow = src.const(reference)
    src.line("message = match.message")
    if groups:
        src.line("g = match.found.groups()")

    def field(name: str) -> str:
        if name in groups:
            return f"g[{groups[name] - 1}]"
        if name not in _MESSAGE_EXPR:
            raise _Unsupported(name)
        return _MESSAGE_EXPR[name]

    def value(template: Template) -> str:
        """An expression for the template's text: a constant, a field, or a local computed by
        lines written here (None when the text is missing or empty, as `render` gives it; a
        filtered value that comes out "" may be "" here where `render` gives None: every use
        treats the two alike)."""
        if template.literal is not None:
            return src.const(template.literal)
        if template.field is not None:
            return field(template.field)
        pieces: list[str] = []
        needed: list[str] = []  # parts without a default: when one is empty, so is the text
        for part in template.parts:
            if isinstance(part, str):
                pieces.append(src.const(part))
                continue
            local = src.local()
            src.line(f"{local} = {' or '.join(field(name) for name in (part.name, *part.alternatives))}")
            if part.default is not None:
                src.line(f"{local} = {local} or {src.const(part.default)}")
            else:
                needed.append(local)
            for fn in part.filters:
                call = f"{local} = {src.const(fn)}({local})"
                src.line(call if part.default is not None else f"if {local}: {call}")
            pieces.append(local)
        result = src.local()
        text = 'f"' + "".join("{" + piece + "}" for piece in pieces) + '"'
        src.line(f"{result} = {text} if {' and '.join(needed)} else None" if needed else f"{result} = {text}")
        return result

    checked: list[str] = []  # locals that go into the fragment: must be plain
    required: list[str] = []  # locals that must not be empty
    capped: list[str] = []  # locals capped at 255 characters (tested after `required`)
    # Record field -> ("local", name) or ("text", escaped constant text).
    texts: dict[str, tuple[str, str]] = {}
    action = rule.fixed_action.value if rule.fixed_action is not None else None
    for i, (name, literal, _single, template, is_capped) in enumerate(rule.outputs):
        if literal is not None:
            if not literal or (is_capped and utf16_length(literal) > NVARCHAR_LIMIT):
                raise _Unsupported(name)
            texts[name] = ("text", encoder.escape_text(literal))
            continue
        local = f"v{i}"
        src.line(f"{local} = {value(template)}")
        texts[name] = ("local", local)
        if name == "Action":
            src.line(f"{local} = _actions.get({local})")  # only the exact spelling; others: reference
            required.append(local)
            continue
        checked.append(local)
        if name == "Workstation":
            src.line(f"if not {local}:")  # empty: the message's source instead, as the reference
            src.line(f"    {local} = {field('source')}")
            continue
        required.append(local)
        if is_capped:
            capped.append(local)
    if "Where" not in texts:
        src.line('where = message.hostname or message.source or "unknown"')
        texts["Where"] = ("local", "where")
        checked.append("where")
        capped.append("where")
    if "Workstation" not in texts:
        src.line(f"ws = {field('source')}")
        texts["Workstation"] = ("local", "ws")
        checked.append("ws")

    details: list[str] = []
    for j, (name_t, before_t, after_t) in enumerate(rule.details.values()):
        parts = []
        for kind, part in (("Before", before_t), ("After", after_t)):
            if part is None:
                continue
            local = f"d{j}{kind[0].lower()}"
            src.line(f"{local} = {value(part)}")
            checked.append(local)
            parts.append((kind, local))
        if not parts:
            continue
        present = " or ".join(local for _, local in parts)
        if name_t.literal is not None:
            if not name_t.literal or utf16_length(name_t.literal) > NVARCHAR_LIMIT:
                raise _Unsupported("PropertyName")
            head = src.const(f"<Detail><PropertyName>{encoder.escape_text(name_t.literal)}</PropertyName>")
            condition = present
        else:
            src.line(f"p{j} = ({value(name_t)}) if ({present}) else None")
            checked.append(f"p{j}")
            capped.append(f"(p{j} or '')")
            head = f'f"<Detail><PropertyName>{{p{j}}}</PropertyName>"'
            condition = f"p{j}"
        if len(parts) == 1:  # the usual shape: one value (the condition implies it is present)
            kind, local = parts[0]
            body = f'{head} + f"<{kind}>{{{local}}}</{kind}></Detail>"'
        else:
            body = " + ".join(
                [head]
                + [f'(f"<{kind}>{{{local}}}</{kind}>" if {local} else "")' for kind, local in parts]
                + ['"</Detail>"']
            )
        src.line(f'x{j} = ({body}) if ({condition}) else ""')
        details.append(f"x{j}")

    src.line("when = message.timestamp or message.received_at")
    tests = [f"not {local}" for local in required]
    # over_utf16, written out: a capped text of at most half the limit in characters is short
    # enough without counting, so most records never call anything for it.
    half = NVARCHAR_LIMIT // 2
    tests += [f"(len({local}) > {half} and _utf16({local}) > {NVARCHAR_LIMIT})" for local in capped]
    tests.append("when.utcoffset() is None")
    plain = "".join(f"{{{local}}}" for local in checked)
    tests.append(f'_not_plain(f"{plain}") is not None')
    src.line(f"if {' or '.join(tests)}:")
    src.line(f"    return {slow}(match)")
    if not defaults.fractional_when:
        # Whole seconds, as Netwrix documents When; the exact time in a detail.
        exact = src.const(f"<Detail><PropertyName>{EXACT_TIME}</PropertyName><After>")
        src.line("if when.microsecond:")
        src.line(f'    xt = {exact} + format_when(when) + "</After></Detail>"')
        src.line("    when = _whole(when)")
        src.line("else:")
        src.line('    xt = ""')
        details.append("xt")
    if rule.item is not None:
        kind = f"<Detail><PropertyName>{SOURCE_KIND}</PropertyName><After>{encoder.escape_text(rule.item)}"
        kind += "</After></Detail>"
        details.append(src.const(kind))

    def put(kind: str, text: str) -> str:
        return "{" + (text if kind == "local" else src.const(text)) + "}"

    head = "<ActivityRecord><Who>" + put(*texts["Who"]) + "</Who><Action>"
    head += put("text", encoder.escape_text(action)) if action is not None else put(*texts["Action"])
    head += "</Action><What>" + put(*texts["What"]) + "</What><When>{format_when(when)}</When>"
    head += "<Where>" + put(*texts["Where"]) + "</Where><ObjectType>" + put(*texts["ObjectType"]) + "</ObjectType>"
    fragment = ['f"' + head + '"']
    kind, ws = texts["Workstation"]
    if kind == "local":
        fragment.append(f'(f"<Workstation>{{{ws}}}</Workstation>" if {ws} else "")')
    else:
        fragment.append(src.const(f"<Workstation>{ws}</Workstation>"))
    data_source = defaults.DataSource if defaults.DataSource is not None else rule.data_source
    fragment.append(src.const(encoder.config_elements(defaults, data_source)))
    if details:
        src.line(f"dl = {' + '.join(details)}")
        fragment.append('("<DetailList>" + dl + "</DetailList>" if dl else "")')
    fragment.append('"</ActivityRecord>"')
    src.line(f"return ({' + '.join(fragment)}).encode()")

    code = "def write(match):\n" + "\n".join(src.lines) + "\n"
    namespace: dict[str, Any] = {
        **src.names,
        "_actions": _ACTION_TEXT,
        "_not_plain": _NOT_PLAIN.search,
        "format_when": format_when,
        "_whole": whole_second,
        "_utf16": utf16_length,
    }
    exec(compile(code, f"<record writer for rule {rule.id}>", "exec"), namespace)
    write: Writer = namespace["write"]
    write.source = code  # type: ignore[attr-defined]  # for debugging and tests
    return write
