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


def test_shipped_configurations_are_valid() -> None:
    """samples/ and deploy/ configurations pass check-config (deploy's with its secret file and
    paths pointed at a temporary folder, as an installation would provide them)."""
    import tempfile

    from click.testing import CliRunner

    from ingestor.cli import main

    root = Path(__file__).resolve().parent.parent
    assert CliRunner().invoke(main, ["check-config", str(root / "samples" / "lab.yaml")]).exit_code == 0
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "password").write_text("secret\n")
        text = (root / "deploy" / "nwsyslog.yaml").read_text().replace("/etc/nwsyslog/password", f"{tmp}/password")
        (Path(tmp) / "c.yaml").write_text(text)
        result = CliRunner().invoke(main, ["check-config", f"{tmp}/c.yaml"])
        assert result.exit_code == 0, result.output
        assert "secret" not in result.output
