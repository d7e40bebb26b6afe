"""Serialization of Activity Records into request bodies, done once per record.

Each record is encoded once into a *fragment* (its exact bytes inside the body). A request body
is the encoder's fixed head, the fragments joined by a fixed separator, and a fixed tail, so the
size of any body is known exactly from the fragment sizes without serializing anything again:

    body_size(n, payload) == len(head) + payload + len(sep) * (n - 1) + len(tail)

XML fragments carry no namespace declaration: they inherit the default namespace declared once
on `<ActivityRecordList>`. Text is escaped as lxml escapes it (the standard library's
`xml.sax.saxutils.escape`, plus CR as `&#13;`). JSON fragments are compact objects in the
field order of `ingestor.netwrix.records.record_fields`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import ClassVar, Literal, Protocol
from xml.sax.saxutils import escape

from .records import (
    NAMESPACE,
    Action,
    ActivityRecord,
    RecordCore,
    RecordDefaults,
    core_fields,
    format_when,
    record_fields,
)

Format = Literal["xml", "json"]
WireFields = Sequence[tuple[str, object]]  # a record as `record_fields()` gives it


class Encoder(Protocol):
    """Turns records into fragments and fragments into request bodies."""

    format: Format
    content_type: str

    def encode(self, record: ActivityRecord) -> bytes:
        """One record's exact bytes as they will appear in a body."""
        ...

    def encode_fields(self, fields: WireFields) -> bytes:
        """The same bytes from the record's wire fields (`record_fields(record)`, or what the
        rule engine's `Match.wire()` builds without making an ActivityRecord)."""
        ...

    def encode_core(self, core: RecordCore) -> bytes:
        """The same bytes from the record's checked values (`Match.core()`): the per-message
        path, equal to `encode_fields(core_fields(core))`."""
        ...

    def body_size(self, n_records: int, payload_bytes: int) -> int:
        """Exact size of a body holding `n_records` fragments totalling `payload_bytes`."""
        ...

    def join(self, fragments: Sequence[bytes]) -> bytes:
        """The request body holding `fragments`, in order."""
        ...

    def with_detail(self, fragment: bytes, name: str, value: str) -> bytes:
        """`fragment` with one more DetailList property (`name`, After `value`) at its end:
        what `nwsyslog import` adds to each record (its fingerprint) without re-rendering it.
        `name` and `value` must be free of XML-illegal characters."""
        ...


class _Envelope:
    """Shared exact-size arithmetic for encoders of the head/sep/tail shape."""

    head: ClassVar[bytes]
    sep: ClassVar[bytes]
    tail: ClassVar[bytes]

    def body_size(self, n_records: int, payload_bytes: int) -> int:
        seps = len(self.sep) * (n_records - 1) if n_records > 1 else 0
        return len(self.head) + payload_bytes + seps + len(self.tail)

    def join(self, fragments: Sequence[bytes]) -> bytes:
        return b"".join((self.head, self.sep.join(fragments), self.tail))


_XML_SPECIAL = re.compile("[&<>\r]")
_XML_ENTITIES = {"\r": "&#13;"}  # what lxml writes for CR in text, so it survives parsing


class XmlEncoder(_Envelope):
    """XML bodies: `<ActivityRecordList xmlns=...>` holding `<ActivityRecord>` fragments.

    Fragments are written as text, not built element by element: lxml costs ~12 us per record
    that way, string building ~2 us. The bytes are the same as lxml's (a hypothesis test holds
    `encode_fields` equal to an lxml serialization for arbitrary records).
    """

    format: Format = "xml"
    content_type = "application/xml; charset=UTF-8"
    head = b'<?xml version="1.0" encoding="UTF-8"?>\n<ActivityRecordList xmlns="' + NAMESPACE.encode() + b'">'
    sep = b""
    tail = b"</ActivityRecordList>"

    def __init__(self) -> None:
        # Per RecordDefaults (held, so its id cannot be reused while cached): the escaped
        # MonitoringPlan element, and the Item and IsArchiveOnly elements that follow DataSource.
        self._static: dict[int, tuple[RecordDefaults, str, str]] = {}

    def encode(self, record: ActivityRecord) -> bytes:
        return self.encode_fields(record_fields(record))

    def encode_core(self, core: RecordCore) -> bytes:
        texts, action, when, data_source, config, details = core
        who, what, where, object_type = texts["Who"], texts["What"], texts["Where"], texts["ObjectType"]
        workstation = texts.get("Workstation")
        # One search over every variable text: nearly always nothing needs escaping, and then
        # the fragment is one f-string (the exact path below handles the rest).
        values = [who, what, where, object_type, workstation or "", data_source or ""]
        for prop, before, after in details:
            values += (prop, before or "", after or "")
        if _XML_SPECIAL.search("".join(values)) is not None:
            return self.encode_fields(core_fields(core))
        out = (
            f"<ActivityRecord><Who>{who}</Who><Action>{_ACTION_TEXT[action]}</Action><What>{what}</What>"
            f"<When>{format_when(when)}</When><Where>{where}</Where><ObjectType>{object_type}</ObjectType>"
        )
        if workstation is not None:
            out += f"<Workstation>{workstation}</Workstation>"
        out += self.config_elements(config, data_source)
        if details:
            out += "<DetailList>"
            for prop, before, after in details:
                out += f"<Detail><PropertyName>{prop}</PropertyName>"
                if before is not None:
                    out += f"<Before>{before}</Before>"
                if after is not None:
                    out += f"<After>{after}</After>"
                out += "</Detail>"
            out += "</DetailList>"
        return (out + "</ActivityRecord>").encode("utf-8")

    def config_elements(self, config: RecordDefaults, data_source: str | None) -> str:
        """MonitoringPlan, DataSource, Item and IsArchiveOnly, escaped, as a fragment has them
        after Workstation: what configuration (and a rule pack's data source) supply."""
        static = self._static.get(id(config))
        if static is None or static[0] is not config:
            static = self._static_parts(config)
        if data_source is None:
            return static[1] + static[2]
        return f"{static[1]}<DataSource>{self.escape_text(data_source)}</DataSource>{static[2]}"

    def _static_parts(self, config: RecordDefaults) -> tuple[RecordDefaults, str, str]:
        plan: list[tuple[str, object]] = [] if config.plan_pairs is None else [("MonitoringPlan", config.plan_pairs)]
        rest: list[tuple[str, object]] = [] if config.item_pairs is None else [("Item", config.item_pairs)]
        if config.IsArchiveOnly is not None:
            rest.append(("IsArchiveOnly", config.IsArchiveOnly))
        parts = (config, self._inner(plan), self._inner(rest))
        if len(self._static) >= 64:  # configurations are few; a reload makes new ones
            self._static.clear()
        self._static[id(config)] = parts
        return parts

    def _inner(self, fields: WireFields) -> str:
        return (
            self.encode_fields(fields)
            .decode("utf-8")
            .removeprefix("<ActivityRecord>")
            .removesuffix("</ActivityRecord>")
        )

    def with_detail(self, fragment: bytes, name: str, value: str) -> bytes:
        detail = (
            f"<Detail><PropertyName>{self.escape_text(name)}</PropertyName>"
            f"<After>{self.escape_text(value)}</After></Detail>"
        ).encode()
        if fragment.endswith(b"</DetailList></ActivityRecord>"):
            return fragment[: -len(b"</DetailList></ActivityRecord>")] + detail + b"</DetailList></ActivityRecord>"
        if not fragment.endswith(b"</ActivityRecord>"):
            raise ValueError("not an ActivityRecord fragment")
        return fragment[: -len(b"</ActivityRecord>")] + b"<DetailList>" + detail + b"</DetailList></ActivityRecord>"

    @staticmethod
    def escape_text(text: str) -> str:
        """`text` escaped as element content, as the fragments write it."""
        return text if _XML_SPECIAL.search(text) is None else escape(text, _XML_ENTITIES)

    def encode_fields(self, fields: WireFields) -> bytes:
        # Inlined escaping check (one C search per value, no call when nothing needs escaping):
        # this runs once per record on the per-message path.
        special = _XML_SPECIAL.search
        out = ["<ActivityRecord>"]
        for name, value in fields:
            if type(value) is str:
                text = value if special(value) is None else escape(value, _XML_ENTITIES)
                out.append(f"<{name}>{text}</{name}>")
            elif isinstance(value, bool):
                out.append(f"<{name}>{'true' if value else 'false'}</{name}>")
            elif name == "DetailList":
                out.append("<DetailList>")
                for pairs in value:  # type: ignore[attr-defined]
                    out.append("<Detail>")
                    for key, item in pairs:
                        text = item if special(item) is None else escape(item, _XML_ENTITIES)
                        out.append(f"<{key}>{text}</{key}>")
                    out.append("</Detail>")
                out.append("</DetailList>")
            else:  # MonitoringPlan, Item: a list of (name, text)
                out.append(f"<{name}>")
                for key, item in value:  # type: ignore[attr-defined]
                    text = item if special(item) is None else escape(item, _XML_ENTITIES)
                    out.append(f"<{key}>{text}</{key}>")
                out.append(f"</{name}>")
        out.append("</ActivityRecord>")
        return "".join(out).encode("utf-8")


_ACTION_TEXT = {action: action.value for action in Action}


class JsonEncoder(_Envelope):
    """JSON bodies: a top-level array of record objects (`?format=json`)."""

    format: Format = "json"
    content_type = "application/json; charset=UTF-8"
    head = b"["
    sep = b","
    tail = b"]"

    _dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode

    def encode(self, record: ActivityRecord) -> bytes:
        return self.encode_fields(record_fields(record))

    def encode_core(self, core: RecordCore) -> bytes:
        return self.encode_fields(core_fields(core))

    def with_detail(self, fragment: bytes, name: str, value: str) -> bytes:
        obj = json.loads(fragment)
        obj.setdefault("DetailList", []).append({"PropertyName": name, "After": value})
        return self._dumps(obj).encode("utf-8")

    def encode_fields(self, fields: WireFields) -> bytes:
        obj: dict[str, object] = {}
        for name, value in fields:
            if name == "DetailList":
                obj[name] = [dict(pairs) for pairs in value]  # type: ignore[attr-defined]
            elif isinstance(value, list):
                obj[name] = dict(value)
            else:
                obj[name] = value
        # Strings are already free of XML-illegal characters; lone surrogates were replaced, so
        # UTF-8 encoding cannot fail.
        return self._dumps(obj).encode("utf-8")


ENCODERS: dict[str, type[XmlEncoder] | type[JsonEncoder]] = {"xml": XmlEncoder, "json": JsonEncoder}


def encoder_for(fmt: Format) -> Encoder:
    """The encoder for a configured format name."""
    return ENCODERS[fmt]()
