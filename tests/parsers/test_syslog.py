"""parse_syslog against golden cases from other projects (tests/corpus, vendored) and properties."""

import json
import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.syslog import parse_syslog, zone_for
from tests.conftest import find_corpus

CORPUS = find_corpus()
RECEIVED = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)


def jsonl(path):
    return [json.loads(line) for line in (CORPUS / path).read_text().splitlines() if line.strip()]


CISCO_CASES = jsonl("syslog-ng/syslog-ng-cisco-parser-cases.jsonl")


@pytest.mark.parametrize("case", CISCO_CASES, ids=lambda c: c["input"][:50])
def test_syslog_ng_cisco_cases(case):
    expected = case["expected"]
    msg = parse_syslog(case["input"].encode(), received_at=RECEIVED)
    assert msg.facility * 8 + msg.severity == int(expected["PRI"])
    # syslog-ng fills in its own hostname when the message has none; nwsyslog leaves it empty
    # and uses the source address.
    if "HOST" in expected and not expected["HOST"].startswith("<"):
        assert msg.hostname == expected["HOST"]
    if "DATE" in expected:
        month, day, clock = expected["DATE"].split()
        assert msg.timestamp.strftime("%b") == month and msg.timestamp.day == int(day)
        assert msg.timestamp.strftime("%H:%M:%S") == clock
    if "MSEC" in expected:
        assert msg.timestamp.microsecond == int(expected["MSEC"]) * 1000
    cisco = expected["_cisco"]
    assert msg.mnemonic == f"{cisco['facility']}-{cisco['severity']}-{cisco['mnemonic']}"
    assert msg.text == expected["MSG"]


# syslog-ng's RFC 5424 cases, except those pinning its own error piggy-backing and its
# truncation of over-long names and values (nwsyslog keeps them whole).
PROTOCOL_CASES = [
    c
    for c in jsonl("syslog-ng/syslog-ng-msgparse-cases.jsonl")
    if c["parse_flags"] == "LP_SYSLOG_PROTOCOL"
    and c["expected_host"] is not None
    and c["test"] not in ("test_expected_sd_pairs_long", "test_unescaped_too_long_message_parts")
]


@pytest.mark.parametrize("case", PROTOCOL_CASES, ids=lambda c: c["test"] + ":" + c["msg"][:40])
def test_syslog_ng_rfc5424_cases(case):
    msg = parse_syslog(case["msg"].encode(), received_at=RECEIVED)
    assert msg.parse_error is None and msg.version == 1
    assert msg.facility * 8 + msg.severity == case["expected_pri"]
    assert msg.hostname == case["expected_host"]
    assert (msg.program or "") == case["expected_program"]
    assert msg.text == case["expected_msg"]
    pairs = {f".SDATA.{sd}.{k}": v for sd, params in msg.structured_data.items() for k, v in params.items()}
    # syslog-ng's cases list the pairs they check, not always all of them.
    assert (case["expected_sd_pairs"] or {}).items() <= pairs.items()
    # A NILVALUE timestamp stays None here (syslog-ng substitutes the receive time).
    if msg.timestamp is not None and "+" in case["msg"][:40]:
        assert int(msg.timestamp.timestamp()) == case["expected_stamp_sec"]
        assert msg.timestamp.microsecond == case["expected_stamp_usec"]
        assert msg.timestamp.utcoffset() == timedelta(seconds=case["expected_stamp_ofs"])


PREDECODER = [
    c for c in jsonl("wazuh-predecoder/predecoder-timestamps.jsonl") if "program_name" in c["expected_predecoder"]
]


@pytest.mark.parametrize("case", PREDECODER, ids=lambda c: c["name"])
def test_wazuh_predecoder_program_and_host(case):
    expected = case["expected_predecoder"]
    msg = parse_syslog(case["event"].encode(), received_at=RECEIVED)
    assert msg.program == expected["program_name"]
    assert msg.hostname == expected.get("hostname", "linux-agent" if "linux-agent" in case["event"] else "localhost")
    assert msg.timestamp is not None


@pytest.mark.parametrize(
    ("line", "fields"),
    [
        (
            "<189>29: foo: *Apr 29 13:58:40.411: %SYS-5-CONFIG_I: Configured from console by console",
            {"hostname": "foo", "sequence": 29, "mnemonic": "SYS-5-CONFIG_I"},
        ),
        (
            "<165>7433: ASR920: 007439: 2y10w: %SEC_LOGIN-5-LOGIN_SUCCESS: Login Success [user: u]",
            {"hostname": "ASR920", "sequence": 7439, "timestamp": None, "mnemonic": "SEC_LOGIN-5-LOGIN_SUCCESS"},
        ),
        (
            "<190>3132517: Jul 13 08:23:43 192.168.100.2 sw01: 3132779: Jul 14 2023 08:23:43.398 UTC: %FOO-6-BAR: x",
            {"hostname": "sw01", "sequence": 3132779, "timestamp": datetime(2023, 7, 14, 8, 23, 43, 398000, UTC)},
        ),
        (
            "<46>: 2024 Aug 27 21:40:50 PDT: %SNMPD-6-INFO: SNMP",
            {"timestamp": datetime(2024, 8, 27, 21, 40, 50, tzinfo=timezone(timedelta(hours=-7)))},
        ),
        (
            "<190>2361044: sw01: Jan  6 2022 22:11:43.398 mdt: %FOO-6-BAR: x",
            {"timestamp": datetime(2022, 1, 6, 22, 11, 43, 398000, timezone(timedelta(hours=-6)))},
        ),
        (
            "<190>2361044: sw01: Jan  6 2022 22:11:43 UTC+07:30: %FOO-6-BAR: x",
            {"timestamp": datetime(2022, 1, 6, 22, 11, 43, tzinfo=timezone(timedelta(hours=7, minutes=30)))},
        ),
        ("<185>%HAL_config_poe-A-POEFailDetected: POE ERROR", {"mnemonic": "HAL_config_poe-A-POEFailDetected"}),
        (
            "<179>host-1: *Dot1x_NW_MsgTask_0: Feb 18 13:04:15.123: %DOT1X-3-INVALID_REPLAY_CTR: x",
            {"hostname": "host-1", "mnemonic": "DOT1X-3-INVALID_REPLAY_CTR"},
        ),
        (
            "<167>Mar 27 19:06:53 source_server sshd(pam_unix)[12750]: session opened for user foo by (uid=0)",
            {"hostname": "source_server", "program": "sshd(pam_unix)", "pid": "12750"},
        ),
        (
            "Feb 24 00:13:02 precise32 sudo:     tsg : user NOT in sudoers ; TTY=pts/1",
            {"facility": None, "hostname": "precise32", "program": "sudo", "pid": None},
        ),
        ("<86>Nov 22 11:59:00 su[1234]: (to root) alice on pts/0", {"hostname": None, "program": "su"}),
        (
            '<165>1 2003-10-11T22:14:15.003Z host app 42 ID47 [ex@32473 a="x\\"y\\]z\\\\w"] \ufeffhello',
            {"program": "app", "pid": "42", "msgid": "ID47", "structured_data": {"ex@32473": {"a": 'x"y]z\\w'}}},
        ),
        ("<34>1 - - - - - -", {"version": 1, "timestamp": None, "hostname": None, "text": ""}),
    ],
)
def test_header_variants(line, fields):
    assert_parsed(line, fields)


def assert_parsed(line: str, fields: dict) -> None:
    """`line` parses without error into a message with these field values."""
    msg = parse_syslog(line.encode(), received_at=RECEIVED)
    for name, value in fields.items():
        assert getattr(msg, name) == value, name
    assert msg.parse_error is None


def test_bom_is_stripped_from_rfc5424_text():
    msg = parse_syslog("<165>1 2003-10-11T22:14:15Z h a - - - \ufeffhello".encode(), received_at=RECEIVED)
    assert msg.text == "hello"


def test_rfc5424s_own_examples_write_the_bom_as_letters():
    """RFC 5424 section 6.5 prints the byte order mark as "BOM"; test suites copy it verbatim."""
    su = parse_syslog(
        b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - "
        b"BOM'su root' failed for lonvick on /dev/pts/8"
    )
    assert su.text == "'su root' failed for lonvick on /dev/pts/8"
    event = parse_syslog(b"<165>1 2003-10-11T22:14:15.003Z h evntslog - ID47 - BOMAn application event log entry")
    assert event.text == "An application event log entry"
    # A word that merely begins with the letters stays whole, and RFC 3164 text is not touched.
    assert parse_syslog(b"<165>1 2003-10-11T22:14:15Z h a - - - BOMbay").text == "BOMbay"
    assert parse_syslog(b"<165>1 2003-10-11T22:14:15Z h a - - - BOM").text == "BOM"
    assert parse_syslog(b"<13>Oct 11 22:14:15 h app: BOM'x'").text == "BOM'x'"


def test_trailing_blanks_are_not_part_of_the_text():
    msg = parse_syslog(b"<38>Mar  3 10:00:00 h sshd[1]: Accepted password for alice from 192.0.2.4 port 2 ssh2 \t \r\n")
    assert msg.text == "Accepted password for alice from 192.0.2.4 port 2 ssh2"


def test_missing_year_rolls_back_over_new_year():
    january = datetime(2027, 1, 1, 0, 5, tzinfo=UTC)
    msg = parse_syslog(b"<13>Dec 31 23:59:58 host prog: late", received_at=january)
    assert msg.timestamp == datetime(2026, 12, 31, 23, 59, 58, tzinfo=UTC)
    msg = parse_syslog(b"<13>Jan  1 00:04:00 host prog: early", received_at=january)
    assert msg.timestamp.year == 2027


def test_a_device_clock_ahead_over_new_year_lands_in_the_new_year():
    december = datetime(2026, 12, 31, 23, 58, tzinfo=UTC)
    msg = parse_syslog(b"<13>Jan  1 00:01:00 host prog: ahead", received_at=december)
    assert msg.timestamp == datetime(2027, 1, 1, 0, 1, tzinfo=UTC)


@given(
    received=st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)),
    month=st.integers(1, 12),
    day=st.integers(1, 31),
)
def test_the_yearless_date_is_the_latest_year_not_a_week_ahead(received: datetime, month: int, day: int) -> None:
    mon = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")[month - 1]
    msg = parse_syslog(f"<13>{mon} {day:2d} 12:00:00 host prog: x".encode(), received_at=received)
    expected = None
    for year in range(received.year + 1, received.year - 8, -1):  # the rule, by brute force
        try:
            when = datetime(year, month, day, 12, tzinfo=UTC)
        except ValueError:
            continue
        if when - received <= timedelta(days=7):
            expected = when
            break
    assert msg.timestamp == expected


def _brute_force_year(
    received: datetime, month: int, day: int, hour: int, minute: int, zone: tzinfo = UTC, micro: int = 0
) -> datetime | None:
    for year in range(received.year + 1, received.year - 8, -1):
        try:
            when = datetime(year, month, day, hour, minute, 0, micro, zone)
        except ValueError:
            continue
        if when - received <= timedelta(days=7):
            return when
    return None


@given(
    received=st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)),
    ahead=st.one_of(
        st.timedeltas(min_value=timedelta(days=-400), max_value=timedelta(days=10)),
        # Near where the decision flips: a week ahead, and a year (or leap year) before that.
        *(
            st.timedeltas(min_value=edge - timedelta(hours=2), max_value=edge + timedelta(hours=2))
            for edge in (timedelta(days=7), timedelta(days=7 - 365), timedelta(days=7 - 366))
        ),
    ),
    later=st.timedeltas(min_value=timedelta(hours=-1), max_value=timedelta(hours=1)),
)
def test_remembered_yearless_dates_decide_as_the_rule_for_every_receive_time(
    received: datetime, ahead: timedelta, later: timedelta
) -> None:
    """The fast paths remember a stamp's year per receive hour: a second line with the same
    stamp, received up to an hour apart (in the same hour or not), still gets the year the rule
    gives. Linux stamps, and Cisco's with milliseconds and a zone name (IST is +05:30, so its
    hours do not line up with the receive hours) or none (the source's zone, here +03:00); the
    same clock text in each form, so one form's remembered answer must never serve another."""
    source_zone = timezone(timedelta(hours=3))
    shapes = [("linux", UTC, ""), ("UTC", UTC, ".250"), ("IST", timezone(timedelta(hours=5, minutes=30)), ".250"),
              ("", source_zone, ".250"), ("", source_zone, ".750")]  # fmt: skip
    stamp = (received + ahead).replace(second=0, microsecond=0)
    text = f"{stamp:%b} {stamp.day:2d} {stamp:%H:%M}:00"
    for when in (received, received + later):
        for name, zone, frac in shapes:
            if name == "linux":
                line, tz = f"{text} host prog: x".encode(), UTC
            else:
                suffix = f" {name}" if name else ""
                line, tz = f"<189>12: sw1: *{text}{frac}{suffix}: %SYS-5-CONFIG_I: x".encode(), source_zone
            micro = int(frac[1:]) * 1000 if frac else 0
            expected = _brute_force_year(when, stamp.month, stamp.day, stamp.hour, stamp.minute, zone, micro)
            assert parse_syslog(line, received_at=when, tz=tz).timestamp == expected, (line, when)


def test_a_yearless_leap_day_lands_in_the_latest_leap_year():
    msg = parse_syslog(b"Feb 29 14:58:39 ix doas: failed auth for ddp", received_at=RECEIVED)
    assert msg.timestamp == datetime(2024, 2, 29, 14, 58, 39, tzinfo=UTC) and msg.program == "doas"


def test_source_time_zone_applies_only_without_a_zone_in_the_message():
    vienna = zone_for("Europe/Vienna")
    local = parse_syslog(b"<13>Jul  1 10:00:00 host prog: x", received_at=RECEIVED, tz=vienna)
    assert local.timestamp.utcoffset() == timedelta(hours=2)
    explicit = parse_syslog(b"<13>Jul  1 2026 10:00:00 UTC: %A-1-B: x", received_at=RECEIVED, tz=vienna)
    assert explicit.timestamp.utcoffset() == timedelta(0)


def test_invalid_utf8_is_replaced_not_fatal():
    msg = parse_syslog(b"<13>Jul  1 10:00:00 host prog: caf\xe9 \xff", received_at=RECEIVED)
    assert msg.text == "caf\ufffd \ufffd" and msg.program == "prog"


@pytest.mark.parametrize(
    "raw", [b"", b"\x00", b"<999>x", b"just words", b"<13>", b"<13>1 2026-13-45T99:99:99Z h a - - -"]
)
def test_garbage_is_a_message_with_a_parse_error_not_an_exception(raw):
    msg = parse_syslog(raw, received_at=RECEIVED)
    assert msg.parse_error is not None


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(raw):
    msg = parse_syslog(raw, source="192.0.2.1", received_at=RECEIVED)
    assert isinstance(msg.text, str)
    assert msg.timestamp is None or msg.timestamp.tzinfo is not None


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=200), st.sampled_from(["<13>", "<189>1 ", "<34>1 2026-01-01T00:00:00Z ", "<190>12: ", ""]))
def test_arbitrary_text_after_plausible_headers_never_raises(text, prefix):
    msg = parse_syslog((prefix + text).encode("utf-8", "surrogatepass"), received_at=RECEIVED)
    assert isinstance(msg.text, str)


PRI = re.compile(r"^<\d{1,3}>")


def test_the_fast_path_agrees_with_the_general_scanner_on_every_corpus_line():
    from parsers.syslog import Message, _parse_3164

    lines = [
        line.decode("utf-8", "replace")
        for path in sorted(CORPUS.rglob("*.log"))
        for line in path.read_bytes().splitlines()
    ]
    linux_hits = cisco_hits = 0
    for line in lines:
        fast, slow = Message(received_at=RECEIVED), Message(received_at=RECEIVED)
        header = PRI.sub("", line, count=1)  # _parse_3164 sees what follows the PRI, as in parse_syslog
        _parse_3164(header, fast, UTC)
        _parse_3164(header, slow, UTC, fast=False)
        assert fast == slow, line
        linux_hits += fast.program is not None and fast.hostname is not None
        cisco_hits += fast.sequence is not None and fast.mnemonic is not None and fast.timestamp is not None
    # Both fast paths are actually taken on the corpus.
    assert linux_hits > 1000 and cisco_hits > 40


_OFFSETS = {"Z": UTC, "+02:00": timezone(timedelta(hours=2)), "-0530": timezone(-timedelta(hours=5, minutes=30)),
            "+14:00": timezone(timedelta(hours=14))}  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    stamp=st.tuples(st.integers(1990, 2060), st.integers(1, 12), st.integers(1, 31), st.integers(0, 23),
                    st.integers(0, 59), st.integers(0, 60)),
    frac=st.one_of(st.just(""), st.text(alphabet="0123456789", min_size=1, max_size=9)),
    rfc5424=st.booleans(),
)  # fmt: skip
def test_an_rfc3339_stamp_is_the_time_it_writes_every_time_it_is_read(stamp, frac, rfc5424):
    y, mo, d, h, mi, s = stamp
    micro = int(frac[:6].ljust(6, "0")) if frac else 0
    # The same stamp text with each zone suffix and under each default zone, twice: a time
    # remembered for one of them must never be given for another.
    for _ in range(2):
        for default in ("UTC", "Europe/Vienna", "+05:45"):
            tz = zone_for(default)
            for zone in ("", *_OFFSETS):
                text = f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{'.' + frac if frac else ''}{zone}"
                raw = f"<13>1 {text} host prog 1 - - x" if rfc5424 else f"<13>{text} host prog[1]: x"
                try:
                    expected = datetime(y, mo, d, h, mi, s, micro, _OFFSETS.get(zone, tz))
                except ValueError:
                    expected = None
                msg = parse_syslog(raw.encode(), received_at=RECEIVED, tz=tz)
                assert msg.timestamp == expected
                assert expected is None or msg.timestamp.utcoffset() == expected.utcoffset()


_CISCO_HEADER = st.tuples(
    st.integers(0, 9999999).map(str),
    st.sampled_from(["", "edge1: ", "sw-01.example.net: ", "10.0.0.1: ", "123abc: "]),
    st.sampled_from(["", "*", "."]),
    st.sampled_from(["Mar  4", "Feb 29", "Dec 31", "Jan  1 2026", "Feb 30"]),
    st.sampled_from(["10:00:00", "23:59:59.123", "0:01:02.5"]),
    st.sampled_from(["", " UTC", " CET", " cest", " XYZ"]),
).map(lambda p: f"{p[0]}: {p[1]}{p[2]}{p[3]} {p[4]}{p[5]}: ")
# What follows a Cisco header: device output with and without a mnemonic, more header items,
# tags, and arbitrary text built from the characters the scanner decides on.
_CISCO_BODY = st.one_of(
    st.sampled_from([
        "%LINK-3-UPDOWN: Interface Gi0/1, changed state to up",
        "IKEv2:(SESSION ID = 31,SA ID = 1):Verification of peer's authentication data PASSED",
        "IKEv2-ERROR:(SESSION ID = 32,SA ID = 2):: Auth exchange failed",
        "AAA/ATTR(0000002A): add attr: username 12 vpnuser",
        "snmpd[1002]: %SNMP-3-AUTHFAIL: x", "INFO: x", "sw02: 12: Mar  4 10:00:00: %SYS-5-X: y",
        "2y10w: %SEC_LOGIN-5-LOGIN_SUCCESS: ok", "00:00:46: %LINK-3-UPDOWN: x", "*Task_0: x",
        "GigabitEthernet0/1: x", ": 2024 Aug 27 10:00:00: x", "Mar  4 10:00:01: again", "",
        "relay sshd[12]: x", "77: x", "11: 12: 13: 14: 15: 16: 17: x",
        "%A-1-B", "%A-1-B:x", "%A-1-B x", "%A-1-Bx-y", "%AB-1-: x", "%X-9-Y: x", "%%LINK-3-UPDOWN: x",
        "%A-1-B%C-2-D: x", "%ab c %LINK-3-UPDOWN: x",
    ]),
    # Mnemonics that end just before, at and after the 200th character of the text.
    st.builds(lambda n, end: "%" + "A" * n + "-5-B" + end, st.integers(190, 200),
              st.sampled_from(["", ":", " x", "C: x"])),
    st.text(alphabet=st.sampled_from("aZ09:%[]()*. -/\t_"), max_size=40),
)  # fmt: skip


@settings(max_examples=1500, deadline=None)
@given(_CISCO_HEADER, _CISCO_BODY)
def test_the_cisco_fast_path_agrees_with_the_general_scanner_whatever_follows_the_header(header, body):
    from parsers.syslog import Message, _parse_3164

    fast, slow = Message(received_at=RECEIVED), Message(received_at=RECEIVED)
    _parse_3164(header + body, fast, UTC)
    _parse_3164(header + body, slow, UTC, fast=False)
    assert fast == slow


def test_a_short_hostname_is_not_taken_for_a_time_zone():
    from parsers.syslog import Message, _parse_3164

    msg = Message(received_at=RECEIVED)
    _parse_3164("Oct 14 16:49:59 dlig userdel[1619336]: delete user 'jce'", msg, UTC, fast=False)
    assert (msg.hostname, msg.program, msg.timestamp.utcoffset()) == ("dlig", "userdel", timedelta(0))


def test_an_unknown_zone_before_a_colon_falls_back_to_the_source_zone():
    plus3 = timezone(timedelta(hours=3))
    line = b"<190>2361044: sw01: Jan 16 2022 22:11:43 AUSEST: %FOO-6-BAR: Test invalid tz"
    msg = parse_syslog(line, received_at=RECEIVED, tz=plus3)
    assert msg.hostname == "sw01" and msg.mnemonic == "FOO-6-BAR"
    assert msg.timestamp == datetime(2022, 1, 16, 22, 11, 43, tzinfo=plus3)


def test_a_ctime_stamp_gives_its_year_and_no_weekday_host() -> None:
    # vsftpd's own log file (vsftpd.conf(5) `xferlog_std_format=NO`), as in OSSEC's log samples.
    line = b'Mon Aug 21 14:33:24 2006 [pid 12345] [bob] FAIL LOGIN: Client "10.0.0.1"'
    msg = parse_syslog(line, received_at=RECEIVED, tz=UTC)
    assert msg.timestamp == datetime(2006, 8, 21, 14, 33, 24, tzinfo=UTC)
    assert msg.year_given and msg.hostname is None
    assert msg.text.startswith("[pid 12345] [bob] FAIL LOGIN")


@pytest.mark.parametrize(
    ("line", "host"),
    [
        # `clock timezone TZ` / `clock timezone NewYork -5`: the name a device prints after its
        # clock's fraction, right before the mnemonic, is a zone, not a host.
        ("Jan 10 20:57:20.720 TZ: %LINEPROTO-5-UPDOWN: Line protocol on Interface Gi0/1, changed state to up", None),
        ("Jan 10 22:23:27.921 NewYork: %SEC_LOGIN-5-LOGIN_SUCCESS: Login Success [user: bob] [Source: 10.1.1.1]", None),
        # A relay's stamp has no fraction: the name before the mnemonic is the host's.
        ("Jan 10 02:03:03 fw01: %ASA-6-113004: AAA user authentication Successful : user = bob", "fw01"),
        ("Jan 10 02:03:03 firewall-dc1: %ASA-6-113004: AAA user authentication Successful : user = al", "firewall-dc1"),
    ],
)
def test_a_clock_timezone_name_after_a_fraction_is_no_host(line: str, host: str | None) -> None:
    msg = parse_syslog(line.encode(), received_at=RECEIVED, tz=UTC)
    assert msg.hostname == host
    assert msg.mnemonic is not None and msg.timestamp is not None
    assert (msg.timestamp.hour, msg.timestamp.minute) == (int(line[7:9]), int(line[10:12]))


# Header shapes real senders and relays put on the wire (issue: real senders, end to end).
# Sources: rsyslog's tests/rfc5424parser-sp_at_msg_start.sh (a space kept at the start of MSG,
# as rsyslog forwards what it received as RFC 3164); util-linux logger(1) (`--rfc5424 -t TAG`
# puts the tag in APP-NAME, `--rfc3164 -t TAG`); FreeBSD syslogd(8) `-v`/`-vv` (priority as
# `<4.3>`/`<auth.info>`); sudoers(5) `logfile`/`log_year`/`log_host`; FreeBSD login.c badlogin().
SENDER_SHAPES = [
    (
        "<37>1 2026-12-01T19:29:54+00:00 vm su 4101 - -  (to root) alice on pts/0",
        {"hostname": "vm", "program": "su", "pid": "4101", "text": "(to root) alice on pts/0", "version": 1},
    ),
    (
        '<13>1 2019-05-15T11:21:57+03:00 domain.tld tag - - [abc@123 a="b"]  sd-sp',
        {"program": "tag", "text": "sd-sp", "structured_data": {"abc@123": {"a": "b"}}},
    ),
    (
        '<13>1 2026-12-01T19:33:13.123456+00:00 vm %SYS-5-CONFIG_I - - [timeQuality tzKnown="1"] Configured',
        {"hostname": "vm", "program": None, "mnemonic": "SYS-5-CONFIG_I", "text": "%SYS-5-CONFIG_I: Configured"},
    ),
    (
        "<13>Dec  1 20:00:00 myhost IOS: %SYS-5-CONFIG_I: Configured from console by admin on vty0",
        {"hostname": "myhost", "program": "IOS", "mnemonic": "SYS-5-CONFIG_I"},
    ),
    (
        "<189>Mar  1 10:00:00 10.0.0.1 sw01: %SYS-5-CONFIG_I: Configured from console by admin on vty0",
        {"hostname": "sw01", "mnemonic": "SYS-5-CONFIG_I"},  # a relay naming the sender by address
    ),
    (
        "Mar  3 11:22:33 relay01 <189>412: 000388: *Mar  1 00:02:11.107: %SYS-5-RESTART: System restarted --",
        {
            "hostname": "relay01",
            "facility": 23,
            "severity": 5,
            "sequence": 388,
            "mnemonic": "SYS-5-RESTART",
            "timestamp": datetime(2026, 3, 1, 0, 2, 11, 107000, UTC),
        },
    ),
    (
        "<13>Mar  3 11:22:33 relay01 <189>412: sw07: *Mar  1 00:02:11.107: %SYS-5-CONFIG_I: Configured from console",
        {"hostname": "sw07", "facility": 23, "mnemonic": "SYS-5-CONFIG_I"},
    ),
    (
        "Jan 11 22:33:44 su: (to root) alice on pts/0",
        {"hostname": None, "program": "su", "text": "(to root) alice on pts/0"},
    ),
    (
        "Jan 11 22:33:44 web1 auth|info su[12]: (to root) alice on pts/0",
        {"hostname": "web1", "program": "su", "facility": 4, "severity": 6},
    ),
    (
        "Jan 11 22:33:44 web1 authpriv.notice su[12]: x",
        {"hostname": "web1", "program": "su", "facility": 10, "severity": 5},
    ),
    (
        "Apr  2 17:51:32 <4.6> pancake sshd[55628]: Invalid user r00t from 192.0.2.100",
        {"hostname": "pancake", "program": "sshd", "facility": 4, "severity": 6},
    ),
    (
        "Mar 19 23:48:18 <auth.info> pancake sshd[55517]: Invalid user r00t",
        {"hostname": "pancake", "program": "sshd", "facility": 4, "severity": 6},
    ),
    (
        "Aug 31 08:11:00 2017 : alice : HOST=web1 : TTY=pts/1 ; PWD=/ ; USER=root ; COMMAND=/bin/ls",
        {
            "hostname": "web1",
            "program": "sudo",
            "text": "alice : TTY=pts/1 ; PWD=/ ; USER=root ; COMMAND=/bin/ls",
            "timestamp": datetime(2017, 8, 31, 8, 11, tzinfo=UTC),
        },
    ),
    (
        "Aug 31 08:11:00 : bob : TTY=pts/2 ; PWD=/ ; USER=root ; COMMAND=/bin/id",
        {"hostname": None, "program": "sudo", "text": "bob : TTY=pts/2 ; PWD=/ ; USER=root ; COMMAND=/bin/id"},
    ),
    (  # sudo's mail to the admins: the host first (sudo-project/sudo#378)
        "jidanni5.jidanni.org : May 20 18:19:32 : jidanni : user NOT in sudoers ; TTY=pts/0 ; COMMAND=/usr/bin/w",
        {
            "hostname": "jidanni5.jidanni.org",
            "program": "sudo",
            "text": "jidanni : user NOT in sudoers ; TTY=pts/0 ; COMMAND=/usr/bin/w",
        },
    ),
    (  # a relay's "host : time TZ:" header is not sudo's: no " : user : " after the time
        "asa-hq.example.com : Sep 25 15:47:07 EDT: %ASA-auth-4-113004: AAA user authentication Successful",
        {"program": None, "mnemonic": "ASA-auth-4-113004"},
    ),
    ("su[2921936]: (to root) alice on pts/0", {"hostname": None, "program": "su", "pid": "2921936", "timestamp": None}),
    (
        "<38>Sep 22 10:11:56 Message forwarded from cdaix66: sshd[679960]: Accepted publickey for nagios from 1.9.1.1",
        {"hostname": "cdaix66", "program": "sshd", "pid": "679960"},
    ),  # AIX syslogd relaying (fail2ban's tests/files/logs/sshd)
    (
        "Mar  3 00:17:22 [sshd]: User root from 192.0.2.49 not allowed",
        {"program": "sshd", "text": "User root from 192.0.2.49 not allowed"},
    ),
    ("Jun 25 23:53:34 [sshd] User root from 1.2.3.4 not allowed", {"program": "sshd", "hostname": None}),
    (
        "login: 2 LOGIN FAILURES ON ttyv1, admin",
        {"hostname": None, "program": "login", "text": "2 LOGIN FAILURES ON ttyv1, admin"},
    ),
    (
        "<86>Feb 24 00:13:02 precise32 sudo:     tsg : user NOT in sudoers ; TTY=pts/1",
        {"program": "sudo", "text": "tsg : user NOT in sudoers ; TTY=pts/1"},
    ),
    # Unix syslogds in OSSEC's log samples (ossec/ossec-docs docs/log_samples/): Solaris's
    # message id before the text, AIX's facility list, ProFTPD's tag with no colon.
    (
        "Dec 12 00:10:55 sol1 sshd[21698]: [ID 800047 auth.info] User bob not allowed because account is locked",
        {"program": "sshd", "text": "User bob not allowed because account is locked", "facility": 4, "severity": 6},
    ),
    (
        "Aug  2 11:49:23 su: [ID 366847 auth.notice] 'su root' succeeded for root on /dev/console",
        {"hostname": None, "program": "su", "text": "'su root' succeeded for root on /dev/console", "severity": 5},
    ),
    (
        "Nov 21 15:16:22 sol3 audit: [ID 984917 audit.notice] login - telnet failed session 27 by root",
        {"program": "audit", "text": "login - telnet failed session 27 by root", "facility": None},
    ),
    (
        "Apr 24 10:40:38 aix03srv auth|security:info sshd[475526]: Login restricted for tesu: bad name",
        {"hostname": "aix03srv", "program": "sshd", "pid": "475526", "facility": 4, "severity": 6},
    ),
    (
        "Jun 09 07:30:58 ftp2 proftpd[11864] ftp2.example.com (c.example.net[192.0.2.66]): USER u: Login successful.",
        {
            "hostname": "ftp2",
            "program": "proftpd",
            "pid": "11864",
            "text": "ftp2.example.com (c.example.net[192.0.2.66]): USER u: Login successful.",
        },
    ),
]


@pytest.mark.parametrize(("line", "fields"), SENDER_SHAPES, ids=lambda v: v[:60] if isinstance(v, str) else "")
def test_real_sender_header_shapes(line, fields):
    assert_parsed(line, fields)


def test_an_impossible_rfc5424_date_keeps_the_rest_of_the_header():
    """rsyslog really sends 2026-02-29T...: host, app, procid and text stay; the record falls
    back to the receive time, and the header problem is counted as a parse error."""
    msg = parse_syslog(b"<37>1 2026-02-29T19:33:13+00:00 vm su 4101 - - (to root) alice on pts/0", received_at=RECEIVED)
    assert (msg.version, msg.hostname, msg.program, msg.pid) == (1, "vm", "su", "4101")
    assert msg.text == "(to root) alice on pts/0" and msg.timestamp is None
    assert msg.parse_error is not None and "receive time" in msg.parse_error


@pytest.mark.parametrize(
    ("line", "family", "location"),
    [
        ("<166>Jun 16 2016 09:00:25 fw01 : %ASA-5-111008: User 'admin' executed the 'write' command.", "asa", None),
        ("<166>:Jan 15 02:19:08 MSK: %ASA-sys-6-605005: Login permitted from serial to console", "asa", None),
        ("<166>%PIX-6-605004: Login denied from 192.0.2.10/13269 to outside:192.0.2.14/ssh", "asa", None),
        ("<134>1: fw01: Mar  1 10:00:00 UTC: %FTD-5-111008: User 'admin' executed the 'show run'", "ftd", None),
        ("<189>2026 Mar  1 10:00:00 nx01 %VSHD-5-VSHD_SYSLOG_CONFIG_I: Configured from vty by admin", "nxos", None),
        (
            "RP/0/RSP0/CPU0:Mar  1 00:00:00.000 UTC: config[65741]: %MGBL-CONFIG-6-DB_COMMIT : Configuration committed",
            "iosxr",
            "RP/0/RSP0/CPU0",
        ),
        ("<189>1: *Mar  1 00:00:00.000: %SYS-5-CONFIG_I: Configured from console by admin", "ios", None),
        ("<189>1: *Mar  1 00:00:00.000: %DMI-5-CONFIG_I: Configured from NETCONF/RESTCONF by admin", "ios", None),
        ("Mar  1 00:00:00 web1 sshd[1]: Accepted password for a from 192.0.2.1 port 22 ssh2", None, None),
    ],
)
def test_the_cisco_family_is_read_from_the_tag_and_the_location(
    line: str, family: str | None, location: str | None
) -> None:
    message = parse_syslog(line.encode())
    assert (message.family, message.location) == (family, location)


@pytest.mark.parametrize(
    ("line", "time", "host", "mnemonic"),
    [
        # Cisco EMBLEM (`logging emblem`): an empty sequence field after the PRI.
        ("<166>:Jan 15 02:19:08 MSK: %ASA-sys-6-605005: Login permitted", "2026-01-15T02:19:08+03:00", None,
         "ASA-sys-6-605005"),
        ("<166>:Jan 13 15:44:18 MSK 192.0.2.40: %PIX-auth-6-113004: AAA user authentication Successful",
         "2026-01-13T15:44:18+03:00", "192.0.2.40", "PIX-auth-6-113004"),
        ("<166>:2018-06-27T12:17:46Z: %ASA-6-605005: Login permitted", "2018-06-27T12:17:46+00:00", None,
         "ASA-6-605005"),
        ("<166>:: %ASA-auth-6-113005: AAA user authentication Rejected", None, None, "ASA-auth-6-113005"),
        # FTD's stamp with a year and a Z right after the seconds.
        ("<166>May 01 2026 09:24:32Z  %FTD-6-113005: AAA user authentication Rejected", "2026-05-01T09:24:32+00:00",
         None, "FTD-6-113005"),
    ],
)  # fmt: skip
def test_asa_emblem_and_ftd_headers(line: str, time: str | None, host: str | None, mnemonic: str) -> None:
    message = parse_syslog(line.encode(), received_at=datetime(2026, 6, 15, 12, tzinfo=UTC))
    assert (message.timestamp.isoformat() if message.timestamp else None) == time
    assert (message.hostname, message.mnemonic, message.parse_error) == (host, mnemonic, None)
    assert message.text.startswith("%" + mnemonic)


@pytest.mark.parametrize(
    ("line", "time", "location", "program"),
    [
        # A relay's header, then IOS XR's own with a zone given as a bare hour offset.
        ("May 22 21:00:31 192.0.2.11 52536: RP/0/RP0/CPU0:May 22 21:00:56.247 +06: SSHD_[68879]: "
         "%SECURITY-SSHD-6-INFO_SUCCESS : Successfully authenticated user 'rancid'",
         "2026-05-22T21:00:56.247000+06:00", "RP/0/RP0/CPU0", "SSHD_"),
        # The admin plane's rack/slot/VM location.
        ("0/RP0/ADMIN0:Jun  6 10:02:23.893 UTC: aaad[2236]: %MGBL-AAAD-7-DEBUG : Not allowing local authentication.",
         "2026-06-06T10:02:23.893000+00:00", "0/RP0/ADMIN0", "aaad"),
    ],
)  # fmt: skip
def test_ios_xr_zone_offsets_and_admin_plane_locations(line: str, time: str, location: str, program: str) -> None:
    message = parse_syslog(line.encode(), received_at=datetime(2026, 6, 15, 12, tzinfo=UTC))
    assert message.timestamp is not None and message.timestamp.isoformat() == time
    assert (message.location, message.program, message.family) == (location, program, "iosxr")


# parse_syslog(year=...): the importer's year for yearless stamps (a file's lines).
@pytest.mark.parametrize(
    "line",
    [
        b"Dec 31 23:59:59 host prog: x",
        b"Jan  1 00:00:01 host prog: x",
        b"<189>12: sw1: *Jan  1 00:00:01.5 UTC: %A-1-B: x",
    ],
)
def test_a_given_year_is_taken_exactly_for_a_yearless_stamp(line):
    for received in (datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC), datetime(2025, 12, 31, 23, 0, tzinfo=UTC), RECEIVED):
        msg = parse_syslog(line, received_at=received, year=2025)
        assert msg.timestamp is not None and msg.timestamp.year == 2025 and not msg.year_given
    # and the receive-time rule is back without it (the cache keyed apart)
    assert parse_syslog(b"Jan  1 00:00:01 host prog: x", received_at=RECEIVED).timestamp.year == 2026


def test_feb_29_of_a_common_year_is_no_timestamp_as_feb_30_is():
    leap = parse_syslog(b"Feb 29 14:58:39 ix doas: failed", received_at=RECEIVED, year=2024)
    assert leap.timestamp == datetime(2024, 2, 29, 14, 58, 39, tzinfo=UTC)
    common = parse_syslog(b"Feb 29 14:58:39 ix doas: failed", received_at=RECEIVED, year=2025)
    impossible = parse_syslog(b"Feb 30 14:58:39 ix doas: failed", received_at=RECEIVED, year=2024)
    today = parse_syslog(b"Feb 30 14:58:39 ix doas: failed", received_at=RECEIVED)
    for msg in (common, impossible):
        assert (msg.timestamp, msg.hostname, msg.program) == (today.timestamp, today.hostname, today.program)
        assert msg.text.replace("Feb 29", "Feb 30") == today.text == "Feb 30 14:58:39 ix doas: failed"
        assert not msg.year_given


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"2026-03-01T10:00:00Z host prog: x", datetime(2026, 3, 1, 10, tzinfo=UTC)),
        (b"<13>1 2026-03-01T10:00:00Z host prog - - - x", datetime(2026, 3, 1, 10, tzinfo=UTC)),
        (b"Mar 01 2026 10:00:00 host prog: x", datetime(2026, 3, 1, 10, tzinfo=UTC)),
        (b"<189>12: sw1: *Mar 01 2026 10:00:00 UTC: %A-1-B: x", datetime(2026, 3, 1, 10, tzinfo=UTC)),
        (b"<189>12: relay Mar  1 09:00:00 sw1: 2026-03-01T10:00:00Z x", datetime(2026, 3, 1, 10, tzinfo=UTC)),
    ],
)
def test_a_stamp_with_its_own_year_ignores_the_given_year_and_says_so(line, expected):
    for year in (None, 2019):
        msg = parse_syslog(line, received_at=RECEIVED, year=year)
        assert msg.timestamp == expected and msg.year_given, (line, year)


def test_year_given_is_false_for_yearless_and_missing_stamps():
    assert not parse_syslog(b"Mar  1 10:00:00 host prog: x", received_at=RECEIVED).year_given
    assert not parse_syslog(b"host prog: x", received_at=RECEIVED).year_given
    # a relay's ISO stamp, then the device's yearless one (which wins)
    relayed = parse_syslog(b"2026-03-01T10:00:00Z relay Mar  1 09:00:00 sw1 prog: x", received_at=RECEIVED, year=2020)
    assert relayed.timestamp == datetime(2020, 3, 1, 9, tzinfo=UTC) and not relayed.year_given


@pytest.mark.parametrize(
    ("line", "when", "host"),
    [
        # fail2ban's tests/files/logs/selinux-ssh: auditd's own log file.
        (
            "type=USER_LOGIN msg=audit(1373330716.415:4063): user pid=11998 uid=0 auid=4294967295 "
            'msg=\'op=login acct="root" exe="/usr/sbin/sshd" hostname=? addr=192.0.2.187 terminal=ssh res=failed\'',
            datetime(2013, 7, 9, 0, 45, 16, 415000, tzinfo=UTC),
            None,
        ),
        # name_format=hostname puts node= first.
        (
            "node=web1 type=USER_CMD msg=audit(1597270864.489:242): pid=2867 uid=1001 auid=1002 ses=12 "
            "msg='cwd=\"/dev/shm\" cmd=6C73 terminal=pts/0 res=success'",
            datetime(2020, 8, 12, 22, 21, 4, 489000, tzinfo=UTC),
            "web1",
        ),
    ],
)
def test_an_audit_log_line_takes_its_time_from_the_record(line: str, when: datetime, host: str | None) -> None:
    msg = parse_syslog(line.encode(), received_at=RECEIVED, tz=zone_for("Europe/Berlin"))
    assert (msg.timestamp, msg.hostname, msg.program, msg.parse_error) == (when, host, "audit", None)
    assert msg.text == line and msg.year_given


def test_a_line_that_only_mentions_audit_is_not_read_as_one() -> None:
    msg = parse_syslog(b"type=USER_LOGIN without a record", received_at=RECEIVED)
    assert msg.timestamp is None and msg.program != "audit"


def test_an_rfc5424_message_written_without_its_pri_and_version_reads_as_rfc5424() -> None:
    # SSHGuard's parser tests: a relay's file of RFC 5424 fields without "<PRI>1 ".
    msg = parse_syslog(
        b"2022-02-24T21:00:42.021457+00:00 evse dropbear 6052 - - Bad password attempt for 'root' from 192.0.2.4:50532",
        received_at=RECEIVED,
    )
    assert (msg.hostname, msg.program, msg.pid, msg.msgid) == ("evse", "dropbear", "6052", None)
    assert msg.text == "Bad password attempt for 'root' from 192.0.2.4:50532"
    assert msg.timestamp == datetime(2022, 2, 24, 21, 0, 42, 21457, tzinfo=UTC)
    with_sd = parse_syslog(b'2022-02-24T21:00:42Z h1 sshd 7 ID47 [ex@32473 iut="3"] hello', received_at=RECEIVED)
    assert (with_sd.program, with_sd.msgid, with_sd.text) == ("sshd", "ID47", "hello")
    assert with_sd.structured_data == {"ex@32473": {"iut": "3"}}
    # The usual ISO file line is not taken for one.
    plain = parse_syslog(b"2022-02-24T21:00:42Z h1 sshd[7]: - - hello", received_at=RECEIVED)
    assert (plain.program, plain.pid, plain.text) == ("sshd", "7", "- - hello")


@pytest.mark.parametrize(
    ("line", "text", "facility", "severity"),
    [
        # sshd's stderr kept in a file (SSHGuard's parser tests): "error:" is sshd's own prefix.
        ("error: maximum authentication attempts exceeded for root from 192.0.2.1 port 4919 [preauth]",
         "error: maximum authentication attempts exceeded for root from 192.0.2.1 port 4919 [preauth]", None, None),
        # Dovecot's own log file: a time, then the level.
        ("May 31 09:43:57 Info: pop3-login: Aborted login (1 authentication attempts): user=<u>",
         "Info: pop3-login: Aborted login (1 authentication attempts): user=<u>", None, None),
        # socklog: the priority as words, which is not text.
        ("2015-05-27T04:31:27.46667 auth.info: Invalid user admin from 192.0.2.1",
         "Invalid user admin from 192.0.2.1", 4, 6),
    ],
)  # fmt: skip
def test_a_level_where_a_program_tag_would_be_is_not_a_program(line, text, facility, severity):
    msg = parse_syslog(line.encode(), received_at=RECEIVED)
    assert (msg.program, msg.hostname, msg.text) == (None, None, text)
    assert (msg.facility, msg.severity) == (facility, severity)


def test_socklogs_priority_words_before_a_program_tag_are_the_priority():
    msg = parse_syslog(
        b"2015-05-27T04:31:28.10040 auth.info: sshd[30993]:  Invalid user a from 192.0.2.4", received_at=RECEIVED
    )
    assert (msg.program, msg.pid, msg.facility, msg.severity) == ("sshd", "30993", 4, 6)
    assert msg.text == "Invalid user a from 192.0.2.4"


def test_a_level_word_after_a_hostname_is_still_that_hosts_program():
    msg = parse_syslog(b"Mar  1 10:00:00 host1 error: disk full", received_at=RECEIVED)
    assert (msg.hostname, msg.program, msg.text) == ("host1", "error", "disk full")


@pytest.mark.parametrize("level", ["info", "error", "warning", "verbose"])
def test_a_level_word_heading_a_line_with_no_time_is_no_host(level: str) -> None:
    # ESXi hostd's own log lines, as SEKOIA-IO intake-formats' VMware ESXi tests keep them.
    line = f"{level} hostd[2099656] [Originator@6876 sub=Vimsvc.ha-eventmgr] Event 974676 : SSH session"
    msg = parse_syslog(line.encode(), received_at=RECEIVED)
    assert (msg.hostname, msg.program, msg.pid) == (None, "hostd", "2099656")
    assert msg.text == "[Originator@6876 sub=Vimsvc.ha-eventmgr] Event 974676 : SSH session"


def test_a_tai64n_label_is_the_lines_time():
    # daemontools/runit's multilog label (SSHGuard's parser tests): 2**62 + TAI seconds, nanoseconds.
    msg = parse_syslog(b"@4000000046388fdf39cef14c Invalid user bruteforce from 192.0.2.52", received_at=RECEIVED)
    seconds, nanos = 0x46388FDF - 10, 0x39CEF14C
    assert msg.timestamp == datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=nanos // 1000)
    assert msg.text == "Invalid user bruteforce from 192.0.2.52"


def test_after_a_tai64n_label_the_service_output_has_no_program_tag():
    # multilog keeps a service's own output: "Disconnecting:" is sshd's text, not a program.
    msg = parse_syslog(b"@4000000046388fec08a8f11c Disconnecting: Too many authentication failures for x")
    assert (msg.program, msg.hostname, msg.text) == (
        None,
        None,
        "Disconnecting: Too many authentication failures for x",
    )


def test_apple_system_logs_text_form_gives_time_host_program_priority_and_text():
    # OSSEC's macOS samples (docs/log_samples/osx/asl.rst).
    line = (
        b"[Time 2006.12.28 15:53:55 UTC] [Facility auth] [Sender sshd] [PID 483] [Message error: PAM: Authentication"
        b" failure for username from 192.0.2.2] [Level 3] [UID -2] [GID -2] [Host Hostname]"
    )
    msg = parse_syslog(line, received_at=RECEIVED)
    assert msg.timestamp == datetime(2006, 12, 28, 15, 53, 55, tzinfo=UTC)
    assert (msg.hostname, msg.program, msg.pid, msg.facility, msg.severity) == ("Hostname", "sshd", "483", 4, 3)
    assert msg.text == "error: PAM: Authentication failure for username from 192.0.2.2"


@pytest.mark.parametrize(
    ("line", "host"),
    [
        (b"- 1131566461 2005.11.09 dn228 Nov 9 12:01:01 dn228/dn228 crond(pam_unix)[2915]: "
         b"session closed for user root", "dn228"),
        (b"- 1131566461 2005.11.09 eadmin1 Nov 9 12:01:01 src@eadmin1 crond(pam_unix)[4307]: "
         b"session closed for user root", "eadmin1"),
    ],
)  # fmt: skip
def test_loghubs_supercomputer_prefix_gives_the_syslog_line_with_its_year(line, host):
    # logpai/loghub Thunderbird/Thunderbird_2k.log: alert tag, epoch, date and node before the line.
    msg = parse_syslog(line, received_at=RECEIVED)
    assert msg.timestamp == datetime(2005, 11, 9, 12, 1, 1, tzinfo=UTC)
    assert (msg.hostname, msg.program, msg.pid) == (
        host,
        "crond(pam_unix)",
        line.split(b"[")[1].split(b"]")[0].decode(),
    )
    assert msg.text == "session closed for user root"


def test_a_host_written_twice_is_not_the_program() -> None:
    msg = parse_syslog(b"<38>Apr 21 15:05:37 sol1 sol1: sshd[59244]: Accepted password for alice from 192.0.2.2")
    assert (msg.hostname, msg.program, msg.pid) == ("sol1", "sshd", "59244")
    assert msg.text.startswith("Accepted password for alice")
    bare = parse_syslog(b"<35>Apr 21 15:07:51 sol1 sol1: sshd: will attempt local password authentication")
    assert (bare.program, bare.pid, bare.text) == ("sshd", None, "will attempt local password authentication")
    # A program of another name keeps its text as it is.
    other = parse_syslog(b"<35>Apr 21 15:07:51 sol1 app: sshd: not a tag here")
    assert (other.program, other.text) == ("app", "sshd: not a tag here")


def test_nul_padding_before_a_line_is_not_part_of_it() -> None:
    # A log file a crash left NUL-padded: the next line starts after the padding.
    msg = parse_syslog(b"\x00\x00\x00Mar  1 10:00:00 web1 sshd[1]: Accepted password for alice from 192.0.2.2")
    assert (msg.hostname, msg.program, msg.parse_error) == ("web1", "sshd", None)


def test_a_loghub_supercomputer_line_quoted_without_its_alert_tag_keeps_its_header() -> None:
    line = b"1131566491 2005.11.09 eadmin1 Nov 9 12:01:31 src@eadmin1 crond(pam_unix)[1205]: session closed for user x"
    msg = parse_syslog(line)
    assert (msg.hostname, msg.program, msg.pid) == ("eadmin1", "crond(pam_unix)", "1205")
    assert msg.timestamp is not None and msg.timestamp.year == 2005


def test_an_rfc5424_message_without_its_structured_data_field_keeps_its_header() -> None:
    # The structured data left out, not even "-" (a parser's test fixture): MSG follows MSGID.
    msg = parse_syslog(b"<34>1 2003-10-11T22:14:15.003Z server1.com sshd - - pam_unix(sshd:auth): auth failure")
    assert (msg.version, msg.hostname, msg.program, msg.parse_error) == (1, "server1.com", "sshd", None)
    assert msg.text == "pam_unix(sshd:auth): auth failure"
    bad = parse_syslog(b"<34>1 2003-10-11T22:14:15.003Z server1.com sshd - - [unclosed text")
    assert bad.version == 0


def test_an_uptime_with_one_colon_is_not_a_host() -> None:
    # A device without "service timestamps ... datetime" stamps its uptime; "7:04" has one colon,
    # which no IPv6 address has.
    msg = parse_syslog(b"<189>71: 7:04: %SYS-5-CONFIG_I: Configured from console by admin on vty0 (10.0.0.1)")
    assert msg.hostname is None and msg.mnemonic == "SYS-5-CONFIG_I" and msg.text.startswith("%SYS-5-CONFIG_I")
    relayed = parse_syslog(b"<189>7: ntp1: 7:04: %SYS-6-LOGGINGHOST_STARTSTOP: Logging to host 10.0.0.1 started")
    assert (relayed.hostname, relayed.text[:1]) == ("ntp1", "%")
    # An IPv6 address is a host, its colons notwithstanding.
    v6 = parse_syslog(b"<13>Mar  1 10:00:00 fe80::1 sshd[1]: Accepted password for alice from 192.0.2.2")
    assert (v6.hostname, v6.program, v6.text) == ("fe80::1", "sshd", "Accepted password for alice from 192.0.2.2")
    iso = parse_syslog(b"<13>2026-03-01T10:00:00Z 2001:db8::5 sshd[1]: Accepted password for alice")
    assert (iso.hostname, iso.program) == ("2001:db8::5", "sshd")
