import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from ingestor.netwrix.encoding import JsonEncoder, XmlEncoder
from ingestor.netwrix.records import NAMESPACE, RecordCore, RecordDefaults, clean_xml_text, core_fields, record_fields
from ingestor.netwrix.schema import activity_records_schema
from tests.conftest import make_record

NS = {"a": NAMESPACE}


def parse(body: bytes) -> etree._Element:
    return etree.fromstring(body, etree.XMLParser(resolve_entities=False))


def test_xml_body_is_valid_against_the_xsd_and_carries_every_field():
    enc = XmlEncoder()
    record = make_record(7, DataSource="Syslog", IsArchiveOnly=False, MonitoringPlan={"Name": "Net", "ID": "{42}"})
    body = enc.join([enc.encode(record), enc.encode(make_record(8))])
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<ActivityRecordList xmlns="')
    root = parse(body)
    activity_records_schema().assertValid(root)
    first = root[0]
    assert first.findtext("a:Who", namespaces=NS) == record.Who
    assert first.findtext("a:When", namespaces=NS) == "2026-11-22T12:00:07Z"
    assert first.findtext("a:MonitoringPlan/a:ID", namespaces=NS) == "{42}"
    assert first.findtext("a:IsArchiveOnly", namespaces=NS) == "false"
    assert first.findtext("a:DetailList/a:Detail/a:After", namespaces=NS) == "vty0"
    assert len(root) == 2


def test_fragments_are_deterministic_bytes():
    for enc in (XmlEncoder(), JsonEncoder()):
        assert enc.encode(make_record(3)) == enc.encode(make_record(3))
        assert enc.encode(make_record(3)) != enc.encode(make_record(4))


@pytest.mark.parametrize("enc", [XmlEncoder(), JsonEncoder()], ids=["xml", "json"])
@pytest.mark.parametrize("n", [0, 1, 2, 17])
def test_body_size_is_exact(enc, n):
    fragments = [enc.encode(make_record(i)) for i in range(n)]
    assert enc.body_size(n, sum(map(len, fragments))) == len(enc.join(fragments))


def test_json_body_is_an_array_with_the_api_shape():
    enc = JsonEncoder()
    body = enc.join([enc.encode(make_record(1, IsArchiveOnly=True)), enc.encode(make_record(2))])
    data = json.loads(body)
    assert isinstance(data, list) and len(data) == 2
    assert data[0]["MonitoringPlan"] == {"Name": "Network devices"}
    assert data[0]["DetailList"] == [{"PropertyName": "Line", "After": "vty0"}]
    assert data[0]["IsArchiveOnly"] is True
    assert data[0]["When"] == "2026-11-22T12:00:01Z"


def test_xml_and_json_carry_the_same_fields():
    record = make_record(5, DataSource="Syslog")
    xml_root = parse(XmlEncoder().join([XmlEncoder().encode(record)]))[0]
    json_obj = json.loads(JsonEncoder().encode(record))
    assert [etree.QName(c).localname for c in xml_root] == list(json_obj)


@pytest.mark.parametrize("payload", ["</Who><Who>evil", "<![CDATA[x]]>", "&amp;&lt;", '"><Action>Removed</Action>'])
def test_markup_in_values_cannot_inject_xml(payload):
    enc = XmlEncoder()
    root = parse(enc.join([enc.encode(make_record(Who=payload, What=payload))]))
    activity_records_schema().assertValid(root)
    record = root[0]
    assert len(record.findall("a:Who", NS)) == 1
    assert record.findtext("a:Who", namespaces=NS) == payload
    assert record.findtext("a:Action", namespaces=NS) == "Successful Logon"


# Property (b): arbitrary Unicode, including characters XML cannot carry, in any string field.
any_text = st.text(alphabet=st.characters(codec=None, blacklist_categories=()), min_size=1, max_size=60)
STRING_FIELDS = ["Who", "What", "Where", "ObjectType", "Workstation", "DataSource"]


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from([*STRING_FIELDS, "Item", "Plan", "Detail"]), text=any_text)
def test_any_unicode_serializes_to_xml_the_xsd_accepts(field, text):
    if field == "Item":
        record = make_record(Item={"Name": text})
    elif field == "Plan":
        record = make_record(MonitoringPlan={"Name": text, "ID": text})
    elif field == "Detail":
        record = make_record(DetailList=[{"PropertyName": text, "Before": text, "After": text}])
    else:
        record = make_record(**{field: text})
    enc = XmlEncoder()
    root = parse(enc.join([enc.encode(record)]))
    activity_records_schema().assertValid(root)
    expected = clean_xml_text(text)
    texts = [e.text for e in root.iter() if e.text is not None]
    assert expected in texts
    # JSON serialization never fails either and round-trips the cleaned value.
    assert expected in strings(json.loads(JsonEncoder().encode(record)))


def strings(value):
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def lxml_fragment(record) -> bytes:
    """The reference: the record built element by element with lxml, which does the escaping."""
    root = etree.Element("ActivityRecord")
    sub = etree.SubElement
    for name, value in record_fields(record):
        if isinstance(value, str):
            sub(root, name).text = value
        elif isinstance(value, bool):
            sub(root, name).text = "true" if value else "false"
        elif name == "DetailList":
            details = sub(root, name)
            for pairs in value:
                detail = sub(details, "Detail")
                for key, text in pairs:
                    sub(detail, key).text = text
        else:
            parent = sub(root, name)
            for key, text in value:
                sub(parent, key).text = text
    return etree.tostring(root, encoding="UTF-8", xml_declaration=False)


# Text with what needs escaping (markup, CR, quotes, CDATA ends) well represented.
markup_text = st.text(
    alphabet=st.one_of(st.sampled_from(list("&<>\r\n\t\"']]>;# ")), st.characters(codec=None)), max_size=40
)


@settings(max_examples=300, deadline=None)
@given(
    values=st.fixed_dictionaries(
        {name: markup_text.filter(lambda t: t.strip()) for name in ("Who", "What", "Where", "ObjectType")},
        optional={
            "Workstation": markup_text,
            "DataSource": markup_text,
            "IsArchiveOnly": st.booleans(),
            "MonitoringPlan": st.fixed_dictionaries({"Name": markup_text.filter(bool)}, optional={"ID": markup_text}),
            "Item": st.fixed_dictionaries({"Name": markup_text.filter(bool)}),
            "DetailList": st.lists(
                st.fixed_dictionaries(
                    {"PropertyName": markup_text.filter(bool)}, optional={"Before": markup_text, "After": markup_text}
                ),
                max_size=3,
            ),
        },
    )
)
def test_xml_fragments_are_the_bytes_lxml_writes(values):
    record = make_record(**values)
    expected = lxml_fragment(record)
    assert XmlEncoder().encode(record) == expected
    # The per-message path (checked values straight to bytes, static parts cached per
    # configuration) writes the same bytes, in both formats; one encoder serves every example.
    core = core_of(record)
    assert core_fields(core) == record_fields(record)
    assert SHARED_XML.encode_core(core) == expected
    assert JsonEncoder().encode_core(core) == JsonEncoder().encode(record)


SHARED_XML = XmlEncoder()


def core_of(record) -> RecordCore:
    """The RecordCore the rule engine would give for `record`."""
    texts = {"Who": record.Who, "What": record.What, "Where": record.Where, "ObjectType": record.ObjectType}
    if record.Workstation is not None:
        texts["Workstation"] = record.Workstation
    defaults = RecordDefaults(
        MonitoringPlan=record.MonitoringPlan, Item=record.Item, IsArchiveOnly=record.IsArchiveOnly
    )
    details = [(d.PropertyName, d.Before, d.After) for d in record.DetailList or ()]
    return RecordCore(texts, record.Action, record.When, record.DataSource, defaults, details)


@pytest.mark.parametrize("details", [True, False])
def test_with_detail_adds_one_property_at_the_end_of_a_fragment(details):
    fields = {} if details else {"DetailList": []}
    record = make_record(5, **fields)
    xml, js = XmlEncoder(), JsonEncoder()
    fragment = xml.with_detail(xml.encode(record), "Import fingerprint", "ab<&>12")
    root = parse(xml.join([fragment]))
    activity_records_schema().assertValid(root)
    names = root[0].xpath("a:DetailList/a:Detail/a:PropertyName/text()", namespaces=NS)
    assert names[-1] == "Import fingerprint" and len(names) == len(record.DetailList or []) + 1
    assert root[0].xpath("a:DetailList/a:Detail/a:After/text()", namespaces=NS)[-1] == "ab<&>12"
    obj = json.loads(js.with_detail(js.encode(record), "Import fingerprint", "ab12"))
    assert obj["DetailList"][-1] == {"PropertyName": "Import fingerprint", "After": "ab12"}
    assert len(obj["DetailList"]) == len(record.DetailList or []) + 1
