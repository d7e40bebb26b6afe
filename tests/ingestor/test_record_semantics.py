"""Records as a real Netwrix server keeps them: When in whole seconds unless asked, a plain Item
naming the source kind (per pack, per source, configurable), the kind in a detail too, and the
nvarchar(255) limits counted in UTF-16 units. Both record paths (the compiled XML writer and the
reference JSON path) give the same."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ingestor.config import RecordFieldsConfig, SourceConfig, load_service_config
from ingestor.emulator.wire import records_of
from ingestor.netwrix.encoding import JsonEncoder, XmlEncoder
from ingestor.netwrix.records import ActivityRecord, cap_utf16, utf16_length
from ingestor.pipeline import Pipeline
from parsers.rules.loader import load_ruleset
from tests.conftest import BASE_TIME

CISCO = b"<189>12: core-sw1: *Mar  4 10:00:00.123: %SYS-5-CONFIG_I: Configured from console by admin on vty0 (10.1.1.1)"
SUDO = b"<86>Mar  4 10:00:01 app01 sudo:  alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/ls"
SSH = b"<38>Mar  4 10:00:02 app01 sshd[1]: Accepted password for bob from 192.0.2.7 port 50000 ssh2"
RECEIVED = 1_772_618_400.0  # 2026-03-04T10:00:00Z


def records(lines: list[bytes], peer: str = "192.0.2.1", **options: object) -> list[dict[str, object]]:
    """What the pipeline makes of `lines`, read back from a write body of each encoder (equal)."""
    out = []
    for encoder, fmt in ((XmlEncoder(), "xml"), (JsonEncoder(), "json")):
        pipeline = Pipeline(load_ruleset(), encoder, **options)  # type: ignore[arg-type]
        for line in lines:
            pipeline.handle(line, peer, RECEIVED)
        out.append(list(records_of(fmt, encoder.join(pipeline.take()))))
    assert out[0] == out[1]
    return out[1]


def details(record: dict[str, object]) -> dict[str, str]:
    return {d["PropertyName"]: d.get("After") for d in record.get("DetailList", [])}  # type: ignore[union-attr]


def test_the_default_writes_whole_seconds_with_the_exact_time_in_a_detail():
    cisco, sudo = records([CISCO, SUDO])
    assert cisco["When"] == "2026-03-04T10:00:00Z"
    assert details(cisco)["Exact time"] == "2026-03-04T10:00:00.123000Z"
    assert sudo["When"] == "2026-03-04T10:00:01Z" and "Exact time" not in details(sudo)


def test_fractional_when_is_an_option():
    (cisco,) = records([CISCO], records=RecordFieldsConfig(when="fractional"))
    assert cisco["When"] == "2026-03-04T10:00:00.123000Z" and "Exact time" not in details(cisco)


def test_each_pack_writes_a_plain_item_naming_its_source_kind_and_the_kind_in_a_detail():
    cisco, sudo, ssh = records([CISCO, SUDO, SSH])
    assert [r["Item"] for r in (cisco, sudo, ssh)] == [
        {"Name": "Cisco IOS"},
        {"Name": "Privileged Linux"},
        {"Name": "Linux"},
    ]
    assert [details(r)["Source kind"] for r in (cisco, sudo, ssh)] == ["Cisco IOS", "Privileged Linux", "Linux"]
    assert [r["DataSource"] for r in (cisco, sudo, ssh)] == ["Cisco IOS", "Linux", "Linux"]


def test_items_per_pack_then_one_item_then_the_packs_own():
    fields = RecordFieldsConfig(items={"cisco_ios": "Core switches"}, item="Syslog")
    cisco, sudo = records([CISCO, SUDO], records=fields)
    assert cisco["Item"] == {"Name": "Core switches"} and sudo["Item"] == {"Name": "Syslog"}
    # The detail keeps the kind whatever the Item is called.
    assert details(cisco)["Source kind"] == "Cisco IOS"


def test_a_source_naming_its_item_replaces_the_global_item_settings_for_its_senders():
    fields = RecordFieldsConfig(items={"cisco_ios": "Core switches"})
    branch = SourceConfig(cidr="10.9.0.0/16", item="Branch 9")
    (here,) = records([CISCO], peer="192.0.2.1", records=fields, sources=[branch])
    (there,) = records([CISCO], peer="10.9.1.1", records=fields, sources=[branch])
    assert here["Item"] == {"Name": "Core switches"} and there["Item"] == {"Name": "Branch 9"}


@pytest.mark.parametrize("name", ["nwsyslog (Integration)", "Linux (integration)"])
def test_an_item_with_the_type_suffix_is_refused_with_the_plain_name_to_use(name):
    with pytest.raises(ValidationError, match="give the plain name"):
        RecordFieldsConfig(item=name)
    with pytest.raises(ValidationError, match="give the plain name"):
        RecordFieldsConfig(items={"linux": name})


def test_the_embedded_default_sets_no_item_so_each_pack_names_its_own():
    config = load_service_config(None)
    assert config.records.item is None and config.records.items == {}


def test_nvarchar_limits_count_utf16_units():
    assert utf16_length("a😀") == 3 and cap_utf16("😀" * 200) == "😀" * 127
    assert cap_utf16("a" * 300) == "a" * 255 and cap_utf16("é" * 255) == "é" * 255
    fields = {"Action": "Read", "What": "x", "When": BASE_TIME, "Where": "h", "ObjectType": "o"}
    ActivityRecord(Who="😀" * 127, **fields)
    with pytest.raises(ValidationError, match="UTF-16"):
        ActivityRecord(Who="😀" * 128, **fields)  # 128 characters, 256 units


def test_a_who_past_255_utf16_units_is_cut_to_255_on_both_paths():
    user = "😀" * 200
    line = f"<86>Mar  4 10:00:01 app01 sudo:  {user} : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/ls".encode()
    (record,) = records([line])
    assert record["Who"] == "😀" * 127 and utf16_length(record["Who"]) == 254  # type: ignore[arg-type]
