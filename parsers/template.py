"""Record templates: the small language rule authors use to fill Activity Record fields.

    Who: "{user}"                      a captured field
    What: "{command} (as {runas})"     literal text around fields
    Where: "{host|lower}"              filters: lower, upper, strip, unhex (auditd's hex values),
                                       account (uid 0 is root: "uid=0", "auid=0", "id=0"),
                                       service (an old PAM tag's service: "pop(pam_unix)" is "pop")
    Workstation: "{rhost|default:-}"   a value when the field is missing or empty
    Who: "{user|or:ruser|or:rhost}"    the first of these fields that is not empty
    ObjectType: "{{literal braces}}"   doubled braces are literal

The grammar is parsed with pyparsing once, when a rule file is loaded; rendering a compiled
`Template` is a loop over prepared parts with dict lookups and no parsing at all. Unknown
filters and malformed braces are errors at load time (`TemplateError`, with the column).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pyparsing as pp

Filter = Callable[[str], str]


def unhex(value: str) -> str:
    """auditd's encoding of a value with spaces, quotes or control characters: hex digits
    ("6C73202D6C" for "ls -l"). Anything that does not decode to printable UTF-8 text is
    returned as it was (a name that merely looks like hex, "cafe", stays "cafe")."""
    if len(value) % 2 or not value or value.strip("0123456789abcdefABCDEF"):
        return value
    try:
        text = bytes.fromhex(value).decode("utf-8")
    except ValueError:
        return value
    return text if text.isprintable() else value


def account(value: str) -> str:
    """A user id where an account name is wanted: uid 0 is root (a bare "0", or auditd's and
    PAM's "uid=0", "auid=0", "id=0"); another bare number reads "uid=N"; anything else, a
    name or "uid=1000", stays as it is."""
    key, sep, number = value.rpartition("=")
    if number.isdigit() and (not sep or key in ("uid", "auid", "id")):
        if int(number) == 0:
            return "root"
        return value if sep else f"uid={number}"
    return value


def service(value: str) -> str:
    """The service an old PAM (before 0.99) names in its tag, "pop(pam_unix)": "pop"; a tag
    without a module in parentheses stays as it is."""
    name, sep, module = value.partition("(")
    return name if sep and name and module.startswith("pam") and module.endswith(")") else value


FILTERS: dict[str, Filter] = {
    "lower": str.lower, "upper": str.upper, "strip": str.strip, "unhex": unhex, "account": account,
    "service": service,
}  # fmt: skip


class TemplateError(ValueError):
    """A template that cannot be compiled; `column` is 1-based."""

    def __init__(self, message: str, column: int) -> None:
        self.column = column
        super().__init__(f"{message} (column {column})")


@dataclass(frozen=True, slots=True)
class FieldRef:
    """One `{name|filter|or:other|default:text}` part of a template."""

    name: str
    filters: tuple[Filter, ...]
    default: str | None
    alternatives: tuple[str, ...] = ()


def _grammar() -> pp.ParserElement:
    name = pp.Word(pp.alphas + "_", pp.alphanums + "_.")("name")
    filter_name = pp.Word(pp.alphas)
    default = pp.Suppress("default:") + pp.Regex(r"[^}|]*")("default")
    alternative = pp.Suppress("or:") + pp.Word(pp.alphas + "_", pp.alphanums + "_.")("alt")
    step = pp.Group(default | alternative | filter_name("filter"))
    field = pp.Group(
        pp.Suppress("{") + name + pp.Group(pp.ZeroOrMore(pp.Suppress("|") + step))("steps") + pp.Suppress("}")
    )
    literal = pp.Regex(r"([^{}]|\{\{|\}\})+")
    unescaped = literal.set_parse_action(lambda t: t[0].replace("{{", "{").replace("}}", "}"))
    # Whitespace is text here: leave_whitespace() applies to every element of the grammar.
    return (pp.ZeroOrMore(field | unescaped) + pp.StringEnd()).leave_whitespace().parse_with_tabs()


_GRAMMAR = _grammar()


class Template:
    """A compiled template. `render(fields)` returns the text, or None when a field without a
    default is missing or empty (the rule then cannot build its record).

    Example:
        >>> Template("{user|upper} on {tty|default:console}").render({"user": "alice"})
        'ALICE on console'
    """

    __slots__ = ("field", "fields", "literal", "parts", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            tokens = _GRAMMAR.parse_string(source, parse_all=True)
        except pp.ParseBaseException as exc:
            raise TemplateError(f"cannot read template {source!r}: unbalanced or misplaced brace", exc.col) from None
        parts: list[str | FieldRef] = []
        for token in tokens:
            if isinstance(token, str):
                parts.append(token)
                continue
            filters: list[Filter] = []
            default: str | None = None
            alternatives: list[str] = []
            for step in token["steps"]:
                if "default" in step:
                    default = step["default"]
                elif "alt" in step:
                    alternatives.append(step["alt"])
                elif step["filter"] in FILTERS:
                    filters.append(FILTERS[step["filter"]])
                else:
                    known = ", ".join(sorted(FILTERS))
                    column = source.find("|" + step["filter"]) + 2
                    raise TemplateError(
                        f"unknown filter {step['filter']!r} (known: {known}, or:FIELD, default:VALUE)", column
                    )
            parts.append(FieldRef(token["name"], tuple(filters), default, tuple(alternatives)))
        self.parts: tuple[str | FieldRef, ...] = tuple(parts)  # literal text and field references
        self.fields = frozenset(name for p in parts if isinstance(p, FieldRef) for name in (p.name, *p.alternatives))
        # The two common shapes, for callers on the per-message path to use without a call:
        # `literal` is the whole text of a template without fields, `field` the name in "{name}".
        self.literal: str | None = "".join(p for p in parts if isinstance(p, str)) if not self.fields else None
        only = parts[0] if len(parts) == 1 else None
        plain = isinstance(only, FieldRef) and not only.filters and only.default is None and not only.alternatives
        self.field: str | None = only.name if plain and isinstance(only, FieldRef) else None

    def render(self, fields: Mapping[str, str | None]) -> str | None:
        """The text for these captured fields; None if a required field is missing or empty."""
        parts = self.parts
        if len(parts) == 1:  # the common shapes, "{user}" and "literal", without the loop
            only = parts[0]
            if isinstance(only, str):
                return only
            if not only.filters and only.default is None and not only.alternatives:
                return fields.get(only.name) or None
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = fields.get(part.name)
            for alternative in part.alternatives:
                if value:
                    break
                value = fields.get(alternative)
            if not value:
                if part.default is None:
                    return None
                value = part.default
            for fn in part.filters:
                value = fn(value)
            out.append(value)
        return "".join(out)

    def __repr__(self) -> str:
        return f"Template({self.source!r})"
