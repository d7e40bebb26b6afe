"""`nwsyslog parse`: the rule author's playground, in its three output forms."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from lxml import etree

from ingestor.cli import main
from ingestor.netwrix.records import ActivityRecord
from ingestor.netwrix.schema import activity_records_schema

LINES = [
    b"Mar  4 10:00:01 app01 sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/ls",
    b"",
    b"<189>12: sw01: *Mar  1 00:01:02.345 UTC: %SYS-5-CONFIG_I: Configured from console by admin on vty0 (10.0.0.5)",
    b"Mar  4 10:00:02 app01 kernel: eth0: link up",
    b"Mar  4 10:00:03 app01 sudo:  vagrant : (command continued) rest",
    b"Mar  4 10:00:04 app01 sshd[1]: Failed password for r\xffoot from 192.0.2.1 port 22 ssh2",
]


def _run(args: list[str], data: bytes) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["parse", *args], input=data)
    return result.exit_code, result.stdout, result.stderr


def test_explain_prints_one_object_per_non_blank_line_with_rule_and_netwrix_fields() -> None:
    code, out, err = _run(["--explain", "--received-at", "2026-03-05T00:00:00Z", "-"], b"\n".join(LINES) + b"\n")
    assert code == 0, err
    objects = [json.loads(line) for line in out.splitlines()]
    assert [o["line"] for o in objects] == [1, 3, 4, 5, 6]
    sudo, config, kernel, continued, sshd = objects
    assert sudo["rule"] == "privileged.sudo.command"
    assert sudo["record"]["Who"] == "alice" and sudo["record"]["When"] == "2026-03-04T10:00:01Z"
    ActivityRecord.model_validate(sudo["record"])  # Netwrix field names and values
    assert config["rule"] == "cisco.sys.config_i" and config["record"]["Workstation"] == "10.0.0.5"
    # Each line says what the parser read of its header, beside what the rules made of it.
    assert kernel == {
        "line": 4,
        "header": {"time": "2026-03-04T10:00:02+00:00", "host": "app01", "program": "kernel"},
        "unmatched": True,
    }
    assert config["header"] == {
        "time": "2026-03-01T00:01:02.345000+00:00",
        "clock": "*",  # the device's clock was never set
        "host": "sw01",
        "mnemonic": "SYS-5-CONFIG_I",
        "family": "ios",
        "sequence": 12,
        "facility": "local7",
        "severity": "notice",
    }
    assert {k: continued[k] for k in ("rule", "dropped")} == {
        "rule": "privileged.sudo.command_continued",
        "dropped": True,
    }
    assert sshd["record"]["Who"] == "r\ufffdoot"  # invalid UTF-8 replaced, never a crash
    assert "5 lines: 3 records, 1 unmatched, 1 dropped by rules, 0 errors" in err


def test_plain_output_is_one_json_record_per_matched_line(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_bytes(b"\n".join(LINES))
    code, out, _ = _run(["--data-source", "Ops", "--monitoring-plan", "Syslog", "--item", "app01", str(log)], b"")
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 3
    assert all(r["DataSource"] == "Ops" and r["MonitoringPlan"] == {"Name": "Syslog"} for r in records)
    assert records[0]["Item"] == {"Name": "app01"}


def test_xml_output_is_a_schema_valid_activity_record_list() -> None:
    code, out, _ = _run(["--format", "xml", "--source", "192.0.2.44"], b"\n".join(LINES))
    assert code == 0
    doc = etree.fromstring(out.encode())
    activity_records_schema().assertValid(doc)
    assert len(doc) == 3
    ns = {"n": "http://schemas.netwrix.com/api/v1/activity_records/"}
    assert doc.findtext("n:ActivityRecord/n:Workstation", namespaces=ns) == "192.0.2.44"


def test_a_bad_user_rule_folder_exits_2_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("pack: x\nrules: []\n")
    code, _, err = _run(["--rules", str(bad), "-"], b"")
    assert code == 2
    assert f"{bad}:2" in err


def test_explain_and_xml_together_is_a_usage_error() -> None:
    code, _, err = _run(["--explain", "--format", "xml", "-"], b"")
    assert code == 2 and "--explain prints JSON" in err


def test_the_installed_command_reads_stdin() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ingestor.cli", "parse", "--explain"],
        input=LINES[0] + b"\n",
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert json.loads(proc.stdout)["rule"] == "privileged.sudo.command"
