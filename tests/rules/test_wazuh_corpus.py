"""The Wazuh ruleset's own test lines (tests/corpus/wazuh/cases.jsonl) through the built-in packs.

Every `pass` line of the sudo, su, sshd, pam and cisco_ios sections must become a record whose
Action (and, where the section is specific, ObjectType) carries the section's meaning; `fail`
lines must not. One documented exception: su.ini's two `fail` lines are the very message that
pam.ini lists as a `pass` ("su(pam_unix)[pid]: authentication failure; ... ruser=dcid ...
user=osaudit", only host and date differ). Wazuh's `fail` there says its *su decoder* does not
claim the line (its pam decoder does); for an audit trail the line is a failed su and must not
be lost, so the pass wins and the test holds the two lines to that.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from parsers.rules.loader import load_ruleset
from parsers.rules.testing import ExplainOptions, explain
from tests.conftest import find_corpus

FAMILIES = ("sudo", "su", "sshd", "pam", "cisco_ios")

FAILED_CONNECTION = {"Failed Logon", "Session end", "Read (Failed Attempt)"}
# (file, section) -> (allowed Actions, allowed ObjectTypes or None for any)
MEANING: dict[tuple[str, str], tuple[set[str], set[str] | None]] = {
    ("sudo", "sudo: all"): ({"Activated"}, {"sudo"}),
    ("sudo", "Failed attempt to run sudo"): ({"Failed Logon"}, {"sudo"}),
    ("sudo", "First time user executed sudo"): ({"Activated"}, {"sudo"}),
    ("sudo", "3 incorrect password attempts"): ({"Failed Logon"}, {"sudo"}),
    ("sudo", "unauthorized user"): ({"Failed Logon"}, {"sudo"}),
    ("su", "su: failed "): ({"Failed Logon"}, {"su"}),
    ("su", "su: bad pass"): ({"Failed Logon"}, {"su"}),
    ("su", "su: work fts"): ({"Successful Logon"}, {"su"}),
    ("pam", "User login failed."): ({"Failed Logon"}, None),
    ("pam", "Attempt to login with an invalid user."): ({"Failed Logon"}, None),
    ("pam", "Login session opened."): ({"Session start"}, None),
    ("pam", "Login session closed."): ({"Session end"}, None),
    ("pam", "User missed the password more than one time"): ({"Failed Logon"}, None),
    ("cisco_ios", "cisco ios ids: sig"): ({"Read (Failed Attempt)"}, {"IPS signature"}),
    ("cisco_ios", "cisco ios: acl "): ({"Read (Failed Attempt)"}, {"Access list"}),
    ("cisco_ios", "cisco ios: generic"): ({"Read (Failed Attempt)"}, {"Access list"}),
    ("cisco_ios", "cisco ios: error message"): ({"Modified"}, {"Device state"}),
    ("cisco_ios", "cisco ios: cisco switch"): ({"Successful Logon", "Session start", "Failed Logon"}, None),
    ("cisco_ios", "cisco ios: syslog"): ({"Failed Logon"}, {"802.1X"}),
    ("sshd", "invalid user"): ({"Failed Logon"}, {"Logon"}),
    ("sshd", "SSHD Disconnected from invalid"): ({"Failed Logon"}, {"Logon"}),
    ("sshd", "SSHD Disconnecting invalid"): ({"Failed Logon"}, {"Logon"}),
    ("sshd", "login failed"): ({"Failed Logon"}, {"Logon"}),
    ("sshd", "max auth attempts"): ({"Failed Logon"}, {"Logon"}),
    ("sshd", "SSHD Authentication error"): ({"Failed Logon"}, {"Logon"}),
    ("sshd", "sshd brute force rule"): ({"Failed Logon"}, {"Logon"}),
    ("sshd", "sshd brute force rule 2"): ({"Failed Logon"}, {"Logon"}),
    ("sshd", "SSHD: denied user"): ({"Failed Logon"}, {"Logon"}),
    ("sshd", "sshd: Multiple access attempts using a denied user"): ({"Failed Logon"}, {"Logon"}),
    ("sshd", "bad authorized_keys"): ({"Failed Logon"}, {"Logon"}),
    ("sshd", "subsystem failed"): ({"Read (Failed Attempt)"}, None),
    ("sshd", "SSHD Disconnected from"): ({"Logoff"}, {"Logon"}),
    ("sshd", "SSHD Connection close"): ({"Session end"}, {"SSH connection"}),
    ("sshd", "SSHD: connection reset"): ({"Session end"}, {"SSH connection"}),
    ("sshd", "ssh connection reset by peer"): ({"Session end"}, {"SSH connection"}),
    ("sshd", "SSHD configuration error (AuthorizedKeysCommand)"): ({"Read (Failed Attempt)"}, None),
}
# sshd sections about connections that fail before authentication: a failed attempt of some kind.
for section in (
    "ssh connection refused", "ssh connection timed out", "ssh no route to host", "ssh port forwarding issue",
    "ssh transport endpoint is not connected", "ssh get_remote_port failed", "ssh bad client public DH value",
    "ssh corrupted MAC on input", "ssh bad packet length", "ssh unable to negotiate", "ssh no matching key exchange",
    "bad dns", "SSHD insecure connection attempt", "SSHD: Reverse lookup error", "SSHD: possible attack",
):  # fmt: skip
    MEANING[("sshd", section)] = (FAILED_CONNECTION, None)


# Sections Wazuh alerts on (it is an intrusion detector) that are not audit events: scanners and
# connections that never reach authentication, disconnects naming only an address, reverse DNS
# warnings, PAM's "user unknown" pre-check and "N more failures" summary (the attempts have
# records of their own), sshd configuration errors. Their pass lines must make no record.
NOT_AUDIT_EVENTS = {("sshd", section) for section in (
    "ssh connection refused", "ssh connection timed out", "ssh no route to host", "ssh port forwarding issue",
    "ssh transport endpoint is not connected", "ssh get_remote_port failed", "ssh bad client public DH value",
    "ssh corrupted MAC on input", "ssh bad packet length", "ssh unable to negotiate", "ssh no matching key exchange",
    "bad dns", "SSHD insecure connection attempt", "SSHD: Reverse lookup error", "SSHD: possible attack",
    "SSHD Connection close", "SSHD: connection reset", "ssh connection reset by peer", "SSHD Disconnected from invalid",
    "SSHD Disconnecting invalid", "SSHD configuration error (AuthorizedKeysCommand)",
    # pam_systemd is an optional session module: the logon goes on, its "Accepted" line the event.
    "failed to create session",
)} | {
    ("pam", "Attempt to login with an invalid user."), ("pam", "User missed the password more than one time"),
}  # fmt: skip
# Single lines of a section that are not audit events: IOS's SSH key exchange before any
# authentication ("SSH2 Session request from ADDRESS ... Succeeded"; SSH2_USERAUTH is the logon).
NOT_AUDIT_LINES = {("cisco_ios.ini", "cisco ios: cisco switch", 1)}
# Network telemetry: records only with the optional cisco_ios_security pack enabled.
SECURITY_PACK = {
    ("cisco_ios", "cisco ios ids: sig"),
    ("cisco_ios", "cisco ios: acl "),
    ("cisco_ios", "cisco ios: generic"),
}


def _cases() -> list[dict[str, Any]]:
    path = find_corpus() / "wazuh" / "cases.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if Path(r["file"]).stem in FAMILIES]


CASES = _cases()


def _shape(log: str) -> str:
    """A message's shape for the su/pam exception: after the header, numbers and user= masked."""
    return re.sub(r"user=\S+|\d+", "#", log.split(": ", 1)[-1])


PASS_SHAPES = {_shape(r["log"]) for r in CASES if r["expect"] == "pass"}


@pytest.fixture(scope="module")
def ruleset():  # type: ignore[no-untyped-def]
    return load_ruleset()


def test_the_corpus_has_the_families() -> None:
    families = {Path(r["file"]).stem for r in CASES}
    assert families == set(FAMILIES)
    assert sum(r["expect"] == "pass" for r in CASES) >= 100


@pytest.mark.parametrize(
    "case", [c for c in CASES if c["expect"] == "pass"], ids=lambda c: f"{c['file']}:{c['section']}"
)
def test_pass_lines_map_with_the_sections_meaning(ruleset, case: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    key = (
        Path(case["file"]).stem,
        case["section"].rstrip("0123456789") if case["section"][-1:].isdigit() else case["section"],
    )
    result = explain(ruleset, case["log"], 1, ExplainOptions())
    single = (case["file"], case["section"], case["n"]) in NOT_AUDIT_LINES
    if key in NOT_AUDIT_EVENTS or key in SECURITY_PACK or single:
        assert "record" not in result, f"not an audit event, yet {case['log']!r} -> {result}"
        if key in NOT_AUDIT_EVENTS or single:
            return
        result = explain(load_ruleset(enable=["cisco_ios_security"]), case["log"], 1, ExplainOptions())
    assert "record" in result, f"{case['log']!r} -> {result}"
    record = result["record"]
    key = (Path(case["file"]).stem, case["section"])
    assert key in MEANING, f"no meaning written down for section {key}"
    actions, object_types = MEANING[key]
    assert record["Action"] in actions, (case["log"], result)
    if object_types is not None:
        assert record["ObjectType"] in object_types, (case["log"], result)
    expected_pack = {"sudo": "privileged.", "su": "privileged.", "cisco_ios": "cisco."}.get(key[0])
    if expected_pack:
        assert result["rule"].startswith(expected_pack)


@pytest.mark.parametrize(
    "case", [c for c in CASES if c["expect"] == "fail"], ids=lambda c: f"{c['file']}:{c['section']}"
)
def test_fail_lines_do_not_map(ruleset, case: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    result = explain(ruleset, case["log"], 1, ExplainOptions())
    if _shape(case["log"]) in PASS_SHAPES:
        # The su/pam overlap described above: the same message is a pass line elsewhere.
        assert case["file"] == "su.ini"
        assert result["record"]["Action"] == "Failed Logon"
        return
    assert "record" not in result, f"{case['log']!r} -> {result}"
    assert result.get("dropped") is True, "a line the packs deliberately skip is dropped by a named rule"


def test_no_corpus_line_makes_a_rule_fail_to_render(ruleset) -> None:  # type: ignore[no-untyped-def]
    """Every line of every corpus file: a record, unmatched or dropped, never a render error."""
    from parsers.rules.testing import explain_lines

    errors = []
    for path in sorted(find_corpus().rglob("*.log")):
        for obj in explain_lines(ruleset, path.read_bytes().splitlines(), ExplainOptions()):
            if "error" in obj:
                errors.append(f"{path.name}:{obj['line']}: {obj['rule']}: {obj['error']}")
    assert not errors, "\n".join(errors)


def test_wire_fields_equal_the_rendered_record_for_every_corpus_line(ruleset) -> None:  # type: ignore[no-untyped-def]
    """The per-message paths (`Match.wire` + `encode_fields`, `Match.core` + `encode_core`) give
    exactly what the record object and its encoders give, for every corpus line and both formats."""
    from ingestor.netwrix.encoding import JsonEncoder, XmlEncoder
    from ingestor.netwrix.records import RecordDefaults, record_fields
    from parsers.syslog import parse_syslog

    defaults = RecordDefaults.from_mapping(
        {"DataSource": "Syslog", "MonitoringPlan": {"Name": "Network", "ID": "7"}, "Item": {"Name": "syslog"}}
    )
    compared = 0
    xml = XmlEncoder()
    for path in sorted(find_corpus().rglob("*.log")):
        for raw in path.read_bytes().splitlines():
            match = ruleset.match(parse_syslog(raw, source="192.0.2.7"))
            if match is None or match.rule.drop:
                continue
            record = match.render(defaults)
            wire = match.wire(defaults)
            assert wire == record_fields(record), raw
            for encoder in (xml, JsonEncoder()):
                assert encoder.encode_fields(wire) == encoder.encode(record)
                assert encoder.encode_core(match.core(defaults)) == encoder.encode(record)
            compared += 1
    assert compared > 1000
