"""The Netwrix Activity Record schema, as pydantic v2 models.

This module is the one place that documents the Netwrix top-level fields. Limits follow the
Integration API's input table: Who, Where, ObjectType, MonitoringPlan.Name and
Detail.PropertyName are nvarchar(255); What, Workstation, DataSource, Before and After are
unbounded. The `Action` enumeration is the 23 values Netwrix publishes, kept here and nowhere
else.

The 255 limits count UTF-16 code units, as SQL Server's nvarchar does: a character outside the
Basic Multilingual Plane (an emoji) counts two.

Every string is cleaned of characters XML 1.0 cannot carry (control characters other than TAB,
CR and LF, lone surrogates, U+FFFE and U+FFFF): each becomes U+FFFD, so a hostile syslog line can
never break serialization or reach the server.

Example:
    >>> from datetime import datetime, timezone
    >>> r = ActivityRecord(Who="admin", Action="modified", What="running-config",
    ...     When=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc), Where="core-sw1",
    ...     ObjectType="Configuration")
    >>> r.Action
    <Action.MODIFIED: 'Modified'>
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, NamedTuple, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

NAMESPACE = "http://schemas.netwrix.com/api/v1/activity_records/"
ERROR_NAMESPACE = "http://schemas.netwrix.com/api/v1/"


class Action(StrEnum):
    """The Action values Netwrix publishes. Lookup by value ignores case."""

    ADDED = "Added"
    ADD_FAILED = "Add (Failed Attempt)"
    REMOVED = "Removed"
    REMOVE_FAILED = "Remove (Failed Attempt)"
    MODIFIED = "Modified"
    MODIFY_FAILED = "Modify (Failed Attempt)"
    READ = "Read"
    READ_FAILED = "Read (Failed Attempt)"
    MOVED = "Moved"
    MOVE_FAILED = "Move (Failed Attempt)"
    RENAMED = "Renamed"
    RENAME_FAILED = "Rename (Failed Attempt)"
    CHECKED_IN = "Checked in"
    CHECKED_OUT = "Checked out"
    DISCARD_CHECK_OUT = "Discard check out"
    SUCCESSFUL_LOGON = "Successful Logon"
    FAILED_LOGON = "Failed Logon"
    LOGOFF = "Logoff"
    COPIED = "Copied"
    SENT = "Sent"
    SESSION_START = "Session start"
    SESSION_END = "Session end"
    ACTIVATED = "Activated"

    @classmethod
    def _missing_(cls, value: object) -> Action | None:
        if isinstance(value, str):
            return _ACTION_BY_FOLDED.get(" ".join(value.split()).casefold())
        return None


_ACTION_BY_FOLDED: dict[str, Action] = {a.value.casefold(): a for a in Action}

# Everything XML 1.0 allows is: TAB, LF, CR, U+0020-U+D7FF, U+E000-U+FFFD, U+10000-U+10FFFF.
_XML_ILLEGAL = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
REPLACEMENT = "\ufffd"


def has_xml_illegal(text: str) -> bool:
    """Whether `text` holds a character XML 1.0 cannot carry."""
    return _XML_ILLEGAL.search(text) is not None


def clean_xml_text(value: object) -> object:
    """Replace every character XML 1.0 cannot carry with U+FFFD; other values pass through."""
    if isinstance(value, str) and _XML_ILLEGAL.search(value) is not None:
        return _XML_ILLEGAL.sub(REPLACEMENT, value)
    return value


NVARCHAR_LIMIT = 255  # Who, Where, ObjectType, MonitoringPlan.Name, Detail.PropertyName


def utf16_length(text: str) -> int:
    """Length in UTF-16 code units (what nvarchar counts): astral characters count two."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def over_utf16(text: str, limit: int = NVARCHAR_LIMIT) -> bool:
    """Whether `text` has more than `limit` UTF-16 code units (a text of at most half as many
    characters cannot, so most are answered without counting)."""
    return len(text) > limit // 2 and utf16_length(text) > limit


def cap_utf16(text: str, limit: int = NVARCHAR_LIMIT) -> str:
    """`text` cut to at most `limit` UTF-16 code units, never inside a character."""
    if not over_utf16(text, limit):
        return text
    units = 0
    for index, ch in enumerate(text):
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > limit:
            return text[:index]
    return text


ITEM_TYPE_SUFFIX = " (Integration)"


def check_item_name(name: str | None) -> str | None:
    """An Item name as the API takes it: plain. "X (Integration)" is how the server shows item
    X; sent, it names another item, which Item filters do not find (ValueError)."""
    if name is not None and name.rstrip().casefold().endswith(ITEM_TYPE_SUFFIX.strip().casefold()):
        plain = name.rstrip()[: -len(ITEM_TYPE_SUFFIX.strip())].rstrip()
        raise ValueError(
            f"Item {name!r}: give the plain name ({plain!r}); the server adds the type and shows "
            f"{plain + ITEM_TYPE_SUFFIX!r}, while a name sent with the suffix is another item"
        )
    return name


def _check_nvarchar(text: str) -> str:
    if over_utf16(text):
        raise ValueError(
            f"at most {NVARCHAR_LIMIT} UTF-16 code units (nvarchar({NVARCHAR_LIMIT})), got {utf16_length(text)}"
        )
    return text


Text = Annotated[str, BeforeValidator(clean_xml_text)]
RequiredText = Annotated[str, BeforeValidator(clean_xml_text), Field(min_length=1)]
Name255 = Annotated[str, BeforeValidator(clean_xml_text), Field(min_length=1), AfterValidator(_check_nvarchar)]

_FROZEN = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)


class Detail(BaseModel):
    """One DetailList entry: a property and its value before and after."""

    model_config = _FROZEN

    PropertyName: Name255
    Before: Text | None = None
    After: Text | None = None


class MonitoringPlanRef(BaseModel):
    """The Netwrix monitoring plan the record belongs to (it must exist on the server)."""

    model_config = _FROZEN

    Name: Name255
    ID: Text | None = None


class ItemRef(BaseModel):
    """The Integration item of the monitoring plan, by its plain name (`Cisco IOS`): the server
    sets its type itself and shows it as `Cisco IOS (Integration)`; a name sent with that
    suffix names another item, which Item filters do not find."""

    model_config = _FROZEN

    Name: RequiredText


class ActivityRecord(BaseModel):
    """One Netwrix Activity Record (input form).

    `When` must be timezone-aware; it is written as UTC with a `Z` suffix.
    """

    model_config = _FROZEN

    Who: Name255
    Action: Action
    What: RequiredText
    When: AwareDatetime
    Where: Name255
    ObjectType: Name255
    Workstation: Text | None = None
    MonitoringPlan: MonitoringPlanRef | None = None
    DataSource: Text | None = None
    Item: ItemRef | None = None
    IsArchiveOnly: bool | None = None
    DetailList: tuple[Detail, ...] = ()


Record = ActivityRecord

_M = TypeVar("_M", bound=BaseModel)
_K = TypeVar("_K")
_V = TypeVar("_V")


def trusted(cls: type[_M], values: dict[str, Any]) -> _M:
    """An instance of `cls` from values already checked against its schema, without validating
    again: what `model_construct()` does, minus its per-field work (13 us against 2 us for an
    ActivityRecord), for the per-message path. Unknown keys are a programming error.
    `tests/rules/test_rules_fuzz.py` holds its results equal to validated ones."""
    data = {**_defaults(cls), **values}
    obj = cls.__new__(cls)
    object.__setattr__(obj, "__dict__", data)
    object.__setattr__(obj, "__pydantic_fields_set__", set(values))
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj


@cache
def _defaults(cls: type[BaseModel]) -> dict[str, Any]:
    return {
        name: f.get_default(call_default_factory=True) for name, f in cls.model_fields.items() if not f.is_required()
    }


def format_when(when: datetime) -> str:
    """ISO 8601 in UTC with `Z`, microseconds only when present: `2026-01-02T03:04:05Z`."""
    text = _WHEN_TEXT.get(when)
    if text is not None:
        return text
    micro = when.microsecond
    if not micro:
        return _remember(_WHEN_TEXT, when, when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    # A stamp with a fraction (IOS's msec) is mostly new: its second's text is looked up (or
    # made once) and the fraction's text added: ~23,700 instructions a new stamp against
    # ~29,600 with strftime (callgrind; replace(microsecond=0) alone costs ~9,600).
    fraction = _FRACTIONS.get(micro)
    if fraction is None:
        fraction = _remember(_FRACTIONS, micro, (timedelta(microseconds=micro), f".{micro:06d}Z"))
    return _remember(_WHEN_TEXT, when, format_when(when - fraction[0])[:-1] + fraction[1])


def _remember(cache: dict[_K, _V], key: _K, value: _V) -> _V:
    """Store `value` in one of format_when's memos, emptied whenever it reaches 4096 entries."""
    if len(cache) >= 4096:
        cache.clear()
    cache[key] = value
    return value


# Syslog timestamps are whole seconds or share one (with their fractions), so at any rate many
# records share one: formatting it once per second saves a strftime per record. Aware datetimes
# compare (and hash) as instants, which is exactly what the text depends on.
_WHEN_TEXT: dict[datetime, str] = {}
_FRACTIONS: dict[int, tuple[timedelta, str]] = {}  # microseconds -> (as a timedelta, as text: ".345000Z")


# DetailList properties nwsyslog adds to every record it makes from syslog (not a rule's own).
EXACT_TIME = "Exact time"  # the sub-second time when When is written in whole seconds
SOURCE_KIND = "Source kind"  # the pack's item (Cisco IOS, Linux, Privileged Linux): the server overwrites DataSource


def whole_second(when: datetime) -> datetime:
    """`when` without its fraction of a second."""
    return when - timedelta(microseconds=when.microsecond) if when.microsecond else when


@dataclass(frozen=True, slots=True)
class RecordDefaults:
    """The record fields configuration supplies (DataSource, MonitoringPlan, Item,
    IsArchiveOnly), checked once when the configuration is read rather than per record, with
    their wire forms (as `record_fields` gives them) prepared too."""

    DataSource: str | None = None
    MonitoringPlan: MonitoringPlanRef | None = None
    Item: ItemRef | None = None
    IsArchiveOnly: bool | None = None
    # Item names per rule pack (`records.items`), before `Item` and the pack's own item.
    items: tuple[tuple[str, str], ...] = ()
    # False (the default): When is written in whole seconds, as Netwrix documents it, and a
    # sub-second time goes to the "Exact time" detail; True: When keeps the fraction.
    fractional_when: bool = False
    plan_pairs: list[tuple[str, str]] | None = field(default=None, init=False, compare=False)
    item_pairs: list[tuple[str, str]] | None = field(default=None, init=False, compare=False)
    # for_pack's answers by (pack, item): the reference path asks per record, and a lookup here
    # costs less than hashing the whole instance for a cache keyed on it.
    _by_pack: dict[tuple[str, str | None], RecordDefaults] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        if self.MonitoringPlan is not None:
            pairs = [("Name", self.MonitoringPlan.Name)]
            if self.MonitoringPlan.ID is not None:
                pairs.append(("ID", self.MonitoringPlan.ID))
            object.__setattr__(self, "plan_pairs", pairs)
        if self.Item is not None:
            object.__setattr__(self, "item_pairs", [("Name", self.Item.Name)])

    def for_pack(self, pack: str, item: str | None) -> RecordDefaults:
        """The defaults a rule of `pack` writes with: its Item is the one configured for the
        pack, else the configured Item, else the pack's own `item` (None: no Item)."""
        found = self._by_pack.get((pack, item))
        if found is None:
            found = self._by_pack[pack, item] = _for_pack(self, pack, item)
        return found

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> RecordDefaults:
        """Defaults from a mapping such as `{"DataSource": "Syslog", "Item": {"Name": "x"}}`;
        raises ValueError naming the field when a value does not fit the schema."""
        if not values:
            return _NO_DEFAULTS
        try:
            checked = _DefaultsModel.model_validate(dict(values))
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            raise ValueError(f"{where}: {error['msg']}") from None
        items = tuple(sorted((pack, ref.Name) for pack, ref in checked.Items.items()))
        return cls(
            checked.DataSource,
            checked.MonitoringPlan,
            checked.Item,
            checked.IsArchiveOnly,
            items,
            checked.FractionalWhen,
        )


def _for_pack(defaults: RecordDefaults, pack: str, item: str | None) -> RecordDefaults:
    name = dict(defaults.items).get(pack)
    if name is None and defaults.Item is not None:
        return defaults
    ref = ItemRef(Name=name) if name is not None else (ItemRef(Name=item) if item else None)
    if ref == defaults.Item:
        return defaults
    return RecordDefaults(
        defaults.DataSource,
        defaults.MonitoringPlan,
        ref,
        defaults.IsArchiveOnly,
        defaults.items,
        defaults.fractional_when,
    )


class _DefaultsModel(BaseModel):
    model_config = _FROZEN

    DataSource: Text | None = None
    MonitoringPlan: MonitoringPlanRef | None = None
    Item: ItemRef | None = None
    IsArchiveOnly: bool | None = None
    Items: dict[str, ItemRef] = {}
    FractionalWhen: bool = False


_NO_DEFAULTS = RecordDefaults()


class RecordCore(NamedTuple):
    """Every value of one record, already rendered and checked against the schema (what the rule
    engine's `Match.core()` gives): the per-message path encodes this without building an
    ActivityRecord. `texts` holds Who, What, Where, ObjectType and, when known, Workstation."""

    texts: dict[str, str]
    action: Action
    when: datetime
    data_source: str | None
    defaults: RecordDefaults
    details: list[tuple[str, str | None, str | None]]  # (PropertyName, Before, After)


def core_fields(core: RecordCore) -> list[tuple[str, object]]:
    """The record's wire fields, exactly as `record_fields()` gives them for the same record."""
    texts, action, when, data_source, config, details = core
    out: list[tuple[str, object]] = [
        ("Who", texts["Who"]),
        ("Action", action.value),
        ("What", texts["What"]),
        ("When", format_when(when)),
        ("Where", texts["Where"]),
        ("ObjectType", texts["ObjectType"]),
    ]
    workstation = texts.get("Workstation")
    if workstation is not None:
        out.append(("Workstation", workstation))
    if config.plan_pairs is not None:
        out.append(("MonitoringPlan", config.plan_pairs))
    if data_source is not None:
        out.append(("DataSource", data_source))
    if config.item_pairs is not None:
        out.append(("Item", config.item_pairs))
    if config.IsArchiveOnly is not None:
        out.append(("IsArchiveOnly", config.IsArchiveOnly))
    if details:
        listed = []
        for prop, before, after in details:
            pairs = [("PropertyName", prop)]
            if before is not None:
                pairs.append(("Before", before))
            if after is not None:
                pairs.append(("After", after))
            listed.append(pairs)
        out.append(("DetailList", listed))
    return out


def record_fields(record: ActivityRecord) -> list[tuple[str, object]]:
    """The record's present fields in the one stable wire order, values in wire form.

    Scalars become `str` (IsArchiveOnly stays `bool`); MonitoringPlan, Item and Detail become
    lists of (name, str) pairs; DetailList becomes a list of such lists. Both encoders walk this, so XML and JSON always
    carry the same fields in the same order.
    """
    out: list[tuple[str, object]] = [
        ("Who", record.Who),
        ("Action", record.Action.value),
        ("What", record.What),
        ("When", format_when(record.When)),
        ("Where", record.Where),
        ("ObjectType", record.ObjectType),
    ]
    if record.Workstation is not None:
        out.append(("Workstation", record.Workstation))
    if record.MonitoringPlan is not None:
        plan: list[tuple[str, str]] = [("Name", record.MonitoringPlan.Name)]
        if record.MonitoringPlan.ID is not None:
            plan.append(("ID", record.MonitoringPlan.ID))
        out.append(("MonitoringPlan", plan))
    if record.DataSource is not None:
        out.append(("DataSource", record.DataSource))
    if record.Item is not None:
        out.append(("Item", [("Name", record.Item.Name)]))
    if record.IsArchiveOnly is not None:
        out.append(("IsArchiveOnly", record.IsArchiveOnly))
    if record.DetailList:
        details: list[list[tuple[str, str]]] = []
        for d in record.DetailList:
            pairs: list[tuple[str, str]] = [("PropertyName", d.PropertyName)]
            if d.Before is not None:
                pairs.append(("Before", d.Before))
            if d.After is not None:
                pairs.append(("After", d.After))
            details.append(pairs)
        out.append(("DetailList", details))
    return out
