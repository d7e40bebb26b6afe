"""Rule packs test themselves: inline examples, golden logs and the `parse --explain` format.

- Every rule's `examples:` run through the *whole* RuleSet; a positive example must be matched by
  its own rule (which catches shadowing) and yield at least the fields it lists; an
  `unmatched: true` example must be left alone by that rule.
- Every `tests/test-*.log` beside a pack is explained line by line and compared with its
  `-expected.jsonl` twin, which is exactly what `nwsyslog parse --explain` prints, so
  `--generate` only has to write that output.
- A folder with a `details.yaml` may emit only the DetailList properties it declares.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ingestor.errors import RenderError, RuleError
from ingestor.netwrix.encoding import JsonEncoder
from ingestor.netwrix.records import ActivityRecord

from ..syslog import FACILITIES, SEVERITIES, Message, parse_syslog, zone_for
from ..yamlfile import load_yaml
from .engine import Override, Rule, RuleSet, build_ruleset
from .loader import LoadedPack, builtin_dir, enabled_rules, load_packs, refuse_duplicate_ids

# Examples and golden logs are read as if received at this moment, so a line without a year
# always gets the same one and expected files never change with the calendar.
EXAMPLE_RECEIVED_AT = datetime(2026, 6, 15, 12, 0, 0, tzinfo=UTC)
GOLDEN_GLOB = "test-*.log"
EXPECTED_SUFFIX = "-expected.jsonl"
CONFIG_SUFFIX = "-config.yaml"

_JSON = JsonEncoder()


def record_json(record: ActivityRecord) -> dict[str, Any]:
    """The record as Netwrix's JSON form (field names and values as the API receives them)."""
    result: dict[str, Any] = json.loads(_JSON.encode(record))
    return result


@dataclass(frozen=True)
class ExplainOptions:
    """What a line cannot say about itself: when and from where it was received, its zone."""

    received_at: datetime = EXAMPLE_RECEIVED_AT
    source: str = ""
    tz: tzinfo = UTC
    defaults: Mapping[str, Any] = field(default_factory=dict)


def explain(ruleset: RuleSet, line: bytes | str, number: int, options: ExplainOptions) -> dict[str, Any]:
    """One `parse --explain` object for one input line (bytes as received, or text)."""
    raw = line if isinstance(line, bytes) else line.encode("utf-8", "surrogateescape")
    message = parse_syslog(raw, source=options.source, received_at=options.received_at, tz=options.tz)
    head = {"line": number, "header": header_json(message)}
    unparsed = message.unparsed
    match = ruleset.match(message)
    if match is None:
        return {**head, "unmatched": True}
    if unparsed is not None and message.unparsed is None:  # read again with no header (`Message.unparsed`)
        head["header"] = header_json(message)
    try:
        record = match.render(options.defaults)
    except RenderError as exc:
        return {**head, "rule": match.rule.id, "error": exc.reason}
    if record is None:
        return {**head, "rule": match.rule.id, "dropped": True}
    return {**head, "rule": match.rule.id, "record": record_json(record)}


def header_json(message: Message) -> dict[str, Any]:
    """What the parser read of a message's header (the fields it found; `parse_error` when it
    could not read one): what a rule can match on besides the text."""
    out: dict[str, Any] = {}
    if message.timestamp is not None:
        out["time"] = message.timestamp.isoformat()
        if message.clock_mark:
            out["clock"] = message.clock_mark  # Cisco's "*" (not authoritative) or "." (NTP lost)
    for name in ("hostname", "location", "program", "pid", "msgid", "mnemonic", "family", "sequence"):
        value = getattr(message, name)
        if value:
            out["host" if name == "hostname" else name] = value
    if message.facility is not None:
        out["facility"] = FACILITIES[message.facility] if message.facility < len(FACILITIES) else message.facility
    if message.severity is not None:
        out["severity"] = SEVERITIES[message.severity]
    if message.parse_error is not None:
        out["parse_error"] = message.parse_error
    return out


def explain_lines(ruleset: RuleSet, lines: Iterable[bytes | str], options: ExplainOptions) -> Iterator[dict[str, Any]]:
    """`explain()` over numbered lines; blank lines are skipped but keep their numbers."""
    for number, line in enumerate(lines, 1):
        if line.strip():
            yield explain(ruleset, line, number, options)


def dump_line(obj: Mapping[str, Any]) -> str:
    """One JSONL line, in the stable form golden files use."""
    return json.dumps(obj, ensure_ascii=False, sort_keys=False)


_TODO = re.compile(r"\bTODO\b")


@dataclass(frozen=True)
class Failure:
    """One failed check: where (file:line and rule), and a readable explanation or diff."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"FAIL {self.where}\n{self.message}"


@dataclass
class Report:
    """The outcome of a `test-rules` run."""

    rules: int = 0
    examples: int = 0
    golden_files: int = 0
    golden_lines: int = 0
    overridden: int = 0
    overrides: list[Override] = field(default_factory=list)  # tested rules replacing built-in ones
    failures: list[Failure] = field(default_factory=list)
    generated: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        status = "ok" if self.ok else f"{len(self.failures)} failed"
        extra = f", {self.overridden} overridden rules skipped" if self.overridden else ""
        return (
            f"{status}: {self.rules} rules, {self.examples} examples, "
            f"{self.golden_files} golden files ({self.golden_lines} lines){extra}"
        )


class _GoldenConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    received_at: datetime = EXAMPLE_RECEIVED_AT
    source: str = ""
    timezone: str = "UTC"


def _subset_diff(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    for name, want in expected.items():
        got = actual.get(name)
        if name == "DetailList" and isinstance(want, Mapping):
            have = {d.get("PropertyName"): d for d in got or []}
            for prop, value in want.items():
                entry = have.get(prop, {})
                # A string is the After value; a mapping gives Before and/or After.
                wanted = value if isinstance(value, Mapping) else {"After": value}
                actual = {k: entry.get(k) for k in wanted}
                if actual != dict(wanted):
                    lines.append(f"  - DetailList.{prop}: {dict(wanted)!r}")
                    lines.append(f"  + DetailList.{prop}: {actual!r}")
            continue
        if got != want:
            lines.append(f"  - {name}: {want!r}")
            lines.append(f"  + {name}: {got!r}")
    return lines


def check_examples(pack: LoadedPack, ruleset: RuleSet, report: Report) -> None:
    """Run each rule's inline examples through the whole RuleSet."""
    active = {id(r) for r in ruleset.rules}
    for rule in pack.rules:
        if id(rule) not in active:
            report.overridden += 1
            continue
        report.rules += 1
        _check_details(pack, rule, report)
        _check_todo(rule, report)
        for index, example in enumerate(rule.spec.examples, 1):
            report.examples += 1
            where = f"{rule.source} rule {rule.id}, example {index}"
            result = explain(ruleset, example.line, 1, ExplainOptions())
            head = f"  line: {example.line}"
            if example.unmatched:
                if result.get("rule") == rule.id:
                    report.failures.append(Failure(where, f"{head}\n  expected this rule to leave the line alone"))
                continue
            if example.dropped:
                if result.get("rule") != rule.id or not result.get("dropped"):
                    report.failures.append(
                        Failure(where, f"{head}\n  expected this rule to drop the line, got {result}")
                    )
                continue
            if result.get("rule") != rule.id:
                got = f"matched by {result['rule']}" if "rule" in result else "matched by no rule"
                report.failures.append(Failure(where, f"{head}\n  expected rule {rule.id}, {got}"))
                continue
            if "record" not in result:
                why = result.get("error", "the rule drops the line")
                report.failures.append(Failure(where, f"{head}\n  no record: {why}"))
                continue
            diff = _subset_diff(example.record or {}, result["record"])
            if diff:
                report.failures.append(Failure(where, "\n".join([head, *diff])))


def _check_todo(rule: Rule, report: Report) -> None:
    """A drafted rule (`nwsyslog unmatched --draft`) is not done while a TODO is left in it."""
    fields = {"description": rule.spec.description, **rule.spec.record}
    left = [name for name, value in fields.items() if _TODO.search(value)]
    if left:
        report.failures.append(
            Failure(f"{rule.source} rule {rule.id}", f"  fill in the TODO in {', '.join(left)} (a drafted rule)")
        )


def _check_details(pack: LoadedPack, rule: Rule, report: Report) -> None:
    if pack.details is None:
        return
    for prop in rule.details:
        if prop not in pack.details:
            report.failures.append(
                Failure(
                    f"{rule.source} rule {rule.id}",
                    f"  DetailList property {prop!r} is not declared in {pack.folder / 'details.yaml'}",
                )
            )


def golden_files(folder: Path) -> list[Path]:
    """The golden logs of a pack folder (`tests/test-*.log`)."""
    tests = folder / "tests"
    return sorted(tests.glob(GOLDEN_GLOB)) if tests.is_dir() else []


def golden_options(log: Path) -> ExplainOptions:
    """The options a golden log declares in its `-config.yaml` twin (defaults otherwise)."""
    path = log.with_name(log.name + CONFIG_SUFFIX)
    if not path.is_file():
        return ExplainOptions()
    doc = load_yaml(path)
    try:
        config = _GoldenConfig.model_validate(doc.data or {})
    except ValidationError as exc:
        error = doc.error(exc)
        raise RuleError(error.reason, path=str(path), line=error.line, key=error.key) from None
    when = config.received_at if config.received_at.tzinfo else config.received_at.replace(tzinfo=UTC)
    try:
        tz = zone_for(config.timezone)
    except ValueError as exc:
        raise RuleError(str(exc), path=str(path), line=doc.line_of(["timezone"]), key="timezone") from None
    return ExplainOptions(received_at=when, source=config.source, tz=tz)


def check_golden(log: Path, ruleset: RuleSet, report: Report, *, generate: bool = False) -> None:
    """Explain a golden log and compare with (or, with `generate`, write) its expected file."""
    lines = log.read_bytes().splitlines()
    actual = [dump_line(obj) for obj in explain_lines(ruleset, lines, golden_options(log))]
    report.golden_files += 1
    report.golden_lines += len(actual)
    expected_path = log.with_name(log.name + EXPECTED_SUFFIX)
    if generate:
        expected_path.write_text("".join(f"{line}\n" for line in actual), encoding="utf-8")
        report.generated.append(expected_path)
        return
    if not expected_path.is_file():
        report.failures.append(Failure(str(log), f"  no {expected_path.name}; write it with test-rules --generate"))
        return
    expected = expected_path.read_text(encoding="utf-8").splitlines()
    if [_normal(x) for x in expected] != [_normal(x) for x in actual]:
        diff = difflib.unified_diff(expected, actual, str(expected_path), "now", lineterm="", n=0)
        report.failures.append(Failure(str(log), "\n".join(f"  {d}" for d in diff)))


def _normal(line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return line


def run_rule_tests(paths: Sequence[Path] = (), *, builtin: bool = True, generate: bool = False) -> Report:
    """Test the packs at `paths` (the built-in packs when none) against the RuleSet they run in:
    the built-in packs (unless `builtin=False`) followed by `paths`."""
    targets = list(paths) or [builtin_dir()]
    tested = load_packs(targets)
    refuse_duplicate_ids(tested)
    base = load_packs([builtin_dir()]) if builtin and paths else []
    everything = [*base, *tested]
    # Each pack is tested in the RuleSet it runs in: the packs on by default, and itself when
    # it is an optional one (its examples need it; the others' must not see it).
    rulesets: dict[frozenset[str], RuleSet] = {}

    def ruleset_for(enable: frozenset[str]) -> RuleSet:
        if enable not in rulesets:
            rulesets[enable] = build_ruleset(enabled_rules(everything, enable))
        return rulesets[enable]

    report = Report(overrides=list(ruleset_for(frozenset()).overrides))
    folders: dict[Path, set[str]] = {}
    for pack in tested:
        optional = frozenset(r.pack for r in pack.rules if r.optional)
        check_examples(pack, ruleset_for(optional), report)
        folders.setdefault(pack.folder, set()).update(optional)
    for folder, optional_packs in folders.items():
        for log in golden_files(folder):
            check_golden(log, ruleset_for(frozenset(optional_packs)), report, generate=generate)
    return report
