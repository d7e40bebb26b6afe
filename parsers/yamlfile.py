"""YAML files (rules, configuration) loaded safely, with every error naming file, line and key.

`load_yaml()` parses with PyYAML's SafeLoader only (no Python tags, nothing executes), refuses
duplicate keys (which plain `safe_load` silently collapses, keeping the last), and keeps the
node tree so that a later validation error at a path like `rules[3].record.Action` can be
reported at the line where that value is written. `YamlDocument.errors()` turns every error of
a pydantic ValidationError into one such ConfigError, with "did you mean" for a misspelt key.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ingestor.errors import ConfigError

Loc = Sequence[str | int]


class ConfigErrors(ConfigError):
    """Several errors reported together (every error of a file, or of several files): `errors`
    holds each as its own ConfigError; the message is one line per error."""

    def __init__(self, errors: Iterable[ConfigError]) -> None:
        flat: list[ConfigError] = []
        for error in errors:
            flat.extend(error.errors if isinstance(error, ConfigErrors) else [error])
        self.errors: tuple[ConfigError, ...] = tuple(flat)
        super().__init__("\n".join(str(e) for e in self.errors))


def combine(errors: Sequence[ConfigError]) -> ConfigError:
    """One error to raise for one or more: the error itself, or ConfigErrors of them all."""
    return errors[0] if len(errors) == 1 else ConfigErrors(errors)


def each_error(error: ConfigError) -> tuple[ConfigError, ...]:
    """The single errors in `error` (itself, or those of a ConfigErrors)."""
    return error.errors if isinstance(error, ConfigErrors) else (error,)


@dataclass(frozen=True)
class YamlDocument:
    """A loaded YAML file: its data and where each value came from."""

    path: str
    data: Any
    root: yaml.Node | None

    def node_at(self, loc: Loc) -> yaml.Node | None:
        """The node of the value at `loc`, or None when there is none."""
        node = self.root
        for step in loc:
            if isinstance(node, yaml.MappingNode):
                node = next((v for k, v in node.value if getattr(k, "value", None) == step), None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and 0 <= step < len(node.value):
                node = node.value[step]
            else:
                return None
        return node

    def key_line(self, loc: Loc) -> int | None:
        """1-based line of the key of the mapping entry at `loc` (else as `line_of`)."""
        parent = self.node_at(loc[:-1]) if loc else None
        if isinstance(parent, yaml.MappingNode):
            key = next((k for k, _ in parent.value if getattr(k, "value", None) == loc[-1]), None)
            if key is not None:
                return int(key.start_mark.line) + 1
        return self.line_of(loc)

    def line_of(self, loc: Loc) -> int | None:
        """1-based line of the value at `loc` (or of its nearest existing parent)."""
        for end in range(len(loc), -1, -1):
            node = self.node_at(loc[:end])
            if node is not None:
                return node.start_mark.line + 1
        return None

    def error(self, exc: ValidationError, model: type[BaseModel] | None = None) -> ConfigError:
        """The first validation error as a ConfigError at its file, line and key."""
        errors = self.errors(exc, model)
        first = errors[0]
        more = len(errors) - 1
        if not more:
            return first
        reason = f"{first.reason} (and {more} more error{'s' if more > 1 else ''})"
        return ConfigError(reason, path=first.path, line=first.line, key=first.key)

    def errors(self, exc: ValidationError, model: type[BaseModel] | None = None) -> list[ConfigError]:
        """Every validation error, each a ConfigError at its file, line and key. With the
        `model` validated, an unknown key says which known one it is likely a typo of."""
        found: list[tuple[tuple[str | int, ...], str, str, _Resolved]] = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if isinstance(p, str | int))
            resolved = _resolve(loc, model, self.data) if model is not None else _Resolved(loc, None, False, None)
            found.append((loc, err["type"], err["msg"], resolved))
        on_branch = {r.union_at for _, _, _, r in found if r.union_at is not None and not r.off_branch}
        suggested: set[tuple[str | int, ...]] = set()
        kept: list[tuple[str, str, _Resolved]] = []
        for loc, kind, msg, resolved in found:
            if resolved.off_branch and resolved.union_at in on_branch:
                continue  # the error of a union member the value is not (a mapping given for a str)
            if kind == "too_short" and any(len(o) > len(loc) and o[: len(loc)] == loc for o, *_ in found):
                continue  # "at least 1 item after validation, not 0": its items' own errors say why
            kept.append((kind, msg, resolved))
        reasons: list[str] = []
        for kind, msg, resolved in kept:
            reason = msg.removeprefix("Value error, ")  # pydantic's prefix for ValueError
            if kind == "extra_forbidden" and resolved.siblings is not None:
                reason, target = _unknown_key(str(resolved.loc[-1]), resolved.siblings)
                if target is not None:
                    suggested.add((*resolved.loc[:-1], target))
            reasons.append(reason)
        out: list[ConfigError] = []
        for (kind, _msg, resolved), reason in zip(kept, reasons, strict=True):
            if kind == "missing" and tuple(resolved.loc) in suggested:
                continue  # the misspelt key's "did you mean" already says it
            out.append(self._at(resolved.loc, reason, key_line=kind == "extra_forbidden"))
        out.sort(key=lambda e: e.line or 0)  # in the order a reader meets them in the file
        return out or [ConfigError(str(exc), path=self.path)]

    def _at(self, loc: Loc, reason: str, *, key_line: bool = False) -> ConfigError:
        line = self.key_line(loc) if key_line else self.line_of(loc)
        # "cert_file: ... is not a readable file" from a model's own check: point at that key.
        name, sep, _ = reason.partition(": ")
        if sep and isinstance(self.node_at(loc), yaml.MappingNode):
            child = self.node_at([*loc, name])
            if child is not None:
                line = child.start_mark.line + 1
        return ConfigError(reason, path=self.path, line=line, key=format_loc(loc) or None)


def _unknown_key(key: str, known: Sequence[str]) -> tuple[str, str | None]:
    """The reason for an unknown key, and the known key it is likely a typo of (or None)."""
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean {close[0]!r}?", close[0]
    return f"unknown key (known here: {', '.join(known)})", None


@dataclass(frozen=True)
class _Resolved:
    """A pydantic error location read against the model: the location in the document (union
    member tags left out), the keys the model knows where its last step is, whether the error
    came from a union member other than the one the value is (a str member for a mapping), and
    the location of that union."""

    loc: tuple[str | int, ...]
    siblings: list[str] | None
    off_branch: bool
    union_at: tuple[str | int, ...] | None


def _resolve(loc: tuple[str | int, ...], model: type[BaseModel], data: Any) -> _Resolved:
    clean: list[str | int] = []
    tp: Any = model
    value = data
    off_branch = False
    union_at: tuple[str | int, ...] | None = None
    parent: Any = None
    for step in loc:
        tp = _unwrap(tp)
        members = _union_members(tp)
        if members is not None and isinstance(step, str):
            chosen = _member_for_tag(members, step)
            if chosen is not None:
                union_at = tuple(clean)
                off_branch = off_branch or (_is_model(chosen) != isinstance(value, dict))
                tp = chosen
                continue
        clean.append(step)
        parent = tp
        value = _child_value(value, step)
        tp = _child_type(tp, step)
    parent = _unwrap(parent)
    siblings = list(parent.model_fields) if clean and _is_model(parent) else None
    return _Resolved(tuple(clean), siblings, off_branch, union_at)


def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
            continue
        if origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(members) == 1:
                tp = members[0]
                continue
        return tp


def _union_members(tp: Any) -> list[Any] | None:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [_unwrap(a) for a in typing.get_args(tp) if a is not type(None)]
    return None


def _member_for_tag(members: list[Any], tag: str) -> Any:
    """The union member pydantic's location tag (`str`, `function-after[_one(), DetailTemplate]`) names."""
    for member in members:
        name = getattr(member, "__name__", None)
        if name is not None and (tag == name or (_is_model(member) and f"{name}]" in tag)):
            return member
    return None


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _child_value(value: Any, step: str | int) -> Any:
    if isinstance(value, Mapping):
        return value.get(step)
    if isinstance(value, list) and isinstance(step, int) and 0 <= step < len(value):
        return value[step]
    return None


def _child_type(tp: Any, step: str | int) -> Any:
    if _is_model(tp):
        field = tp.model_fields.get(step) if isinstance(step, str) else None
        return field.annotation if field is not None else None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (tuple, list, set, frozenset) and args and isinstance(step, int):
        return args[0]
    if origin in (dict, Mapping) and len(args) == 2:
        return args[1]
    return None


def format_loc(loc: Loc) -> str:
    """A value's path as rule authors read it: `rules[1].record.Action`."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


_DOUBLE_QUOTED_HINT = (
    "; inside double quotes YAML reads a backslash as an escape (\\d, \\s and \\. are not YAML escapes, "
    "\\b becomes a backspace): write a regex in single quotes ('\\d+') or as a block scalar (|)"
)


def load_yaml(path: str | Path, text: str | None = None) -> YamlDocument:
    """Read and parse `path` (or `text`, reported as coming from `path`)."""
    name = str(path)
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read: {exc.strerror}", path=name) from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", path=name) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is not None:
            _refuse_duplicate_keys(root, name)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = f"YAML syntax: {exc.problem or exc.context}"
        if exc.context == "while scanning a double-quoted scalar" and "escape" in str(exc.problem):
            reason += _DOUBLE_QUOTED_HINT
        raise ConfigError(reason, path=name, line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML: {exc}", path=name) from None
    return YamlDocument(name, data, root)


def _refuse_duplicate_keys(node: yaml.Node, path: str) -> None:
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, yaml.MappingNode):
            seen: dict[object, int] = {}
            for key, value in current.value:
                name = getattr(key, "value", None)
                if isinstance(name, str):
                    line = key.start_mark.line + 1
                    if name in seen:
                        raise ConfigError(
                            f"duplicate key {name!r} (first at line {seen[name]})", path=path, line=line, key=name
                        )
                    seen[name] = line
                stack.append(value)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)
