"""Finding and loading rule files: the built-in packs and user rule folders.

A rule folder holds pack files (`*.yaml`/`*.yml`), optionally a `details.yaml` declaring the
DetailList properties its rules may emit, and a `tests/` folder of golden logs; only the pack
files are rules. Packs load in the order given (built-in first), and a user rule replaces the
built-in one with the same id (each replacement is logged and in `RuleSet.overrides`); two user
rules with the same id are an error, as neither would be the obvious winner.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ingestor.errors import ConfigError, RuleError

from ..yamlfile import combine, each_error, load_yaml
from .engine import Rule, RuleSet, build_ruleset, compile_pack

log = logging.getLogger("nwsyslog.rules")

BUILTIN_DIR = Path(__file__).resolve().parent.parent.parent / "rules"
DETAILS_FILE = "details.yaml"
_SUFFIXES = (".yaml", ".yml")


def builtin_dir() -> Path:
    """The folder of the built-in packs (`rules/` in a checkout and in an installed wheel)."""
    return BUILTIN_DIR


class DetailSpec(BaseModel):
    """One declared DetailList property."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = Field(min_length=1)


@dataclass(frozen=True)
class LoadedPack:
    """One compiled rule file, with the folder's declared DetailList properties (if any)."""

    path: Path
    rules: list[Rule]
    details: dict[str, DetailSpec] | None = None
    folder: Path = field(default_factory=Path)


def rule_files(path: Path) -> list[Path]:
    """The rule files at `path`: the file itself, or a folder's pack files (sorted, recursive,
    skipping `tests/` folders and `details.yaml`). Raises RuleError when there are none."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise RuleError("no such rule file or folder", path=str(path))
    files = sorted(
        p
        for p in path.rglob("*")
        if p.suffix in _SUFFIXES
        and p.is_file()
        and p.name != DETAILS_FILE
        and "tests" not in p.relative_to(path).parts[:-1]
    )
    if not files:
        raise RuleError("folder holds no rule files (*.yaml)", path=str(path))
    return files


def load_details(folder: Path) -> dict[str, DetailSpec] | None:
    """The folder's `details.yaml` (property name -> description), or None when it has none."""
    path = folder / DETAILS_FILE
    if not path.is_file():
        return None
    doc = load_yaml(path)
    if not isinstance(doc.data, dict):
        raise RuleError("expected a mapping of DetailList property name -> {description: ...}", path=str(path))
    details: dict[str, DetailSpec] = {}
    for name, spec in doc.data.items():
        try:
            details[str(name)] = DetailSpec.model_validate(spec)
        except ValidationError as exc:
            error = doc.error(exc)
            raise RuleError(error.reason, path=str(path), line=doc.line_of([name]), key=str(name)) from None
    return details


def load_packs(paths: Iterable[Path]) -> list[LoadedPack]:
    """Compile every rule file under `paths`, in order. Every file is read even after a bad
    one: a RuleError names the one error, ConfigErrors all of them (every file's)."""
    packs: list[LoadedPack] = []
    errors: list[ConfigError] = []
    details_cache: dict[Path, dict[str, DetailSpec] | None] = {}
    for root in paths:
        try:
            files = rule_files(root)
        except ConfigError as exc:
            errors.append(exc)
            continue
        for file in files:
            folder = file.parent
            try:
                if folder not in details_cache:
                    details_cache[folder] = None  # a bad details.yaml is reported once
                    details_cache[folder] = load_details(folder)
                packs.append(LoadedPack(file, compile_pack(load_yaml(file)), details_cache[folder], folder))
            except ConfigError as exc:
                errors.extend(each_error(exc))
    if errors:
        raise combine(errors)
    return packs


def refuse_duplicate_ids(packs: Iterable[LoadedPack]) -> None:
    """RuleError (ConfigErrors for several) for each rule whose id an earlier rule of `packs`
    (the user's, in one file or two) already has, naming the file and line of both."""
    seen: dict[str, Rule] = {}
    errors: list[ConfigError] = []
    for pack in packs:
        for index, rule in enumerate(pack.rules):
            first = seen.setdefault(rule.id, rule)
            if first is rule:
                continue
            path, _, line = rule.source.rpartition(":")
            reason = (
                f"the id is also defined at {first.source}; only one user rule may have an id "
                "(reusing a built-in rule's id replaces that rule): rename or remove one"
            )
            at = int(line) if line.isdigit() else None
            errors.append(RuleError(reason, path=path, line=at, key=f"rules[{index}].id", rule_id=rule.id))
    if errors:
        raise combine(errors)


def load_ruleset(
    user_paths: Sequence[Path] = (), *, builtin: bool = True, enable: Collection[str] = (), announce: bool = True
) -> RuleSet:
    """The RuleSet of the built-in packs (unless `builtin=False`) followed by `user_paths`;
    optional packs (`enabled: false`) only when `enable` names them. Every rule file is read
    and every error raised at once (ConfigErrors when there are several). A user rule replacing
    a built-in one is in `RuleSet.overrides`, and logged at info unless `announce=False` (for
    callers that print them themselves)."""
    if not builtin and not user_paths:
        raise RuleError("no rule files given")
    errors: list[ConfigError] = []
    base: list[LoadedPack] = []
    user: list[LoadedPack] = []
    for target, roots in ((base, [builtin_dir()] if builtin else []), (user, list(user_paths))):
        try:
            target.extend(load_packs(roots))
        except ConfigError as exc:
            errors.extend(each_error(exc))
    try:
        refuse_duplicate_ids(user)
    except ConfigError as exc:
        errors.extend(each_error(exc))
    if errors:
        raise combine(errors)
    ruleset = build_ruleset(enabled_rules([*base, *user], enable))
    if announce:
        for override in ruleset.overrides:
            log.info("%s", override)
    return ruleset


def enabled_rules(packs: Iterable[LoadedPack], enable: Collection[str] = ()) -> Iterator[list[Rule]]:
    """Each pack's rules, optional packs only when `enable` names them; a name in `enable` that
    no pack has is a ConfigError naming the packs there are."""
    packs = list(packs)
    names = {rule.pack for pack in packs for rule in pack.rules}
    unknown = sorted(set(enable) - names)
    if unknown:
        optional = sorted({r.pack for p in packs for r in p.rules if r.optional})
        raise ConfigError(
            f"no rule pack named {', '.join(map(repr, unknown))} (optional packs: {', '.join(optional) or 'none'})",
            key="rules.enable",
        )
    for pack in packs:
        yield [rule for rule in pack.rules if not rule.optional or rule.pack in enable]
