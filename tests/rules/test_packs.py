# ruff: noqa: E501  (tables of real log lines read better unwrapped)
"""The built-in packs test themselves, and the test runner catches what it must."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from ingestor.cli import main
from parsers.rules.engine import RuleSet
from parsers.rules.loader import builtin_dir, load_packs, load_ruleset, rule_files
from parsers.rules.testing import ExplainOptions, explain, run_rule_tests

PACKS = ("cisco_asa", "cisco_ios", "cisco_iosxr", "cisco_nxos", "linux", "privileged")


@functools.cache
def builtin_rules() -> RuleSet:
    return load_ruleset()


def test_every_builtin_rule_example_and_golden_log_passes() -> None:
    report = run_rule_tests()
    assert report.ok, "\n".join(str(f) for f in report.failures)
    assert report.rules >= 90
    assert report.examples >= report.rules
    assert report.golden_files >= len(PACKS)


@pytest.mark.parametrize("pack", PACKS)
def test_each_pack_has_rules_declared_details_and_golden_logs(pack: str) -> None:
    folder = builtin_dir() / pack
    assert rule_files(folder) == [folder / f"{pack}.yaml"]
    assert (folder / "details.yaml").is_file()
    logs = sorted((folder / "tests").glob("test-*.log"))
    assert logs
    for log in logs:
        assert log.with_name(log.name + "-expected.jsonl").is_file()
    (loaded,) = load_packs([folder])
    prefix = {"cisco_ios": "cisco."}.get(pack, f"{pack}.")
    assert all(rule.id.startswith(prefix) for rule in loaded.rules)
    assert loaded.details is not None


def test_golden_logs_exercise_most_rules() -> None:
    seen: set[str] = set()
    for log in builtin_dir().glob("*/tests/*-expected.jsonl"):
        seen |= {json.loads(line).get("rule", "") for line in log.read_text().splitlines()}
    ids = {rule.id for rule in builtin_rules().rules}
    assert len(seen & ids) >= 0.5 * len(ids)


# Each IOS event of Netwrix's table (spec) and the extra ones the issue names: (line, Action, ObjectType).
IOS_EVENTS = [
    ("%SYS-5-CONFIG_I: Configured from console by admin on vty0 (10.0.0.5)", "Modified", "Configuration"),
    ("%SEC_LOGIN-5-LOGIN_SUCCESS: Login Success [user: a] [Source: 10.0.0.5] [localport: 22] at x", "Successful Logon", "Logon"),
    ("%SEC_LOGIN-4-LOGIN_FAILED: Login failed [user: a] [Source: 10.0.0.5] [localport: 22] [Reason: x] at x", "Failed Logon", "Logon"),
    ("IKEv2:(SESSION ID = 1,SA ID = 1):Verification of peer's authentication data PASSED", "Successful Logon", "Authentication"),
    ("IKEv2-ERROR:(SESSION ID = 1,SA ID = 1):: Auth exchange failed", "Failed Logon", "Authentication"),
    ("%IKEV2-5-SA_UP: SA UP", "Successful Logon", "Session"),
    ("%IKEV2-5-SA_DOWN: SA DOWN", "Logoff", "Session"),
    ("%FW-6-SESS_AUDIT_TRAIL: Stop tcp session: initiator (10.0.0.1:1000) sent 1 bytes -- responder (10.0.0.2:22) sent 2 bytes", "Logoff", "Session"),
    ("%LINK-3-UPDOWN: Interface Gi0/1, changed state to down", "Modified", "Device state"),
    ("%LINK-5-CHANGED: Interface Gi0/1, changed state to administratively down", "Modified", "Device state"),
    ("%ENVIRONMENT-2-FAN_FAULT: System Fan 1 faulty", "Modified", "Environment"),
    ("%ENVMON-1-OVER_TEMP: Temperature too high", "Modified", "Environment"),
    ("AAA/ATTR(00000001): add attr: service-type 6 admin", "Read", "Attribute"),
    ("%PARSER-5-CFGLOG_LOGGEDCMD: User:admin  logged command:hostname r2", "Modified", "Configuration"),
    ("%SYS-6-LOGOUT: User admin has exited tty session 2(10.0.0.5)", "Logoff", "Logon"),
    ("%SYS-5-RELOAD: Reload requested by admin on vty0 (10.0.0.5). Reload Reason: Reload Command.", "Modified", "Device state"),
    ("%SYS-5-RESTART: System restarted --", "Activated", "Device state"),
    ("%SSH-5-SSH2_USERAUTH: User 'a' authentication for SSH2 Session from 10.0.0.5 (tty = 0) using crypto cipher 'c', hmac 'h' Failed", "Failed Logon", "Logon"),
    ("%SSH-5-SSH2_CLOSE: SSH2 Session from 10.0.0.5 (tty = 0) for user 'a' using crypto cipher 'c', hmac 'h' closed", "Logoff", "Logon"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "action", "object_type"), IOS_EVENTS, ids=[e[0][:30] for e in IOS_EVENTS])
def test_every_ios_event_of_the_netwrix_table_is_covered(text: str, action: str, object_type: str) -> None:
    line = f"<189>101: rtr9: *Mar  1 00:00:01.000 UTC: {text}"
    result = explain(builtin_rules(), line, 1, ExplainOptions(source="192.0.2.9"))
    assert result.get("rule", "").startswith("cisco."), result
    record = result["record"]
    assert (record["Action"], record["ObjectType"], record["Where"], record["DataSource"]) == (
        action, object_type, "rtr9", "Cisco IOS",
    )  # fmt: skip


def test_a_firewall_session_start_is_no_logon_unless_the_security_pack_is_on() -> None:
    """Netwrix maps SESS_AUDIT_TRAIL to Session/Logoff only: a session start is a connection,
    not a person logging on (its Who is an address and port)."""
    line = "<190>1: rtr9: *Mar  1 00:00:01.000 UTC: %FW-6-SESS_AUDIT_TRAIL: Start tcp session: initiator (10.0.0.1:1000) -- responder (10.0.0.2:22)"
    assert "record" not in explain(builtin_rules(), line, 1, ExplainOptions())
    enabled = explain(load_ruleset(enable=["cisco_ios_security"]), line, 1, ExplainOptions())
    assert enabled["rule"] == "cisco.fw.session_start"


def _user_pack(tmp_path: Path, body: str, name: str = "site.yaml") -> Path:
    folder = tmp_path / "site"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(body)
    return folder


OVERRIDE = """\
pack: site
rules:
  - id: linux.sshd.accepted
    description: Our SSH logons are 'Remote access'
    match:
      program: sshd
      regex: 'Accepted (?P<method>\\S+) for (?P<user>\\S+) from (?P<rhost>\\S+)'
    record: {Action: Successful Logon, ObjectType: Remote access, Who: "{user}", What: sshd}
    examples:
      - line: "Mar  1 00:00:00 h sshd[1]: Accepted password for alice from 192.0.2.1 port 22 ssh2"
        record: {ObjectType: Remote access, Who: alice}
"""


def test_a_user_folder_overrides_a_builtin_rule_by_id(tmp_path: Path) -> None:
    folder = _user_pack(tmp_path, OVERRIDE)
    ruleset = load_ruleset([folder])
    assert len(ruleset) == len(builtin_rules())  # replaced, not added
    line = "Mar  1 00:00:00 h sshd[1]: Accepted password for alice from 192.0.2.1 port 22 ssh2"
    result = explain(ruleset, line, 1, ExplainOptions())
    assert result["rule"] == "linux.sshd.accepted"
    assert result["record"]["ObjectType"] == "Remote access"
    report = run_rule_tests([folder])
    assert report.ok, "\n".join(map(str, report.failures))
    assert report.rules == 1


def test_an_example_caught_by_an_earlier_rule_fails_with_the_culprit(tmp_path: Path) -> None:
    folder = _user_pack(
        tmp_path,
        OVERRIDE.replace("id: linux.sshd.accepted", "id: site.sshd.accepted"),
    )
    report = run_rule_tests([folder])
    assert not report.ok
    (failure,) = report.failures
    assert "site.sshd.accepted" in failure.where
    assert "expected rule site.sshd.accepted, matched by linux.sshd.accepted" in failure.message


def test_a_wrong_expectation_prints_a_field_diff(tmp_path: Path) -> None:
    folder = _user_pack(
        tmp_path, OVERRIDE.replace("record: {ObjectType: Remote access, Who: alice}", "record: {Who: bob}")
    )
    (failure,) = run_rule_tests([folder]).failures
    assert "- Who: 'bob'" in failure.message and "+ Who: 'alice'" in failure.message


def test_an_undeclared_detail_property_fails(tmp_path: Path) -> None:
    body = OVERRIDE.replace("    examples:", '    details: {Secret: "{method}"}\n    examples:', 1)
    folder = _user_pack(tmp_path, body)
    (folder / "details.yaml").write_text("Method: {description: how}\n")
    (failure,) = run_rule_tests([folder]).failures
    assert "'Secret' is not declared" in failure.message


def test_a_changed_golden_expectation_fails_with_a_unified_diff(tmp_path: Path) -> None:
    copy = tmp_path / "privileged"
    shutil.copytree(builtin_dir() / "privileged", copy)
    expected = copy / "tests" / "test-sudo-su.log-expected.jsonl"
    lines = expected.read_text().splitlines()
    lines[0] = lines[0].replace('"Who": "alice"', '"Who": "eve"')
    expected.write_text("\n".join(lines) + "\n")
    report = run_rule_tests([copy])
    (failure,) = report.failures
    assert failure.where.endswith("test-sudo-su.log")
    assert '-{"line": 1' in failure.message and '+{"line": 1' in failure.message
    # --generate rewrites it from the rules, and then it passes.
    assert run_rule_tests([copy], generate=True).generated == [expected]
    assert run_rule_tests([copy]).ok


def test_cli_test_rules_passes_on_the_builtin_packs_and_fails_on_a_broken_one(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(main, ["test-rules"])
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("ok: ")
    folder = _user_pack(
        tmp_path, OVERRIDE.replace("record: {ObjectType: Remote access, Who: alice}", "record: {Who: bob}")
    )
    bad = runner.invoke(main, ["test-rules", str(folder)])
    assert bad.exit_code == 1
    assert "FAIL" in bad.output and "1 failed" in bad.output


def test_cli_test_rules_names_file_and_line_of_a_bad_rule_file(tmp_path: Path) -> None:
    folder = _user_pack(tmp_path, OVERRIDE.replace("Action: Successful Logon", "Action: Rebooted"))
    result = CliRunner().invoke(main, ["test-rules", str(folder)])
    assert result.exit_code == 2
    assert f"{folder / 'site.yaml'}:8: rules[0].record" in result.output
    assert "Rebooted" in result.output and "linux.sshd.accepted" in result.output


# Netwrix's Network Devices data source table for Cisco ASA (netwrix/docs
# docs/auditor/10.8/configuration/networkdevices/ciscoasa.md) and what issue 24 adds beyond it.
ASA_TABLE = [
    "605005",
    "308001",
    "605004",
    "111004",
    "111010",
    "612001",
    "612002",
    "612003",
    "111007",
    "111003",
    "112001",
    "208005",
    "502101",
    "502102",
    "502103",
    "113006",
    "113007",
    "716001",
    "722022",
    "722023",
    "725001",
    "725002",
    "725003",
    "725004",
    "725005",
    "725006",
    "725007",
    "302014",
    "302016",
    "733101",
    "716003",
    "716004",
]
ASA_BEYOND = ["111008", "111009", "611101", "611102", "611103", "113004", "113005", "113015"]


@pytest.mark.parametrize("message_id", ASA_TABLE + ASA_BEYOND)
def test_every_asa_event_netwrix_collects_has_a_rule_with_an_example(message_id: str) -> None:
    (pack,) = load_packs([builtin_dir() / "cisco_asa"])
    rules = [r for r in pack.rules if message_id in r.mnemonics]
    assert rules, f"no cisco_asa rule for {message_id}"
    lines = [e.line for r in rules for e in r.spec.examples if not e.unmatched]
    assert any(f"-{message_id}" in line for line in lines), f"no example line of {message_id}"
