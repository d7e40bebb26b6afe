"""The emulator's `search` endpoint: FilterList parsing (XML and JSON) and matching.

Supported, as in Netwrix's search parameters: the filters Who, Action, What, Where, ObjectType,
DataSource, MonitoringPlan, Item and Workstation with the operators Contains, DoesNotContain,
Equals, NotEqualTo, StartsWith and EndsWith (default Contains; Equals for Action), compared
case-insensitively; When with From and To. Values of one filter are OR-ed, except negative
operators, which must all hold; different filters are AND-ed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lxml import etree

from .wire import NS, BodyError, parse_xml

TEXT_FILTERS = ("Who", "Action", "What", "Where", "ObjectType", "DataSource", "MonitoringPlan", "Item", "Workstation")
_OPERATORS: dict[str, Callable[[str, str], bool]] = {
    "Contains": lambda have, want: want in have,
    "DoesNotContain": lambda have, want: want not in have,
    "Equals": lambda have, want: have == want,
    "NotEqualTo": lambda have, want: have != want,
    "StartsWith": lambda have, want: have.startswith(want),
    "EndsWith": lambda have, want: have.endswith(want),
}
_NEGATIVE = {"DoesNotContain", "NotEqualTo"}


@dataclass
class Search:
    """A parsed search request."""

    mark: str | None = None
    conditions: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    since: datetime | None = None
    until: datetime | None = None

    def add(self, name: str, operator: str | None, value: Any) -> None:
        """Add one condition, checking the filter and operator names."""
        if name not in TEXT_FILTERS:
            raise _input_error(f"unknown filter {name!r}; known: {', '.join(TEXT_FILTERS)}, When")
        op = operator or ("Equals" if name == "Action" else "Contains")
        if op not in _OPERATORS:
            raise _input_error(f"unknown operator {op!r} for {name}; known: {', '.join(_OPERATORS)}")
        if not isinstance(value, str):
            raise _input_error(f"the value of filter {name} must be a string")
        self.conditions.setdefault(name, []).append((op, value.casefold()))

    def matches(self, record: dict[str, Any]) -> bool:
        """Whether `record` (a normalized dict) passes every filter."""
        for name, conds in self.conditions.items():
            have = _field(record, name).casefold()
            positives = [(op, v) for op, v in conds if op not in _NEGATIVE]
            if positives and not any(_OPERATORS[op](have, v) for op, v in positives):
                return False
            if not all(_OPERATORS[op](have, v) for op, v in conds if op in _NEGATIVE):
                return False
        if self.since is not None or self.until is not None:
            when = _parse_when(record.get("When", ""))
            if when is None:
                return False
            if self.since is not None and when < self.since:
                return False
            if self.until is not None and when > self.until:
                return False
        return True


def _field(record: dict[str, Any], name: str) -> str:
    value = record.get(name)
    if isinstance(value, dict):
        value = value.get("Name", "")
    return value if isinstance(value, str) else ""


def _parse_when(text: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def _input_error(message: str) -> BodyError:
    return BodyError(400, [("InputError", message, "FilterList")])


def _set_when(search: Search, key: str, value: Any) -> None:
    when = _parse_when(value) if isinstance(value, str) else None
    if when is None:
        raise _input_error(f"When.{key} must be an ISO 8601 date-time with an offset or Z")
    if key == "From":
        search.since = when
    elif key == "To":
        search.until = when
    else:
        raise _input_error(f"When takes From and To, not {key!r}")


def parse_search(body: bytes, fmt: str) -> Search:
    """Parse a search body (XML ActivityRecordSearch or JSON object)."""
    search = Search()
    if not body.strip():
        return search
    if fmt == "json":
        try:
            data = json.loads(body)
        except ValueError:
            raise BodyError(500, []) from None
        if not isinstance(data, dict):
            raise _input_error("the search body must be a JSON object")
        mark = data.get("ContinuationMark")
        search.mark = mark if isinstance(mark, str) else None
        filters = data.get("FilterList") or {}
        if not isinstance(filters, dict):
            raise _input_error("FilterList must be an object")
        for name, spec in filters.items():
            if name == "When":
                if not isinstance(spec, dict):
                    raise _input_error("When must be an object with From and/or To")
                for key, value in spec.items():
                    _set_when(search, key, value)
                continue
            for item in spec if isinstance(spec, list) else [spec]:
                if isinstance(item, dict):
                    for op, value in item.items():
                        search.add(name, op, value)
                else:
                    search.add(name, None, item)
        return search
    root = parse_xml(body)
    if root.tag != NS + "ActivityRecordSearch":
        raise BodyError(400, [("XMLError", "the root element must be ActivityRecordSearch", "line 1")])
    search.mark = root.findtext(NS + "ContinuationMark")
    filters = root.find(NS + "FilterList")
    for element in filters if filters is not None else []:
        if not isinstance(element.tag, str):
            continue
        name = etree.QName(element).localname
        if name == "When":
            for part in element:
                if isinstance(part.tag, str):
                    _set_when(search, etree.QName(part).localname, part.text or "")
        else:
            search.add(name, element.get("Operator"), element.text or "")
    return search
