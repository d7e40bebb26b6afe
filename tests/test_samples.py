"""The sample bodies in samples/ stay valid (or, for the invalid one, invalid for the stated reason)."""

import json
from pathlib import Path

import pytest

from ingestor.emulator.wire import BodyError, validate_write

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def test_sample_xml_and_json_bodies_are_valid_and_hold_the_same_records():
    xml = validate_write((SAMPLES / "activity-records.xml").read_bytes(), "xml")
    body = (SAMPLES / "activity-records.json").read_bytes()
    assert validate_write(body, "json").count == xml.count == len(json.loads(body)) == 3


def test_sample_invalid_body_fails_on_the_action():
    with pytest.raises(BodyError) as info:
        validate_write((SAMPLES / "activity-records-invalid.xml").read_bytes(), "xml")
    assert info.value.status == 400 and "Changed" in info.value.errors[0][1]
