# ruff: noqa: E501  (tables of real log lines read better unwrapped)
"""Rule files compiled into a RuleSet: matching, rendering, indexing and load-time errors."""

from datetime import UTC, datetime

import pytest

from ingestor.errors import RuleError
from ingestor.netwrix.records import Action
from parsers.rules import build_ruleset, compile_pack
from parsers.syslog import parse_syslog
from parsers.yamlfile import load_yaml

RECEIVED = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

PACK = r"""
pack: test
rules:
  - id: cisco.sys.config_i
    description: Running configuration changed from a terminal
    match:
      mnemonic: SYS-5-CONFIG_I
      regex: 'Configured from (?P<via>\S+) by (?P<user>\S+)'
    record:
      Action: modified
      ObjectType: Configuration
      Who: "{user}"
      What: running-config
    details:
      Configured from: "{via}"
    examples:
      - line: "<189>12: *Mar  1 00:01:02.345: %SYS-5-CONFIG_I: Configured from console by admin"
        record: {Action: Modified, Who: admin}
  - id: linux.sshd.accepted
    description: Successful SSH logon
    match:
      program: sshd
      regex: '^Accepted (?P<method>\S+) for (?P<user>\S+) from (?P<ip>\S+) port \d+'
    record:
      Action: Successful Logon
      ObjectType: Logon
      Who: "{user}"
      What: "ssh session"
      Workstation: "{ip}"
    details:
      Method: "{method}"
    examples:
      - line: "Jan  1 00:00:00 web01 sshd[1]: Accepted password for alice from 192.0.2.9 port 22 ssh2"
        record: {Who: alice}
  - id: linux.sshd.noise
    description: Drop sshd key exchange chatter
    match: {program: sshd, regex: '^Connection closed by'}
    drop: true
    examples:
      - line: "Jan  1 00:00:00 web01 sshd[1]: Connection closed by 192.0.2.9"
        dropped: true
  - id: any.authpriv
    description: Anything else on authpriv
    match: {facility: authpriv}
    record: {Action: Read, ObjectType: Event, Who: "{program|default:unknown}", What: event}
    examples:
      - line: "<86>Jan  1 00:00:00 web01 cron[2]: anything"
        record: {Who: cron}
"""


def ruleset(text=PACK, name="rules/test/pack.yaml"):
    return build_ruleset([compile_pack(load_yaml(name, text))])


def message(line, source="198.51.100.7"):
    return parse_syslog(line.encode(), source=source, received_at=RECEIVED)


def test_cisco_rule_matches_and_renders_a_full_record():
    rules = ruleset()
    match = rules.match(message("<189>12: sw1: *Mar  1 00:01:02.345: %SYS-5-CONFIG_I: Configured from vty0 by admin"))
    assert match is not None and match.rule.id == "cisco.sys.config_i"
    record = match.render({"DataSource": "Syslog", "MonitoringPlan": {"Name": "Network"}})
    assert record.Action is Action.MODIFIED and record.Who == "admin" and record.Where == "sw1"
    assert record.Workstation == "198.51.100.7"
    assert record.DetailList[0].PropertyName == "Configured from" and record.DetailList[0].After == "vty0"
    assert record.When.year == 2026 and record.MonitoringPlan.Name == "Network"


def test_linux_rule_uses_the_captured_workstation():
    record = (
        ruleset()
        .match(message("Jan  1 00:00:00 web01 sshd[1]: Accepted publickey for bob from 192.0.2.9 port 22 ssh2"))
        .render()
    )
    assert (record.Who, record.Workstation, record.Where) == ("bob", "192.0.2.9", "web01")
    assert record.DetailList[0].After == "publickey"


def test_drop_rules_match_but_make_no_record():
    match = ruleset().match(message("Jan  1 00:00:00 web01 sshd[1]: Connection closed by 192.0.2.9"))
    assert match is not None and match.rule.drop and match.render() is None


def test_unmatched_messages_give_none():
    assert ruleset().match(message("Jan  1 00:00:00 web01 kernel: something")) is None


def test_facility_rules_apply_only_to_their_facility():
    rules = ruleset()
    assert rules.match(message("<86>Jan  1 00:00:00 web01 cron[2]: x")).rule.id == "any.authpriv"
    assert rules.match(message("<14>Jan  1 00:00:00 web01 cron[2]: x")) is None


def test_index_offers_only_rules_that_can_apply():
    rules = ruleset()
    cisco = message("<189>12: *Mar  1 00:01:02.345: %SYS-5-CONFIG_I: Configured from console by admin")
    assert [r.id for r in rules.candidates(cisco)] == ["cisco.sys.config_i", "any.authpriv"]


def test_a_later_pack_overrides_a_rule_by_id():
    user = PACK.replace("What: running-config", "What: startup-config").replace("pack: test", "pack: user")
    rules = build_ruleset([compile_pack(load_yaml("base.yaml", PACK)), compile_pack(load_yaml("user.yaml", user))])
    assert len(rules.rules) == 4
    match = rules.match(message("<189>12: *Mar  1 00:01:02.345: %SYS-5-CONFIG_I: Configured from console by admin"))
    assert match.render().What == "startup-config" and match.rule.pack == "user"


@pytest.mark.parametrize(
    ("change", "line", "rule_id", "text"),
    [
        (("Action: modified", "Action: Modify"), 10, "cisco.sys.config_i", "'Modify' is not one of Added"),
        (
            ("'Configured from (?P<via>\\S+) by (?P<user>\\S+)'", "'(\\w+\\s?)+'"),
            8,
            "cisco.sys.config_i",
            "nests an unbounded",
        ),
        (('Who: "{user}"', 'Who: "{usr}"'), 12, "cisco.sys.config_i", "{usr}"),
        (("facility: authpriv", "facility: autpriv"), 44, "any.authpriv", "unknown facility 'autpriv'"),
        (('Who: "{user}"\n      What: running-config', "What: running-config"), 4, "cisco.sys.config_i", "lacks Who"),
        (('Who: "{user}"', 'Who: "{user"'), 12, "cisco.sys.config_i", "brace"),
    ],
)
def test_bad_rules_are_refused_with_file_line_rule_and_reason(change, line, rule_id, text):
    bad = PACK.replace(*change, 1)
    assert bad != PACK
    with pytest.raises(RuleError) as info:
        compile_pack(load_yaml("rules/test/pack.yaml", bad))
    error = info.value
    assert error.path == "rules/test/pack.yaml" and error.rule_id == rule_id
    assert error.line == line, str(error)
    assert text in str(error)


FEATURES = r"""
pack: features
data_source: Pack source
rules:
  - id: generic.session
    description: any program's session line, tried last
    fallback: true
    match: {contains: "session opened", regex: 'session opened for user (?P<user>\S+)'}
    record: {Action: Session start, ObjectType: Session, Who: "{user}", What: "{program}"}
    examples: [{line: "Jan  1 00:00:00 h login[1]: session opened for user a", record: {Who: a}}]
  - id: su.session
    description: su's own, listed later but specific
    match: {program: su, regex: 'session opened for user (?P<user>\S+) by (?P<by>\S*)\(uid=(?P<uid>\d+)\)'}
    record: {Action: Session start, ObjectType: su, Who: "{by|or:uid}", What: "{user}"}
    examples: [{line: "Jan  1 00:00:00 h su[1]: session opened for user root by alice(uid=1)", record: {Who: alice}}]
  - id: any.fan
    description: a bare mnemonic matches every facility and severity
    match: {mnemonic: FAN_FAULT}
    record: {Action: Modified, ObjectType: Environment, Who: system, What: fan}
    examples: [{line: "%ENVMON-2-FAN_FAULT: fan 1", record: {What: fan}}]
  - id: usermod.change
    description: before and after, under a property named by the message
    match: {program: usermod, regex: "change user '(?P<u>[^']+)' (?P<prop>\\w+) from '(?P<old>[^']*)' to '(?P<new>[^']*)'"}
    record: {Action: Modified, ObjectType: User account, Who: root, What: "{u}"}
    details:
      "{prop}": {before: "{old}", after: "{new}"}
    examples: [{line: "Jan  1 00:00:00 h usermod[1]: change user 'a' shell from '/bin/sh' to '/bin/zsh'", record: {What: a}}]
  - id: empty.who
    description: a required field that can come out empty
    match: {program: demo, regex: 'user=(?P<user>\S*)'}
    record: {Action: Read, ObjectType: Demo, Who: "{user}", What: demo}
    examples: [{line: "Jan  1 00:00:00 h demo: user=x", record: {Who: x}}]
"""


def test_fallback_rules_lose_to_specific_ones_whatever_the_order():
    rules = ruleset(FEATURES)
    su = rules.match(message("Jan  1 00:00:00 h su[1]: session opened for user root by alice(uid=1000)"))
    assert su.rule.id == "su.session"
    assert su.render().Who == "alice"
    login = rules.match(message("Jan  1 00:00:00 h login[1]: session opened for user bob by LOGIN(uid=0)"))
    assert login.rule.id == "generic.session" and login.render().What == "login"
    assert rules.match(message("Jan  1 00:00:00 h login[1]: something else")) is None


def test_or_takes_the_next_field_when_one_is_empty():
    rules = ruleset(FEATURES)
    record = rules.match(message("Jan  1 00:00:00 h su[1]: session opened for user news by (uid=0)")).render()
    assert record.Who == "0"


def test_a_bare_mnemonic_matches_any_facility_and_severity():
    rules = ruleset(FEATURES)
    for tag in ("ENVMON-2-FAN_FAULT", "ENVIRONMENT-3-FAN_FAULT"):
        assert rules.match(message(f"<189>1: *Mar  1 00:00:00.000: %{tag}: fan")).rule.id == "any.fan"
    assert rules.match(message("<189>1: *Mar  1 00:00:00.000: %ENVMON-2-FAN_OK: fan")) is None


def test_details_carry_before_and_after_under_a_templated_name():
    rules = ruleset(FEATURES)
    record = rules.match(
        message("Jan  1 00:00:00 h usermod[1]: change user 'a' shell from '/bin/sh' to '/bin/zsh'")
    ).render()
    detail, kind = record.DetailList
    assert (detail.PropertyName, detail.Before, detail.After) == ("shell", "/bin/sh", "/bin/zsh")
    # The pack's kind, also in a detail: the server overwrites DataSource with "Netwrix API".
    assert (kind.PropertyName, kind.After) == ("Source kind", "Pack source")
    assert record.DataSource == "Pack source" and record.Item is not None and record.Item.Name == "Pack source"
    assert (
        rules.match(message("Jan  1 00:00:00 h usermod[1]: change user 'a' shell from '/bin/sh' to '/bin/zsh'"))
        .render({"DataSource": "Configured"})
        .DataSource
        == "Configured"
    )


def test_an_empty_required_field_is_a_render_error_naming_the_rule():
    from ingestor.errors import RenderError

    match = ruleset(FEATURES).match(message("Jan  1 00:00:00 h demo: user= "))
    with pytest.raises(RenderError) as info:
        match.render()
    assert info.value.rule_id == "empty.who" and "Who came out empty" in str(info.value)


def test_contains_filters_before_the_regex_runs():
    rules = ruleset(FEATURES)
    assert rules.match(message("Jan  1 00:00:00 h login[1]: Session Opened for user x")) is None


SPECIFIC = r"""
pack: test
rules:
  - id: ios.config_i
    description: any platform's CONFIG_I (a bare mnemonic), listed first
    match: {mnemonic: CONFIG_I, regex: 'by (?P<user>\S+)'}
    record: {Action: Modified, ObjectType: Configuration, Who: "{user}", What: running-config}
    examples: [{line: "<189>1: *Mar  1 00:00:00.000: %SYS-5-CONFIG_I: Configured from console by a", record: {Who: a}}]
  - id: xr.config_i
    description: IOS XR's own, listed later but naming the full mnemonic
    match: {mnemonic: MGBL-SYS-5-CONFIG_I, regex: 'by (?P<user>\S+)'}
    record: {Action: Modified, ObjectType: Configuration, Who: "{user}", What: xr}
    examples: [{line: "%MGBL-SYS-5-CONFIG_I : Configured from console by a", record: {What: xr}}]
  - id: firewall.login
    description: a family condition
    match: {mnemonic: '605005', family: [asa, ftd], regex: 'for user "(?P<user>[^"]*)"'}
    record: {Action: Successful Logon, ObjectType: Logon, Who: "{user}", What: asa}
    examples: [{line: '%ASA-6-605005: Login permitted from serial to console for user "a"', record: {Who: a}}]
"""


def test_a_rule_naming_the_full_mnemonic_wins_over_one_naming_it_bare_whatever_the_order():
    rules = ruleset(SPECIFIC)
    xr = "RP/0/RSP0/CPU0:Mar  1 00:00:00.000 UTC: config[65741]: %MGBL-SYS-5-CONFIG_I : Configured from console by bob"
    assert rules.match(message(xr)).rule.id == "xr.config_i"
    ios = "<189>1: *Mar  1 00:00:00.000: %SYS-5-CONFIG_I: Configured from console by bob"
    assert rules.match(message(ios)).rule.id == "ios.config_i"


def test_a_family_condition_holds_only_for_that_family():
    rules = ruleset(SPECIFIC)
    for tag in ("ASA-6-605005", "FTD-6-605005", "ASA-sys-6-605005"):
        line = f'<166>%{tag}: Login permitted from serial to console for user "ann"'
        assert rules.match(message(line)).render().Who == "ann"
    assert rules.match(message('<189>1: %SEC-6-605005: Login permitted for user "ann"')) is None  # family ios


def test_a_line_some_pipeline_lower_cased_whole_still_meets_its_cisco_rule():
    """No device writes `%sys-5-config_i: configured from ...`; a SIEM's normalizer does. Its
    keys, literals and regex are matched without case, and the captured values kept as sent."""
    rules = ruleset(SPECIFIC)
    lowered = "<189>1: *mar  1 00:00:00.000: %mgbl-sys-5-config_i : configured from console by Bob.Smith"
    match = rules.match(message(lowered))
    assert match is not None and match.rule.id == "xr.config_i" and match.render().Who == "Bob.Smith"
    assert rules.match(message('<166>%asa-6-605005: login permitted for user "ann"')).render().Who == "ann"
    # The case-blind rules are only for lower-cased lines: an upper-case text keeps its rule's case.
    assert rules.match(message('<166>%ASA-6-605005: LOGIN PERMITTED FOR USER "ann"')) is None
    assert rules.match(message("<189>1: *Mar  1 00:00:00.000: %SYS-5-CONFIG_I: CONFIGURED FROM CONSOLE BY A")) is None
    assert rules.match(message("<189>1: *mar  1 00:00:00.000: %sys-5-fan_ok: fan")) is None


def test_the_candidate_cache_stays_bounded_whatever_mnemonics_arrive():
    rules = ruleset(SPECIFIC)
    for i in range(500):
        rules.match(message(f"<189>1: *Mar  1 00:00:00.000: %X{i}-5-CONFIG_I: Configured from console by bob"))
    assert len(rules._pairs) <= 2


def test_a_line_without_any_header_is_read_by_the_rules_of_every_program() -> None:
    """Other tools' test data and programs' own log files often hold the bare message: no
    program to look up, so a program's rules are tried too (after the general ones), and the
    program a match implies is the rule's first."""
    from parsers.rules.loader import load_ruleset

    ruleset = load_ruleset()
    bare = parse_syslog(b"Failed password for invalid user admin from 192.0.2.9 port 4242 ssh2")
    match = ruleset.match(bare)
    assert match is not None and match.rule.id.startswith("linux.sshd.") and bare.program == "sshd"
    record = match.render()
    assert (record.Who, record.Action, record.Workstation) == ("admin", Action.FAILED_LOGON, "192.0.2.9")
    # A PAM line of any service is the general rule's, not the su rule's that sees only su.
    pam = parse_syslog(
        b"pam_unix(cockpit:auth): authentication failure; logname= uid=0 euid=0 tty= ruser= rhost=192.0.2.1 user=jeff"
    )
    pam_match = ruleset.match(pam)
    assert pam_match is not None and pam_match.rule.id == "linux.pam.auth_failure"
    assert pam_match.render().Who == "jeff"
    # ... but a PAM line of su's own service is su's: the actor is su's caller, not its target.
    su = parse_syslog(b"pam_unix(su:session): session opened for user root by phemmer(uid=8129)")
    su_match = ruleset.match(su)
    assert su_match is not None and su_match.rule.id.startswith("privileged.su.") and su.program == "su"
    assert (su_match.render().Who, su_match.render().What) == ("phemmer", "root")
    # A line with a header keeps its program's candidates only.
    tagged = parse_syslog(
        b"Mar  1 10:00:00 web1 cron[4]: Failed password for invalid user admin from 192.0.2.9 port 1 ssh2"
    )
    assert ruleset.match(tagged) is None and tagged.program == "cron"


def test_first_words_read_as_a_header_are_read_again_as_the_message_when_no_rule_knows_them() -> None:
    """A program's message with no header at all can start with words that look like one (sudo's
    "alice : TTY=...", vsftpd's "[alice] FAIL LOGIN"): when no rule of the would-be program
    matches, the line is read whole as a line with no header. A line with a timestamp, or a
    tag with a pid, keeps its header."""
    from parsers.rules.loader import load_ruleset

    ruleset = load_ruleset()
    sudo = parse_syslog(b"alice : TTY=pts/1 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id")
    assert sudo.hostname == "alice" and sudo.unparsed is not None
    match = ruleset.match(sudo)
    assert match is not None and match.rule.id == "privileged.sudo.command"
    assert (match.render().Who, match.render().What) == ("alice", "/usr/bin/id")
    ftp = parse_syslog(b'[alice] FAIL LOGIN: Client "192.0.2.5"')
    ftp_match = ruleset.match(ftp)
    assert ftp_match is not None and ftp_match.render().Action == Action.FAILED_LOGON
    assert ftp_match.render().Who == "alice"
    stamped = parse_syslog(b"Mar  1 10:00:00 web1 alice: TTY=pts/1 ; PWD=/ ; USER=root ; COMMAND=/usr/bin/id")
    assert stamped.unparsed is None and ruleset.match(stamped) is None
    with_pid = parse_syslog(b"myapp[7]: alice : TTY=pts/1 ; PWD=/ ; USER=root ; COMMAND=/usr/bin/id")
    assert with_pid.unparsed is None and ruleset.match(with_pid) is None
