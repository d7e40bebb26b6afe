"""Serialization of Activity Records into request bodies, done once per record.

Each record is encoded once into a *fragment* (its exact bytes inside the body). A request body
is the encoder's fixed head, the fragments joined by a fixed separator, and a fixed tail, so the
size of any body is known exactly from the fragment sizes without serializing anything again:

    body_size(n, payload) == len(head) + payload + len(sep) * (n - 1) + len(tail)

XML fragments carry no namespace declaration: they inherit the default namespace declared once
on `<ActivityRecordList>`. lxml does all escaping. JSON fragments are compact objects in the
field order of `ingestor.records.record_fields`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import ClassVar, Literal, Protocol

from lxml import etree

from .records import NAMESPACE, ActivityRecord, record_fields

Format = Literal["xml", "json"]


class Encoder(Protocol):
    """Turns records into fragments and fragments into request bodies."""

    format: Format
    content_type: str

    def encode(self, record: ActivityRecord) -> bytes:
        """One record's exact bytes as they will appear in a body."""
        ...

    def body_size(self, n_records: int, payload_bytes: int) -> int:
        """Exact size of a body holding `n_records` fragments totalling `payload_bytes`."""
        ...

    def join(self, fragments: Sequence[bytes]) -> bytes:
        """The request body holding `fragments`, in order."""
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


class XmlEncoder(_Envelope):
    """XML bodies: `<ActivityRecordList xmlns=...>` holding `<ActivityRecord>` fragments."""

    format: Format = "xml"
    content_type = "application/xml; charset=UTF-8"
    head = b'<?xml version="1.0" encoding="UTF-8"?>\n<ActivityRecordList xmlns="' + NAMESPACE.encode() + b'">'
    sep = b""
    tail = b"</ActivityRecordList>"

    def encode(self, record: ActivityRecord) -> bytes:
        root = etree.Element("ActivityRecord")
        sub = etree.SubElement
        for name, value in record_fields(record):
            if isinstance(value, str):
                sub(root, name).text = value
            elif isinstance(value, bool):
                sub(root, name).text = "true" if value else "false"
            elif name == "DetailList":
                details = sub(root, name)
                for pairs in value:  # type: ignore[attr-defined]
                    detail = sub(details, "Detail")
                    for key, text in pairs:
                        sub(detail, key).text = text
            else:  # MonitoringPlan, Item: a list of (name, text)
                parent = sub(root, name)
                for key, text in value:  # type: ignore[attr-defined]
                    sub(parent, key).text = text
        return etree.tostring(root, encoding="UTF-8", xml_declaration=False)


class JsonEncoder(_Envelope):
    """JSON bodies: a top-level array of record objects (`?format=json`)."""

    format: Format = "json"
    content_type = "application/json; charset=UTF-8"
    head = b"["
    sep = b","
    tail = b"]"

    _dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode

    def encode(self, record: ActivityRecord) -> bytes:
        obj: dict[str, object] = {}
        for name, value in record_fields(record):
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
