"""YAML files (rules, configuration) loaded safely, with every error naming file, line and key.

`load_yaml()` parses with PyYAML's SafeLoader only (no Python tags, nothing executes), refuses
duplicate keys (which plain `safe_load` silently collapses, keeping the last), and keeps the
node tree so that a later validation error at a path like `rules[3].record.Action` can be
reported at the line where that value is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ingestor.errors import ConfigError


@dataclass(frozen=True)
class YamlDocument:
    """A loaded YAML file: its data and where each value came from."""

    path: str
    data: Any
    root: yaml.Node | None

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """1-based line of the value at `loc` (or of its nearest existing parent)."""
        node = self.root
        line = node.start_mark.line + 1 if node is not None else None
        for step in loc:
            if isinstance(node, yaml.MappingNode):
                node = next((v for k, v in node.value if getattr(k, "value", None) == step), None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and 0 <= step < len(node.value):
                node = node.value[step]
            else:
                node = None
            if node is None:
                break
            line = node.start_mark.line + 1
        return line

    def error(self, exc: ValidationError) -> ConfigError:
        """The first validation error as a ConfigError at its file, line and key."""
        first = exc.errors()[0]
        loc = [p for p in first["loc"] if isinstance(p, str | int)]
        key = format_loc(loc)
        reason = first["msg"].removeprefix("Value error, ")  # pydantic's prefix for ValueError
        more = len(exc.errors()) - 1
        if more:
            reason += f" (and {more} more error{'s' if more > 1 else ''})"
        return ConfigError(reason, path=self.path, line=self.line_of(loc), key=key or None)


def format_loc(loc: Sequence[str | int]) -> str:
    """A value's path as rule authors read it: `rules[1].record.Action`."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


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
        raise ConfigError(f"YAML syntax: {exc.problem or exc.context}", path=name, line=line) from None
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
