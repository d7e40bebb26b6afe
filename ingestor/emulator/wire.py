"""The emulator's view of request and response bodies: validation, conversion, ErrorList.

XML bodies are validated by the project's XSD. JSON bodies are converted element by element into
the same XML tree and validated by the same XSD, so both formats obey exactly one schema. Each
worker thread has its own parser and schema object (lxml validators keep per-call error logs).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from lxml import etree

from ..netwrix.records import ERROR_NAMESPACE, NAMESPACE, clean_xml_text
from ..netwrix.schema import xsd_bytes

NS = "{" + NAMESPACE + "}"
_NESTED = {"MonitoringPlan", "Item"}
MAX_REPORTED_ERRORS = 10


class BodyError(Exception):
    """A request body the API refuses: HTTP `status`, and the ErrorList entries (maybe none)."""

    def __init__(self, status: int, errors: list[tuple[str, str, str]]) -> None:
        self.status = status
        self.errors = errors
        super().__init__("; ".join(f"{c}: {d} ({loc})" for c, d, loc in errors) or str(status))


@dataclass(frozen=True, slots=True)
class ParsedBody:
    """A validated write body and how many records it holds."""

    count: int


def _in_declared_order(xsd: bytes) -> bytes:
    """The same schema with every xs:all turned into an xs:sequence in declaration order.

    It accepts a subset of what the real schema accepts (same elements, types and occurrences,
    one order), and libxml2 checks a sequence about twice as fast as an xs:all. The XSD declares
    children in the order nwsyslog's encoders emit them.
    """
    return xsd.replace(b"<xs:all>", b"<xs:sequence>").replace(b"</xs:all>", b"</xs:sequence>")


class _ThreadState(threading.local):
    def __init__(self) -> None:
        # No entities, no network (hostile bodies); no xml:id table and no comments (XSD ignores
        # both, and skipping them makes parsing about a third cheaper).
        self.parser = etree.XMLParser(
            resolve_entities=False, no_network=True, huge_tree=False, collect_ids=False, remove_comments=True
        )
        # One copy per thread: lxml validators record errors on the instance.
        self.schema = etree.XMLSchema(etree.fromstring(xsd_bytes()))
        self.fast_schema = etree.XMLSchema(etree.fromstring(_in_declared_order(xsd_bytes())))


_state = _ThreadState()


def parse_xml(body: bytes) -> etree._Element:
    """Parse an XML body safely (no entities, no network); raise BodyError(400) if malformed."""
    try:
        return etree.fromstring(body, _state.parser)
    except etree.XMLSyntaxError as exc:
        raise BodyError(400, [("XMLError", str(exc), f"line {exc.lineno}")]) from None


def validate_tree(root: etree._Element, *, from_json: bool = False) -> int:
    """Validate an ActivityRecordList tree against the XSD; return its record count.

    Locations name the element path (`/ActivityRecordList/ActivityRecord[3]/Action`, 1-based),
    plus the line for XML bodies (a tree built from JSON has no lines).
    """
    if _state.fast_schema.validate(root):
        return len(root)  # valid in the declared order, hence valid in any order
    schema = _state.schema  # the authoritative verdict, and its error messages
    if not schema.validate(root):
        category = "InputError" if from_json else "XMLError"
        errors = [
            (category, e.message, _describe(root, e.path, None if from_json else e.line))
            for e in list(cast("Iterable[etree._LogEntry]", schema.error_log))[:MAX_REPORTED_ERRORS]
        ]
        raise BodyError(400, errors)
    return len(root)


def _describe(root: etree._Element, path: str | None, line: int | None) -> str:
    """`ActivityRecord 3 (line 7), field Action` from a libxml2 error path such as /*/*[3]/*[2]."""
    parts: list[str] = []
    try:
        found = cast("list[object]", root.getroottree().xpath(path)) if path else []
    except etree.XPathError:
        found = []
    if found and isinstance(found[0], etree._Element):
        node = found[0]
        chain = [node, *node.iterancestors()]
        for element in chain:
            if element.getparent() is root:
                parts.append(f"ActivityRecord {root.index(element) + 1}")
                break
        if node is not root and node.getparent() is not root:
            parts.append(f"field {etree.QName(node).localname}")
    if line is not None:
        parts.append(f"line {line}")
    return ", ".join(parts) or (path or "body")


def validate_write(body: bytes, fmt: str) -> ParsedBody:
    """Check a write body of format `fmt` ('xml' or 'json'); raise BodyError when refused."""
    if fmt == "json":
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            # The API answers corrupted JSON with 500 and an empty body.
            raise BodyError(500, []) from None
        root = json_to_tree(data)
        return ParsedBody(validate_tree(root, from_json=True))
    return ParsedBody(validate_tree(parse_xml(body)))


def count_records(body: bytes, fmt: str) -> int:
    """The records in a write body without checking it (the emulator's benchmark mode): XML
    record start tags (markup cannot occur inside escaped text), or the JSON array's length.
    Raise BodyError as `validate_write` would when the body cannot be read at all."""
    if fmt == "json":
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise BodyError(500, []) from None
        if not isinstance(data, list):
            raise BodyError(400, [("InputError", "the body must be a JSON array of Activity Records", "body")])
        return len(data)
    count = body.count(b"<ActivityRecord>") + body.count(b"<ActivityRecord ")
    if not count and b"ActivityRecordList" not in body:
        raise BodyError(400, [("XMLError", "not an ActivityRecordList", "body")])
    return count


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise BodyError(400, [("InputError", f"{where} must be a string, not {type(value).__name__}", where)])
    return value


def _sub(parent: etree._Element, name: str, where: str) -> etree._Element:
    try:
        return etree.SubElement(parent, NS + name)
    except ValueError:
        raise BodyError(400, [("InputError", f"{where}: {name!r} is not a field name", where)]) from None


def _set_text(element: etree._Element, value: str, where: str) -> None:
    try:
        element.text = value
    except ValueError:
        raise BodyError(400, [("InputError", f"{where} holds characters XML cannot carry", where)]) from None


def json_to_tree(data: Any) -> etree._Element:
    """Build the ActivityRecordList tree of a JSON write body, checking JSON types on the way."""
    if not isinstance(data, list):
        raise BodyError(400, [("InputError", "the body must be a JSON array of Activity Records", "body")])
    root = etree.Element(NS + "ActivityRecordList", nsmap={None: NAMESPACE})  # type: ignore[dict-item]
    for i, obj in enumerate(data):
        where = f"record {i}"
        if not isinstance(obj, dict):
            raise BodyError(400, [("InputError", f"{where} must be an object", where)])
        record = etree.SubElement(root, NS + "ActivityRecord")
        for key, value in obj.items():
            field = f"{where}.{key}"
            element = _sub(record, key, field)
            if key in _NESTED:
                if not isinstance(value, dict):
                    raise BodyError(400, [("InputError", f"{field} must be an object", field)])
                for sub_key, sub_value in value.items():
                    _set_text(_sub(element, sub_key, field), _text(sub_value, f"{field}.{sub_key}"), field)
            elif key == "DetailList":
                if not isinstance(value, list):
                    raise BodyError(400, [("InputError", f"{field} must be an array", field)])
                for j, detail in enumerate(value):
                    dwhere = f"{field}[{j}]"
                    if not isinstance(detail, dict):
                        raise BodyError(400, [("InputError", f"{dwhere} must be an object", dwhere)])
                    d = _sub(element, "Detail", dwhere)
                    for dk, dv in detail.items():
                        _set_text(_sub(d, dk, dwhere), _text(dv, f"{dwhere}.{dk}"), dwhere)
            elif key == "IsArchiveOnly" and isinstance(value, bool):
                element.text = "true" if value else "false"
            else:
                _set_text(element, _text(value, field), field)
    return root


def element_to_dict(record: etree._Element) -> dict[str, Any]:
    """One `<ActivityRecord>` element as a JSON-ready dict (the API's JSON shape)."""
    out: dict[str, Any] = {}
    for child in record:
        if not isinstance(child.tag, str):
            continue  # comments, processing instructions
        name = etree.QName(child).localname
        if name in _NESTED:
            out[name] = {etree.QName(c).localname: c.text or "" for c in child if isinstance(c.tag, str)}
        elif name == "DetailList":
            out[name] = [
                {etree.QName(c).localname: c.text or "" for c in d if isinstance(c.tag, str)}
                for d in child
                if isinstance(d.tag, str)
            ]
        elif name == "IsArchiveOnly":
            out[name] = (child.text or "").strip() in ("true", "1")
        else:
            out[name] = child.text or ""
    return out


def records_of(fmt: str, body: bytes) -> Iterator[dict[str, Any]]:
    """The records of a stored (already validated) write body, as dicts."""
    if fmt == "json":
        for obj in json.loads(body):
            yield json_to_dict(obj)
    else:
        for element in parse_xml(body):
            if isinstance(element.tag, str):
                yield element_to_dict(element)


def json_to_dict(obj: dict[str, Any]) -> dict[str, Any]:
    """A stored JSON record in normalized form (IsArchiveOnly as a bool)."""
    value = obj.get("IsArchiveOnly")
    if isinstance(value, str):
        obj = {**obj, "IsArchiveOnly": value.strip() in ("true", "1")}
    return obj


def dict_to_element(record: dict[str, Any]) -> etree._Element:
    """A normalized record dict as an `<ActivityRecord>` element (for XML responses)."""
    root = json_to_tree([record])
    return root[0]


def records_xml(records: Iterable[dict[str, Any]], mark: str | None) -> bytes:
    """An enum/search XML response: ContinuationMark first (when given), then the records."""
    root = etree.Element(NS + "ActivityRecordList", nsmap={None: NAMESPACE})  # type: ignore[dict-item]
    if mark is not None:
        etree.SubElement(root, NS + "ContinuationMark").text = mark
    for record in records:
        root.append(dict_to_element(record))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def records_json(records: Iterable[dict[str, Any]], mark: str | None) -> bytes:
    """An enum/search JSON response: `{"ActivityRecordList": [...], "ContinuationMark": ...}`."""
    doc: dict[str, Any] = {"ActivityRecordList": list(records)}
    if mark is not None:
        doc["ContinuationMark"] = mark
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


def error_list(errors: list[tuple[str, str, str]], fmt: str) -> bytes:
    """An ErrorList body in the API's XML or JSON form."""
    if fmt == "json":
        items = [{"Category": c, "Description": d, "Location": loc} for c, d, loc in errors]
        return json.dumps({"ErrorList": items}, ensure_ascii=False).encode("utf-8")
    ens = "{" + ERROR_NAMESPACE + "}"
    root = etree.Element(ens + "ErrorList", nsmap={None: ERROR_NAMESPACE})  # type: ignore[dict-item]
    for category, description, location in errors:
        err = etree.SubElement(root, ens + "Error")
        etree.SubElement(err, ens + "Category").text = category
        etree.SubElement(err, ens + "Description").text = _xml_safe(description)
        etree.SubElement(err, ens + "Location").text = _xml_safe(location)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _xml_safe(text: str) -> str:
    cleaned = clean_xml_text(text)
    return cleaned if isinstance(cleaned, str) else str(cleaned)
