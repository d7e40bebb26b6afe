"""The rule file format (YAML), as pydantic models. See rules/README.md for the author's view.

```yaml
pack: cisco_ios
description: Cisco IOS configuration, logon and device events
rules:
  - id: cisco.sys.config_i
    description: Running configuration changed from a terminal
    match:
      mnemonic: SYS-5-CONFIG_I
      regex: 'Configured from (?P<via>\\S+) by (?P<user>\\S+)'
    record:
      Action: Modified
      ObjectType: Configuration
      Who: "{user}"
      What: running-config
    details:
      Configured from: "{via}"
    examples:
      - line: "<189>12: *Mar  1 00:01:02.345: %SYS-5-CONFIG_I: Configured from console by admin"
        record: {Action: Modified, Who: admin}
```
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ingestor.netwrix.records import Action, check_item_name

from ..syslog import FAMILIES, MNEMONIC_PATTERN

_STRICT = ConfigDict(extra="forbid", frozen=True)
_FULL_MNEMONIC = re.compile(MNEMONIC_PATTERN)
_BARE_MNEMONIC = re.compile(r"[A-Za-z0-9_]+")

# Record fields a rule may set with templates. When comes from the message; DataSource,
# MonitoringPlan and Item from configuration; DetailList from `details`.
TEMPLATE_FIELDS = ("Who", "Action", "What", "Where", "ObjectType", "Workstation")
REQUIRED_FIELDS = ("Who", "Action", "What", "ObjectType")


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class MatchSpec(BaseModel):
    """When a rule applies: every given condition must hold."""

    model_config = _STRICT

    program: tuple[str, ...] = ()
    mnemonic: tuple[str, ...] = ()
    facility: tuple[str, ...] = ()
    family: tuple[str, ...] = ()  # Cisco platform families (asa, ftd, ios, iosxr, nxos): `Message.family`
    contains: tuple[str, ...] = ()  # any of these literal strings must occur in the text
    regex: str | None = None

    _lists = field_validator("program", "mnemonic", "facility", "family", "contains", mode="before")(_as_list)

    @field_validator("family")
    @classmethod
    def _families(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [v for v in values if v not in FAMILIES]
        if unknown:
            raise ValueError(f"unknown family {', '.join(map(repr, unknown))}; known: {', '.join(FAMILIES)}")
        return values

    @field_validator("mnemonic")
    @classmethod
    def _mnemonics(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            if _FULL_MNEMONIC.fullmatch(value) is None and _BARE_MNEMONIC.fullmatch(value) is None:
                raise ValueError(
                    f"{value!r} is neither FACILITY-SEVERITY-MNEMONIC (SYS-5-CONFIG_I) nor a bare MNEMONIC (CONFIG_I)"
                )
        return values

    @field_validator("contains")
    @classmethod
    def _non_empty(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        if any(not v for v in values):
            raise ValueError("an empty string in 'contains' would match everything")
        return values

    @model_validator(mode="after")
    def _something(self) -> MatchSpec:
        if not (self.program or self.mnemonic or self.facility or self.contains or self.regex):
            raise ValueError("a rule must match on at least one of program, mnemonic, facility, contains, regex")
        return self


class DetailTemplate(BaseModel):
    """A DetailList entry with a value before and/or after the change."""

    model_config = _STRICT

    before: str | None = None
    after: str | None = None

    @model_validator(mode="after")
    def _one(self) -> DetailTemplate:
        if self.before is None and self.after is None:
            raise ValueError("a detail needs 'before', 'after' or both")
        return self


class ExampleSpec(BaseModel):
    """An input line and what the rule must make of it (a subset of the record's fields)."""

    model_config = _STRICT

    line: str
    record: dict[str, Any] | None = None
    unmatched: bool = False  # this rule must leave the line alone
    dropped: bool = False  # this (drop) rule must match the line and discard it

    @model_validator(mode="after")
    def _one_expectation(self) -> ExampleSpec:
        if (self.record is not None) + self.unmatched + self.dropped != 1:
            raise ValueError(
                "an example gives exactly one of 'record' (the expected fields), 'unmatched: true', 'dropped: true'"
            )
        return self


class RuleSpec(BaseModel):
    """One rule: a match, and the Activity Record to make (or `drop: true` to discard)."""

    model_config = _STRICT

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.\-]*$", max_length=128)
    description: str = Field(min_length=1)
    match: MatchSpec
    record: dict[str, str] = {}
    details: dict[str, str | DetailTemplate] = {}
    drop: bool = False
    # Fallback rules are tried after every other candidate, whatever the file order: generic
    # rules (any program's PAM lines) that specific rules in any pack must win over.
    fallback: bool = False
    examples: tuple[ExampleSpec, ...] = Field(min_length=1)

    @field_validator("record")
    @classmethod
    def _fields(cls, record: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(record) - set(TEMPLATE_FIELDS))
        if unknown:
            raise ValueError(f"unknown record field(s) {', '.join(unknown)}; allowed: {', '.join(TEMPLATE_FIELDS)}")
        if "Action" in record and "{" not in record["Action"]:
            try:
                action = Action(record["Action"])  # any casing; normalized to Netwrix's
            except ValueError:
                allowed = ", ".join(a.value for a in Action)
                raise ValueError(f"Action {record['Action']!r} is not one of {allowed}") from None
            record = {**record, "Action": action.value}
        return record

    @model_validator(mode="after")
    def _complete(self) -> RuleSpec:
        if not self.drop:
            missing = [f for f in REQUIRED_FIELDS if f not in self.record]
            if missing:
                raise ValueError(f"record lacks {', '.join(missing)} (or set drop: true)")
        return self


class PackSpec(BaseModel):
    """A rule file."""

    model_config = _STRICT

    pack: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    description: str = ""
    # DataSource for this pack's records unless the configuration names one.
    data_source: str | None = Field(default=None, min_length=1, max_length=255)
    # The Integration Item for this pack's records, a plain name (the server adds its type):
    # default the data_source. The configuration's records.items / records.item override it.
    item: str | None = Field(default=None, min_length=1, max_length=255)
    # false: an optional pack, loaded only when the configuration's `rules.enable` names it
    # (network telemetry such as ACL hits and IPS signatures, which are not user activity).
    enabled: bool = True
    rules: tuple[RuleSpec, ...] = Field(min_length=1)

    @field_validator("item")
    @classmethod
    def _plain_item(cls, value: str | None) -> str | None:
        return check_item_name(value)
