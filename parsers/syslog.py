"""Syslog message parsing: RFC 5424, and RFC 3164 as real devices send it.

`parse_syslog()` never raises on input: whatever the bytes, it returns a `Message`. When the
header cannot be understood the whole line becomes the text and `parse_error` says why, so the
caller can count it and rules can still look at it.

RFC 3164 variants handled (all seen in the wild, most from Cisco IOS):

- no PRI (lines read from files);
- Cisco sequence numbers (`123: `), before or after the hostname, and a second one from a relay;
- `*` (clock not synced) and `.` (synced by NTP but not authoritative) markers;
- milliseconds/microseconds, a year after the day (`Jan 16 2022 22:11:43`) or first
  (`2024 Aug 27 21:40:50`), ISO 8601 timestamps, a colon after the timestamp;
- time zone names and offsets after the time (`UTC`, `CEST`, `mdt`, `UTC+07:30`, `+0200`);
- a missing hostname, an IP address, a hostname ending in `:` (`sw01: `);
- a device uptime (`2y10w: `) instead of a timestamp, an IOS-XR card location
  (`RP/0/RP0/CPU0:`), a task name (`*Dot1x_Task_0: `);
- a missing year (taken from the receive time, with December messages received in January
  placed in the previous year; or the caller's, `parse_syslog(year=...)`, for a file's lines),
  and a per-source time zone for timestamps without one.

The Cisco `%FACILITY-SEVERITY-MNEMONIC:` tag is split out into `Message.mnemonic`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import TypeVar
from zoneinfo import ZoneInfo

_K = TypeVar("_K")
_V = TypeVar("_V")

FACILITIES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "security", "console", "solaris-cron",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
)  # fmt: skip
SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")


class _NoStructuredData(Mapping[str, dict[str, str]]):
    """The shared, immutable (and so hashable: a dataclass default) empty structured data."""

    def __getitem__(self, key: str) -> dict[str, str]:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "{}"


_NO_SD = _NoStructuredData()


@dataclass(slots=True)
class Message:
    """One parsed syslog message. Field names follow RFC 5424."""

    received_at: datetime
    source: str = ""
    facility: int | None = None
    severity: int | None = None
    timestamp: datetime | None = None
    hostname: str | None = None
    program: str | None = None
    pid: str | None = None
    msgid: str | None = None
    # Shared and read-only when empty (most messages): a dict per message costs on the hot path.
    structured_data: Mapping[str, dict[str, str]] = _NO_SD
    text: str = ""
    mnemonic: str | None = None
    sequence: int | None = None
    version: int = 0
    parse_error: str | None = None
    location: str | None = None  # IOS XR's node before the time: "RP/0/RSP0/CPU0"
    # The year a timestamp without one takes, as the caller gave it (`parse_syslog(year=...)`);
    # None: decided from the receive time.
    default_year: int | None = None
    # The timestamp carried its own year (RFC 3339, RFC 5424, "Mar 01 2026 ..."): `default_year`
    # did not apply to it. False without a timestamp.
    year_given: bool = False
    # Cisco's mark before the time: "*" (the clock is not authoritative: never set, or not in
    # sync; the 1993 "*Mar  1" of a device that booted without one) or "." (set, but NTP has
    # lost sync); None without one.
    clock_mark: str | None = None
    # A line with no timestamp whose first word was read as a host or a program tag without a
    # pid ("phemmer : HOST=...", "login: ...", "[czanik] OK LOGIN"): the line as it came (after
    # the PRI), which the rules engine reads again as a line with no header when no rule of
    # that "program" knows it (other tools' test data holds programs' messages bare).
    unparsed: str | None = None

    @property
    def host(self) -> str:
        """The best name for where the event happened: hostname, else the source address."""
        return self.hostname or self.source

    @property
    def family(self) -> str | None:
        """The Cisco platform family the message's tag says it comes from (`FAMILIES`), or None
        for a message without a Cisco mnemonic: `asa` (%ASA-, %PIX-, %FWSM-), `ftd` (%FTD-),
        `iosxr` (a node location before the time, or a FACILITY-SUBFACILITY-SEV-MNEMONIC tag),
        `nxos` (NX-OS's own facilities: VSHD, AUTHPRIV, DAEMON, ...), else `ios` (IOS, IOS-XE).
        Computed when asked: only rules with a `family` condition ask."""
        mnemonic = self.mnemonic
        if mnemonic is None:
            return None
        facility, _, rest = mnemonic.partition("-")
        family = _FIREWALL_FACILITIES.get(facility.upper())
        if family is not None:
            return family
        if self.location is not None or rest.count("-") >= 2:
            return "iosxr"
        return "nxos" if facility.upper() in _NXOS_FACILITIES else "ios"


FAMILIES = ("asa", "ftd", "ios", "iosxr", "nxos")
_FIREWALL_FACILITIES = {"ASA": "asa", "PIX": "asa", "FWSM": "asa", "FTD": "ftd", "NGIPS": "ftd"}
# Facilities only NX-OS uses (IOS has none of these names).
_NXOS_FACILITIES = frozenset(
    {
        "VSHD", "AUTHPRIV", "DAEMON", "SYSMGR", "ETHPORT", "ETH_PORT_CHANNEL", "VPC", "VDC_MGR", "ACLLOG", "VSH",
        "SECURITYD", "L2FM", "INTERFACE_VLAN", "LOG_LOCAL7",
    }
)  # fmt: skip


_MONTHS = {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun",
                                        "jul", "aug", "sep", "oct", "nov", "dec"), 1)}  # fmt: skip
_MONTHS.update({"mär": 3, "mrz": 3, "mai": 5, "okt": 10, "dez": 12})  # German, as some hosts log

# Abbreviations devices print after the time. Ambiguous ones (IST, CST) take the most common
# network-gear meaning: CST = US Central; IST = India.
_TZ_HOURS = {
    "utc": 0, "gmt": 0, "z": 0, "ut": 0, "wet": 0, "bst": 1, "west": 1, "cet": 1, "met": 1, "cest": 2,
    "mest": 2, "eet": 2, "eest": 3, "msk": 3, "ist": 5.5, "ict": 7, "wib": 7, "hkt": 8, "sgt": 8,
    "awst": 8, "cst": -6, "cdt": -5, "est": -5, "edt": -4, "ast": -4, "adt": -3, "mst": -7, "mdt": -6,
    "pst": -8, "pdt": -7, "akst": -9, "akdt": -8, "hst": -10, "jst": 9, "kst": 9, "acst": 9.5,
    "acdt": 10.5, "aest": 10, "aedt": 11, "nzst": 12, "nzdt": 13,
}  # fmt: skip

_PRI = re.compile(rb"<(\d{1,3})>")
_MON = r"(?P<mon>jan|feb|m[aä]r|mrz|apr|ma[yi]|jun|jul|aug|sep|o[ck]t|nov|de[cz])[a-z]*"
_TIME = r"(?P<h>\d{1,2}):(?P<mi>\d{2}):(?P<s>\d{2})(?:[.,](?P<frac>\d{1,9}))?"
# A zone after the time: a known abbreviation (with an optional offset), a bare offset, or any
# short word directly followed by ":" (Cisco's "hh:mm:ss TZ:"). A bare unknown word is a hostname.
# Outside a Cisco-style header an unknown word before ":" is a program tag ("hh:mm:ss su: ..."):
# the scanner reads such a stamp again with `_BSD_TS_NO_WORD_ZONE`.
_ZONE_NAMES = "|".join(sorted(_TZ_HOURS, key=len, reverse=True))


def _bsd_stamp(word_zone: bool) -> re.Pattern[str]:
    """The BSD timestamp, with (or without) any short word before ":" taken as its zone (and a
    `Z` right after the seconds, as FTD writes "May 01 2026 09:24:32Z")."""
    zone = (
        r"(?:(?:\s+|(?=Z[\s:]))(?P<tz>(?:" + _ZONE_NAMES + r")(?:\s?[+-]\d{1,2}(?::?\d{2})?)?(?=[\s:])"
        r"|[+-]\d{2}:?\d{2}(?=[\s:])|[+-]\d{1,2}(?=:\s)"
        # A longer name set by `clock timezone NewYork`: only after a device clock's fraction,
        # right before its mnemonic (a relay's "hh:mm:ss fw01: %ASA-..." names the host).
         + (r"|[a-z]{2,6}(?=:)|(?(frac)[a-z][a-z_+-]{6,15}(?=:\s*%)|(?!))" if word_zone else "") + r"))?"
    )
    # ctime(3)'s form, "Mon Aug 21 14:33:24 2006", as vsftpd's and other daemons' own log files
    # write it: a weekday first, the year after the time.
    return re.compile(
        r"(?P<mark>[*.])?(?:(?P<y1>\d{4})\s+)?(?:(?P<wd>mon|tue|wed|thu|fri|sat|sun)\s+)?"
        + _MON
        + r"\s+(?P<d>\d{1,2})(?:\s+(?P<y2>\d{4}))?\s+"
        + _TIME
        + r"(?(wd)(?:\s+(?P<y3>\d{4}))?)"
        + zone
        + r"(?P<colon>:)?(?=\s|$)",
        re.IGNORECASE,
    )


_BSD_TS = _bsd_stamp(word_zone=True)
_BSD_TS_NO_WORD_ZONE = _bsd_stamp(word_zone=False)
_ISO_TS = re.compile(
    r"(?P<mark>[*.])?(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})[T ](?P<h>\d{2}):(?P<mi>\d{2}):(?P<s>\d{2})"
    r"(?:[.,](?P<frac>\d{1,9}))?(?P<tz>Z|[+-]\d{2}:?\d{2})?(?P<colon>:)?(?=\s|$)",
    re.IGNORECASE,
)
# A device uptime instead of a clock ("service timestamps log uptime"): "2y10w:", "1d02h:", "00:00:46:".
# Uptime stamps ("1d02h:", "00:01:01:"); a bare "7:04:" only right before a Cisco mnemonic.
_UPTIME = re.compile(
    r"(?:\d+[ywdhms]){1,4}:?(?=\s)|\d{1,2}:\d{2}:\d{2}(?::\d{2}|\.\d{1,6})?:?(?=\s)|\d{1,2}:\d{2}:(?=\s+%)",
    re.IGNORECASE,
)
_SEQ = re.compile(r"(\d+):(?=\s)")
_WORD = re.compile(r"([^\s]+)")
_TAG = re.compile(r"(?P<prog>[^\s\[\]:]{1,128}?)(?:\[(?P<pid>[^\]\s]{0,32})\])?:(?=\s|$)")
# Cisco's FACILITY-SEVERITY-MNEMONIC (also what rule files may name).
MNEMONIC_PATTERN = r"[A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)*-[0-7A-Z]-[A-Za-z0-9_]+"
_MNEMONIC = re.compile(r"%(?P<mn>" + MNEMONIC_PATTERN + r")(?::|\s|$)")
# IOS-XR's card/CPU location before the time: "RP/0/RP0/CPU0:Dec 11 ..." or "CLC 6/0: Dec 11 ...".
# Its admin plane writes "0/RP0/ADMIN0:" (rack/slot/VM).
_LOCATION = re.compile(
    r"[A-Z]{2,4}/\d[A-Za-z0-9]*(?:/[A-Za-z0-9]+)*:|\d{1,2}/[A-Z]{1,4}\d*(?:/[A-Z]+\d+)+:|[A-Z]{2,4} \d+/\d+:(?=\s)"
)
_TASK = re.compile(r"\*[A-Za-z][\w]*:(?=\s)")  # a Cisco task name before the time: "*Dot1x_Task_0: "
# (An IPv6 address has two colons at least: "7:04" is an uptime, not a host.)
_HOSTNAME = re.compile(
    r"(?:[A-Za-z0-9_](?:[A-Za-z0-9_.\-]*[A-Za-z0-9_])?|\[?(?=[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:)[0-9A-Fa-f:.]+\]?)"
)
_OFFSET = re.compile(r"([+-])(\d{1,2}):?(\d{2})?$")
# RFC 5424 caps SD-IDs and names at 32 characters; senders exceed it, so accept up to 255.
# The most common shape, Linux's "Mmm dd hh:mm:ss host prog[pid]: text", read in one match; the
# general scanner below gives the same result, only slower (a test holds them equal).
_FAST_LINUX = re.compile(
    r"(?P<mon>[A-Za-z]{3}) {1,2}(?P<d>\d{1,2}) (?P<h>\d{2}):(?P<mi>\d{2}):(?P<s>\d{2}) "
    r"(?P<host>[A-Za-z0-9_](?:[A-Za-z0-9_.\-]*[A-Za-z0-9_])?) "
    r"(?P<prog>[A-Za-z][^\s\[\]:%/]{0,127})(?:\[(?P<pid>[^\]\s]{1,32})\])?:(?: |$)"
)
# The same after an RFC 3339 time (rsyslog's precise format), and with no time at all (lines
# from files that dropped it: "srv sshd[123]: ..."; only with a pid, so a plain word is not
# taken for a host).
_FAST_LINUX_ISO = re.compile(
    r"(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})[T ](?P<h>\d{2}):(?P<mi>\d{2}):(?P<s>\d{2})(?:\.(?P<frac>\d{1,9}))?"
    r"(?P<tz>Z|[+-]\d{2}:?\d{2}) {1,2}"
    r"(?P<host>[A-Za-z0-9_](?:[A-Za-z0-9_.\-]*[A-Za-z0-9_])?) "
    r"(?P<prog>[A-Za-z][^\s\[\]:%/]{0,127})(?:\[(?P<pid>[^\]\s]{1,32})\])?:(?: |$)"
)
_FAST_LINUX_NOTIME = re.compile(
    r"(?P<host>[A-Za-z](?:[A-Za-z0-9_.\-]*[A-Za-z0-9_])?) "
    r"(?P<prog>[a-z][^\s\[\]:%/]{0,127}?)\[(?P<pid>[^\]\s]{1,32})\]:(?: |$)"
)
# Cisco IOS's own shape, "seq: [host: ][*.]Mmm dd [yyyy] hh:mm:ss[.fff][ TZ]: %FAC-SEV-MNEMONIC: ...",
# the mnemonic read by a lookahead (the text starts at the "%"), all fields in one `groups()`.
_FAST_CISCO = re.compile(
    r"(?P<seq>\d+): (?:(?!\d+: )(?P<host>[A-Za-z0-9_](?:[A-Za-z0-9_.\-]*[A-Za-z0-9_])?): )?(?P<mark>[*.])?"
    r"(?P<stamp>(?P<mon>[A-Za-z]{3}) {1,2}(?P<d>\d{1,2})(?: (?P<y>\d{4}))? (?P<h>\d{1,2}):(?P<mi>\d{2}):(?P<s>\d{2}))"
    r"(?:\.(?P<frac>\d{1,6}))?(?: (?P<tz>[A-Za-z]{2,6}))?: "
    r"(?:(?=%(?P<mn>" + MNEMONIC_PATTERN + r")(?::|\s|$)))?"
)
# An RFC 3339 stamp's shape, whatever its values: a header with such a stamp is RFC 5424 even
# when the date is impossible.
_ISO_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$")
_APP_MNEMONIC = re.compile(r"%(" + MNEMONIC_PATTERN + r"):?")
# Header items some senders put between the standard ones.
_FACILITY_NUMBER = {name: i for i, name in enumerate(FACILITIES)} | {"security": 4, "authpriv": 10}
_SEVERITY_NUMBER = {name: i for i, name in enumerate(SEVERITIES)} | {
    "panic": 0, "error": 3, "warn": 4, "crit": 2, "emergency": 0, "critical": 2, "informational": 6,
}  # fmt: skip
_FAC_WORD = r"(?P<fac>" + "|".join(sorted((re.escape(f) for f in _FACILITY_NUMBER), key=len, reverse=True)) + r")"
_LEVEL_WORD = r"(?P<level>" + "|".join(sorted(_SEVERITY_NUMBER, key=len, reverse=True)) + r")"
# "<189>" inside the header (a relayed frame), FreeBSD syslogd -v "<4.3>", -vv "<auth.info>".
_INNER_PRI = re.compile(
    r"<(?:(?P<pri>\d{1,3})|(?P<fac>\d{1,2}|[a-z][a-z0-9-]*)\.(?P<level>\d|[a-z]+))>(?=\S|\s)", re.IGNORECASE
)
# AIX writes every facility of the selector: "auth|security:info".
_FACILITY_LEVEL = re.compile(
    _FAC_WORD + r"(?:\|" + _FAC_WORD.replace("?P<fac>", "?:") + r")?[|.:]" + _LEVEL_WORD + r"\s+(?=\S)", re.IGNORECASE
)
# A log level where a headerless line's program tag would be ("error: maximum authentication
# attempts exceeded ..." from sshd's stderr, Dovecot's own log file "May 31 09:43:57 Info:
# pop3-login: ...", socklog's "auth.info: Invalid user ..."): the text's first word, not a program.
_LEVEL_TAG = re.compile(
    r"(?:" + _FAC_WORD + r"[.|])?" + _LEVEL_WORD + r"|debug[1-3]|warning|notice|fatal|verbose", re.IGNORECASE
)
# loghub's supercomputer logs (Thunderbird, Liberty, Spirit): "- 1131566461 2005.11.09 dn228 Nov 9
# 12:01:01 dn228/dn228 crond(pam_unix)[2915]: ..." (an alert tag, epoch, date and node before the
# syslog line, whose host is written node/node or src@node): read as "Nov 9 2005 12:01:01 dn228 ...".
# Quotes of them often leave the alert tag out.
_LOGHUB_SC = re.compile(
    r"(?:(?:-|[A-Z][A-Z_]*) )?\d{9,10} (?P<y>\d{4})\.\d\d\.\d\d (?P<node>\S+) "
    r"(?P<md>[A-Z][a-z]{2} {1,2}\d{1,2}) (?P<t>\d\d:\d\d:\d\d) \S+[/@]\S+ "
)
_LOGHUB_SC_START = frozenset("-ABCDEFGHIJKLMNOPQRSTUVWXYZ123456789")
# Apple System Log's text form (syslog -F raw / asl.conf file output, as OSSEC's macOS samples
# keep it): "[Time 2006.12.28 15:54:03 UTC] [Facility auth] [Sender sshd] [PID 483] [Message
# TEXT] [Level 3] [UID -2] [GID -2] [Host NAME]".
_ASL = re.compile(
    r"\[Time (?P<y>\d{4})\.(?P<mo>\d\d)\.(?P<d>\d\d) (?P<h>\d\d):(?P<mi>\d\d):(?P<s>\d\d) (?P<zone>[^\]\s]*)\]"
    r" \[Facility (?P<fac>[^\]]*)\] \[Sender (?P<prog>[^\]]*)\] \[PID (?P<pid>-?\d+)\] \[Message (?P<text>.*?)\]"
    r"(?: \[Level (?P<level>\d)\])?(?: \[(?!Host )\w+ [^\]]*\])*(?: \[Host (?P<host>[^\]]*)\])?(?: \[\w+ [^\]]*\])*\s*$"
)
# daemontools/runit's TAI64N label before a line ("@4000000046388fdf39cef14c Invalid user ..."):
# 2**62 + TAI seconds, then nanoseconds, in hex.
_TAI64N = re.compile(r"@(4[0-9a-f]{15})([0-9a-f]{8})(?=\s)")
# Solaris syslogd's message id before the text: "sshd[20247]: [ID 800047 auth.notice] Failed ...".
_SOLARIS_MSGID = re.compile(r"\[ID \d+ (?P<fac>[a-z0-9]+)\.(?P<level>[a-z]+)\] ?", re.IGNORECASE)
# "prog[pid] text" with no colon (ProFTPD's and some daemons' own log files).
_BARE_PID_TAG = re.compile(r"(?P<prog>[A-Za-z][\w.\-/]{0,63})\[(?P<pid>\d{1,10})\]")
_ADDRESS = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}|\[?[0-9A-Fa-f]*:[0-9A-Fa-f:.]+\]?")
_BRACKET_TAG = re.compile(r"\[(?P<prog>[A-Za-z][\w.\-]{0,63})\]:?(?=\s)")
_FORWARDED = re.compile(r"Message forwarded from ([^\s:]+): ")
# sudo's log file: "Mmm dd hh:mm:ss[ yyyy] : user : [HOST=host : ]...", and its mail to the
# admins (sudoers `mail_badpass`, `mail_no_user`...), "host : Mmm dd hh:mm:ss : user : ...".
_SUDO_LOG = re.compile(
    r"(?:(?P<mhost>[A-Za-z0-9][\w.-]{0,252}) : )?"
    r"(?P<mon>[A-Z][a-z]{2}) {1,2}(?P<d>\d{1,2}) (?P<h>\d{2}):(?P<mi>\d{2}):(?P<s>\d{2})(?: (?P<y>\d{4}))?"
    r" : (?P<user>[^\s:]+) : "
    r"(?:HOST=(?P<host>[^\s:;]+) : )?"
)
# auditd's own log file (/var/log/audit/audit.log, `ausearch --raw`): "type=USER_LOGIN
# msg=audit(1373330716.415:4063): ...", with "node=HOST " first when auditd's name_format is set.
_AUDIT_LOG = re.compile(
    r"(?:node=(?P<node>\S+) )?type=[A-Z_0-9]+ msg=audit\((?P<epoch>\d{9,11})(?:\.(?P<ms>\d{1,6}))?:\d+\): "
)
# The fields of an RFC 5424 header after the timestamp, with nothing before it: stamp, host,
# app, procid (digits or -), msgid, then "-" or "[" (structured data). Tried only on lines the
# fast paths left (no "tag:" after the host).
_PRILESS_5424 = re.compile(r"\d{4}-\d\d-\d\dT\S+ \S+ [^\s\[\]:]+ (?:\d+|-) \S+ (?:- |\[[^\s=\]]+[ \]])")
_SD_ELEMENT = re.compile(r'\[([^\s=\]"]{1,255})((?:\s+[^\s=\]"]{1,255}="(?:[^"\\]|\\.)*")*)\s*\]')
_SD_PARAM = re.compile(r'([^\s=\]"]{1,255})="((?:[^"\\]|\\.)*)"')
_SD_UNESCAPE = re.compile(r'\\(["\\\]])')


def parse_syslog(
    raw: bytes,
    *,
    source: str = "",
    received_at: datetime | None = None,
    tz: tzinfo = UTC,
    year: int | None = None,
) -> Message:
    """Parse one syslog message; never raises. `tz` is used for timestamps without a zone.

    `year`: the year of a timestamp without one (a file's lines, whose year the importer infers),
    exactly, Feb 29 of a common year being no timestamp as Feb 30 is; without it, the latest
    year that puts the stamp at most a week after the receive time. Stamps with their own year
    keep it, and say so in `Message.year_given`."""
    received = received_at or datetime.now(UTC)
    msg = Message(received, source)  # (positional: keywords cost ~1,000 instructions more per message)
    if year is not None:
        msg.default_year = year
    data = raw.rstrip(b"\r\n\x00 \t")  # trailing blanks carry nothing, and would reach Who
    if data[:1] == b"\x00":
        data = data.lstrip(b"\x00")  # a log file's NUL padding after an unclean shutdown
    pos = 0
    m = _PRI.match(data)
    if m is not None:
        pri = int(m.group(1))
        if pri <= 191:
            msg.facility, msg.severity = divmod(pri, 8)
            pos = m.end()
        else:
            msg.parse_error = f"PRI {pri} is out of range"
    if data[pos : pos + 2] == b"1 ":
        _parse_5424(data[pos + 2 :], msg, tz)
        if msg.version == 1:
            return msg
        msg.parse_error = None  # not really 5424 after all: read it as 3164
    line = data[pos:].decode("utf-8", "replace")
    _parse_3164(line, msg, tz)
    if msg.program is not None and msg.program == msg.hostname and msg.pid is None:
        # "HOST HOST: sshd[1]: ...": a relay that wrote the host twice (a Solaris sample in a
        # Splunk users' repository); the program tag follows.
        tag = _TAG.match(msg.text)
        if tag is not None and not tag.group("prog").isdigit():
            msg.program, msg.pid = tag.group("prog"), tag.group("pid") or None
            msg.text = msg.text[tag.end() :].lstrip(" ")
            _split_mnemonic(msg, msg.text)
    if msg.timestamp is None and msg.pid is None and msg.mnemonic is None and (msg.hostname or msg.program):
        msg.unparsed = line.lstrip(" ")
    return msg


def _parse_5424(data: bytes, msg: Message, tz: tzinfo) -> None:
    parts = data.split(b" ", 5)
    if len(parts) < 6 and not (len(parts) == 5 and parts[-1]):
        msg.parse_error = "RFC 5424 header is incomplete"
        return
    stamp, host, app, procid, msgid = (p.decode("utf-8", "replace") for p in parts[:5])
    rest = parts[5] if len(parts) == 6 else b"-"
    bad_stamp = None
    if stamp != "-":
        m = _ISO_TS.fullmatch(stamp)
        when = _iso_local(m, tz) if m is not None and not m["mark"] else None
        if when is None:
            if _ISO_SHAPE.match(stamp) is None:
                msg.parse_error = f"bad RFC 5424 timestamp {stamp!r}"
                return
            # An impossible date in a well-formed header (rsyslog really sends 2026-02-29):
            # keep host, app, procid and text; the record takes the receive time.
            bad_stamp = f"bad RFC 5424 timestamp {stamp!r}: the receive time is used"
        else:
            msg.timestamp = when
            msg.year_given = True
    text = rest.decode("utf-8", "replace")
    if text.startswith("-"):
        text = text[2:] if text.startswith("- ") else text[1:]
    else:
        end = 0
        elements: dict[str, dict[str, str]] = {}
        while (element := _SD_ELEMENT.match(text, end)) is not None:
            params = {k: _SD_UNESCAPE.sub(r"\1", v) for k, v in _SD_PARAM.findall(element.group(2))}
            elements[element.group(1)] = params
            end = element.end()
        if end == 0 and text.startswith("["):
            msg.parse_error = "bad RFC 5424 structured data"
            return
        if end:
            msg.structured_data = elements
            text = text[end + 1 :] if text[end : end + 1] == " " else text[end:]
        # (end == 0: a sender that leaves the structured data out, not even "-", before MSG.)
    msg.version = 1
    msg.parse_error = bad_stamp
    msg.hostname = None if host == "-" else host
    msg.pid = None if procid == "-" else procid
    msg.msgid = None if msgid == "-" else msgid
    # A relay that received the message as RFC 3164 keeps the space that followed "tag:" in MSG
    # (rsyslog does): rules see the text as the program wrote it.
    text = text.removeprefix("\ufeff").lstrip(" ")
    if text.startswith("BOM") and text[3:4] not in ("", " ") and not text[3].islower():
        # RFC 5424's own examples (section 6.5) write the byte order mark as the letters "BOM"
        # ("BOM'su root' failed for lonvick ..."), and parsers' test suites copy them verbatim.
        text = text[3:]
    if app.startswith("%") and (mn := _APP_MNEMONIC.fullmatch(app)) is not None:
        # `logger -t '%SYS-5-CONFIG_I'`, a relay's RFC 5424 template: the Cisco tag travelled as
        # APP-NAME. The text reads as the device wrote it, so Cisco rules see one form.
        msg.mnemonic = mn.group(1)
        msg.text = f"%{mn.group(1)}: {text}"
        return
    msg.program = None if app == "-" else app
    if text.startswith("[ID "):  # a Solaris host's message relayed as RFC 5424
        text = _strip_msgid(msg, text)
    msg.text = text
    _split_mnemonic(msg, text)


def _micros(frac: str | None) -> int:
    return int((frac or "0")[:6].ljust(6, "0"))


def _zone(text: str | None) -> tzinfo | None:
    """A fixed-offset zone for `UTC`, `cest`, `+0200`, `UTC+07:30`; None if unknown or absent."""
    if not text:
        return None
    return _zone_of(text)


@lru_cache(maxsize=512)  # few distinct zone texts in practice; bounded against hostile input
def _zone_of(text: str) -> tzinfo | None:
    t = text.replace(" ", "").lower()
    if t == "z":
        return UTC
    name = t.rstrip("+-0123456789:")
    base = _TZ_HOURS.get(name) if name else 0.0
    if base is None:
        return None
    offset = timedelta(hours=base)
    if len(name) < len(t):
        m = _OFFSET.search(t[len(name) :])
        if m is None:
            return None
        sign = -1 if m.group(1) == "-" else 1
        offset += sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3) or 0))
    if abs(offset) >= timedelta(hours=24):
        return None
    return UTC if not offset else timezone(offset)


_WEEK = timedelta(days=7)


def _bsd_match_time(m: re.Match[str], msg: Message, tz: tzinfo) -> datetime | None:
    year = m["y1"] or m["y2"] or m["y3"]
    return _bsd_time(msg, tz, m["mon"], m["d"], m["h"], m["mi"], m["s"], m["frac"], year, m["tz"])


def _bsd_time(
    msg: Message,
    tz: tzinfo,
    mon: str,
    d: str,
    h: str,
    mi: str,
    s: str,
    frac: str | None = None,
    year_text: str | None = None,
    zone_text: str | None = None,
) -> datetime | None:
    zone = (_zone(zone_text) or tz) if zone_text else tz
    try:
        month = _MONTHS[mon[:3].lower()]
        day, hour, minute, second = int(d), int(h), int(mi), int(s)
        micro = _micros(frac) if frac else 0
        if year_text:
            when = datetime(int(year_text), month, day, hour, minute, second, micro, zone)
            msg.year_given = True  # (every caller takes a time it is given)
            return when
        if msg.default_year is not None:  # the caller's year, exactly (Feb 29 may not exist in it)
            return datetime(msg.default_year, month, day, hour, minute, second, micro, zone)
        # No year: the latest year, from next year back, in which the date exists and is not
        # more than a week ahead of the receive time. December lines read in January land in the
        # old year, a clock a little ahead of ours lands in the new one, Feb 29 in a leap year.
        now = msg.received_at.astimezone(zone)
        # Next year can only be within a week ahead for a January date read in late December.
        first = now.year + 1 if month == 1 and now.month == 12 else now.year
        for year in range(first, now.year - 8, -1):
            try:
                when = datetime(year, month, day, hour, minute, second, micro, zone)
            except ValueError:
                continue
            if when - now <= _WEEK:
                return when
        return None
    except (ValueError, KeyError):  # Feb 30, hour 25, an unknown month
        return None


_STAMPS: dict[tuple[str, str | None, tzinfo, int], datetime] = {}
_FRACTIONS: dict[str, timedelta] = {}  # "345" -> 345 ms
# The last receive time seen, its zone, its local time there and its hour as yyyymmddhh.
_LAST_HOUR: tuple[datetime | None, tzinfo | None, datetime, int] = (None, None, datetime(1970, 1, 1, tzinfo=UTC), 0)
# Ahead: a time kept at <= 6 days ahead is <= 7 days ahead of any receive time in the hour.
# Behind: at >= -357 days, the same date a year later (365 days on, an hour less across a DST
# change) is >= 8 days minus an hour ahead, so stays refused for any receive time in the hour.
_STABLE_AHEAD, _STABLE_PAST = timedelta(days=6), timedelta(days=-357)


def _fraction(frac: str) -> timedelta:
    """A fraction of a second as written ("345" -> 345 ms), remembered: adding it to a stamp
    remembered to the second is ~20 times cheaper than `replace(microsecond=...)`."""
    fraction = _FRACTIONS.get(frac)
    if fraction is None:
        fraction = _keep(_FRACTIONS, 4096, frac, timedelta(microseconds=_micros(frac)))
    return fraction


def _keep(cache: dict[_K, _V], limit: int, key: _K, value: _V) -> _V:
    """Store `value` in one of this module's memos, emptied whenever it reaches `limit`
    (entries are cheap to make again; the bound keeps odd input from growing it)."""
    if len(cache) >= limit:
        cache.clear()
    cache[key] = value
    return value


def _cached_bsd_time(
    msg: Message, tz: tzinfo, stamp: str, m: re.Match[str], frac: str | None = None, zone_text: str | None = None
) -> datetime | None:
    """`_bsd_time` for a yearless stamp such as "Jun 14 15:16:01" (or Cisco's "Jun 14
    15:16:01.123 CEST": `stamp` is its text up to the seconds, with `frac` and `zone_text`
    apart), remembered to the second per stamp, zone text, zone and receive hour: many lines
    share a second (Cisco's share it with their own milliseconds, which cannot move a decision
    that is days from its edge), and the year decision only needs computing once. Exact: an
    entry is kept only when its time is at most six days ahead of the receive time (so it stays
    accepted) and at most 357 days behind (so the year after it, which was refused as more than
    a week ahead, stays refused) for every receive time in that hour. With the caller's year
    (`Message.default_year`) the entry is keyed by it instead of the hour, and never goes stale."""
    global _LAST_HOUR
    if msg.default_year is not None:
        key = (stamp, zone_text, tz, -msg.default_year)  # (hours are positive: yyyymmddhh)
        second = _STAMPS.get(key)
        if second is None:
            when = _bsd_time(msg, tz, m["mon"], m["d"], m["h"], m["mi"], m["s"], frac, None, zone_text)
            if when is not None:
                _keep(_STAMPS, 8192, key, when.replace(microsecond=0) if frac else when)
            return when
        return second + _fraction(frac) if frac else second
    received = msg.received_at
    last = _LAST_HOUR  # one read: other threads may replace it, never change it
    if last[0] is received and last[1] is tz:
        now, hour = last[2], last[3]
    else:  # messages read in one go share one receive time: this runs once for them all
        now = received.astimezone(tz)
        hour = ((now.year * 100 + now.month) * 100 + now.day) * 100 + now.hour
        _LAST_HOUR = (received, tz, now, hour)
    key = (stamp, zone_text, tz, hour)
    second = _STAMPS.get(key)
    if second is not None:
        return second + _fraction(frac) if frac else second
    when = _bsd_time(msg, tz, m["mon"], m["d"], m["h"], m["mi"], m["s"], frac, None, zone_text)
    if when is not None and _STABLE_PAST <= when - now <= _STABLE_AHEAD:
        _keep(_STAMPS, 8192, key, when.replace(microsecond=0) if frac else when)
    return when


def _parse_3164(line: str, msg: Message, tz: tzinfo, fast: bool = True) -> None:
    # Cisco's shape starts with its sequence number: other lines need not try it.
    if fast and line[:1].isdigit() and (m := _FAST_CISCO.match(line)) is not None:
        seq, host, mark, stamp, mon, d, year, h, mi, s, frac, zone_text, mnemonic = m.groups()
        if year is None:  # the usual IOS stamp: its year decided once per stamp and hour
            when = _cached_bsd_time(msg, tz, stamp, m, frac, zone_text)
        else:
            when = _bsd_time(msg, tz, mon, d, h, mi, s, frac, year, zone_text)
        if when is not None:
            msg.timestamp = when
            msg.sequence = int(seq)
            msg.hostname = host
            msg.clock_mark = mark
            end = m.end()
            if line.startswith("%", end):
                text = msg.text = line[end:]
                # The lookahead saw the whole line, `_split_mnemonic` only the text's first 200
                # characters: a mnemonic running past them is left to it.
                if mnemonic is not None and m.end("mn") - end <= 200:
                    msg.mnemonic = mnemonic
                else:
                    _split_mnemonic(msg, text)
                return
            # Device output with no %MNEMONIC ("IKEv2:(SESSION ID = 3 ...", "AAA/ATTR(2A): ..."):
            # the general scanner goes on from here, in the state it would have reached itself
            # after the same two or three header items.
            _scan_header(line, msg, tz, end, 5 if host else 6, host is not None, True)
            return
    if fast and line:
        first = line[0]
        if first.isdigit():
            m = _FAST_LINUX_ISO.match(line)
            when = _iso_local(m, tz) if m is not None else None
        elif (m := _FAST_LINUX.match(line)) is not None:
            # The most common line of all, finished here: fields in one unpacking, and no call
            # for the header test when the text's first character cannot start more header.
            end = m.end()
            when = _cached_bsd_time(msg, tz, line[: m.end("s")], m)
            if when is not None and (line[end : end + 1] not in _HEADER_START or not _more_header(line, end)):
                msg.timestamp = when
                _, _, _, _, _, msg.hostname, msg.program, msg.pid = m.groups()
                text = line[end:]
                if text[:1] == " ":  # more spaces after the tag's one ("sudo:    alice : ...")
                    text = text.lstrip(" ")
                elif text[:1] == "[" and text.startswith("[ID "):
                    text = _strip_msgid(msg, text)
                msg.text = text
                if "%" in text:
                    _split_mnemonic(msg, text)
                return
            m = None
        else:
            m = _FAST_LINUX_NOTIME.match(line)
            when = None
        if m is not None and (when is not None or m.re is _FAST_LINUX_NOTIME) and not _more_header(line, m.end()):
            msg.timestamp = when
            msg.year_given = when is not None  # (an ISO stamp: the stampless shape has none)
            msg.hostname = m["host"]
            msg.program = m["prog"]
            msg.pid = m["pid"]
            text = line[m.end() :].lstrip(" ")
            if text.startswith("[ID "):
                text = _strip_msgid(msg, text)
            msg.text = text
            if "%" in text:
                _split_mnemonic(msg, text)
            return
    if (m := _SUDO_LOG.match(line)) is not None and _sudo_log_line(m, msg, tz):
        return
    if line[:1].isdigit() and _PRILESS_5424.match(line) is not None:
        # An RFC 5424 message written without "<PRI>1 " (a relay's file template of its fields,
        # "2022-02-24T21:00:42.021457+00:00 host app 6052 - - text"): read as RFC 5424.
        saved = msg.timestamp, msg.year_given, msg.parse_error
        _parse_5424(line.encode("utf-8"), msg, tz)
        if msg.version == 1:
            return
        msg.timestamp, msg.year_given, msg.parse_error = saved
    if line[:1] in _LOGHUB_SC_START and (m := _LOGHUB_SC.match(line)) is not None:
        node = m["node"] if _HOSTNAME.fullmatch(m["node"]) else ""
        _parse_3164(f"{m['md']} {m['y']} {m['t']} {node} {line[m.end() :]}".replace("  ", " ", 1), msg, tz, fast)
        return
    if line.startswith("[Time ") and (m := _ASL.match(line)) is not None:
        zone = _zone(m["zone"]) or tz
        try:
            msg.timestamp = datetime(
                int(m["y"]), int(m["mo"]), int(m["d"]), int(m["h"]), int(m["mi"]), int(m["s"]), tzinfo=zone
            )
        except ValueError:
            msg.timestamp = None
        msg.year_given = msg.timestamp is not None
        msg.hostname = m["host"] or None
        msg.program = m["prog"] or None
        pid = m["pid"]
        msg.pid = None if pid.startswith("-") else pid
        if m["level"] is not None:
            msg.severity = int(m["level"])
        fac = _FACILITY_NUMBER.get(m["fac"].lower())
        if fac is not None:
            msg.facility = fac
        msg.text = m["text"].strip(" ")
        _split_mnemonic(msg, msg.text)
        return
    if line[:5] in ("type=", "node=") and (m := _AUDIT_LOG.match(line)) is not None:
        # auditd's own log file: the time is the event's, in epoch seconds; the program "audit"
        # (as journald names the kernel's audit messages), the text the whole record.
        msg.timestamp = datetime.fromtimestamp(int(m["epoch"]), UTC) + timedelta(microseconds=_micros(m["ms"]))
        msg.year_given = True
        msg.program = "audit"
        msg.hostname = m["node"]
        msg.text = line
        return
    if line[:1] == ":":
        # Cisco EMBLEM (ASA/PIX `logging emblem`): an empty sequence field, "<166>:Jan 15 02:19:08
        # MSK: %ASA-sys-6-605005: ...", and "<166>:: %ASA-..." with the timestamp off too.
        _scan_header(line, msg, tz, 2 if line[1:2] == ":" else 1, 8, False, True)
        return
    _scan_header(line, msg, tz, 0, 8, False, False)


def _sudo_log_line(m: re.Match[str], msg: Message, tz: tzinfo) -> bool:
    """sudo's own log file (`logfile=` in sudoers): "Aug 31 08:11:00 2017 : alice : HOST=web1 :
    TTY=pts/1 ; ...". The program is sudo, the host is HOST= when logged, and the text reads as
    sudo's syslog message does ("alice : TTY=pts/1 ; ..."), so the same rules map both."""
    when = _bsd_time(msg, tz, m["mon"], m["d"], m["h"], m["mi"], m["s"], None, m["y"])
    if when is None:
        return False
    msg.timestamp = when
    msg.program = "sudo"
    msg.hostname = m["host"] or m["mhost"]
    msg.text = f"{m['user']} : {m.string[m.end() :]}"
    return True


def _scan_header(line: str, msg: Message, tz: tzinfo, pos: int, items: int, host_seen: bool, cisco_style: bool) -> None:
    """The general scanner: up to `items` header items (timestamps, sequence numbers, hostnames,
    uptimes) in any order from `pos`, then the program tag, the text and its mnemonic.
    `cisco_style`: a Cisco-style header (sequence number, "*"/"." clock marker, "time:") was
    seen, after which the body is device output: "AAA/ATTR(0012): ..." and "INFO: ..." are
    not program tags."""
    n = len(line)
    for _ in range(items):
        while pos < n and line[pos] in " \t":
            pos += 1
        if pos < n and line[pos] == ":" and pos + 1 < n and line[pos + 1] == " ":
            pos += 2  # "<46>: 2024 Aug 27 ..." : an empty sequence number
            continue
        if pos < n and line[pos] == "<":
            m = _INNER_PRI.match(line, pos)
            if m is not None:
                # A relay's header in front of the device's whole frame ("relay01 <189>412: ..."):
                # the device's PRI, and its header items after it, win.
                if m["pri"] is not None and int(m["pri"]) <= 191:
                    msg.facility, msg.severity = divmod(int(m["pri"]), 8)
                elif m["pri"] is None:
                    _set_facility_level(msg, m["fac"], m["level"])
                pos = m.end()
                continue
        if line.startswith("@4", pos) and (m := _TAI64N.match(line, pos)) is not None:
            seconds = int(m.group(1), 16) - 2**62 - 10  # TAI is 10 s ahead of UTC at the epoch
            msg.timestamp = datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=int(m.group(2), 16) // 1000)
            msg.year_given = True
            # multilog writes the service's own output after it: no host, no program tag.
            msg.text = line[m.end() :].lstrip(" \t")
            _split_mnemonic(msg, msg.text)
            return
        m = _BSD_TS.match(line, pos) or _ISO_TS.match(line, pos)
        if (
            m is not None
            and m.re is _BSD_TS
            and m["tz"]
            and not (cisco_style or m["mark"])
            and _zone(m["tz"]) is None
            and not (m["frac"] and line.startswith("%", _skip_spaces(line, m.end())))  # "hh:mm:ss.mmm TZ: %LINK"
        ):
            m = _BSD_TS_NO_WORD_ZONE.match(line, pos)  # "Jan 11 22:33:44 su: ...": "su" is the tag
        if m is not None:
            bsd = "mon" in m.re.groupindex
            when = _bsd_match_time(m, msg, tz) if bsd else _iso_local(m, tz)
            if when is not None:
                # A relay's header and the device's own: the device's (the later one) wins.
                msg.timestamp = when
                msg.year_given = not bsd or bool(m["y1"] or m["y2"] or m["y3"])
                msg.clock_mark = m["mark"]
                cisco_style = bool(m["colon"] or m["mark"])
                pos = m.end()
                continue
        m = _SEQ.match(line, pos)
        if m is not None:
            cisco_style = True
            if msg.sequence is None or host_seen:
                msg.sequence = int(m.group(1))
            pos = m.end()
            continue
        m = _UPTIME.match(line, pos) or _TASK.match(line, pos) or _LOCATION.match(line, pos)
        if m is not None and (msg.timestamp is None or m.re is not _UPTIME):
            if m.re is _LOCATION:
                msg.location = m.group(0).rstrip(":")
            pos = m.end()
            continue
        if pos >= n or line[pos] == "%":
            break
        if line.startswith("Message forwarded from ", pos) and (m := _FORWARDED.match(line, pos)) is not None:
            # AIX syslogd relaying a host's message: "Message forwarded from HOST: prog[pid]: ..."
            msg.hostname = m.group(1)
            host_seen = True
            pos = m.end()
            continue
        m = _WORD.match(line, pos)
        if m is None:
            break
        word = m.group(1)
        after = m.end()
        if (
            not host_seen
            and msg.timestamp is None
            and _LEVEL_TAG.fullmatch(word)
            and _looks_like_host_then_tag(line, after)
        ):
            # ESXi hostd's own log, "info hostd[2099656] [Originator@6876 ...] ...": with no time
            # before it, a level word before the program is no host.
            pos = after
            break
        if word.endswith(":"):
            # "sw01: 3132779: ..." is a hostname (after a relay's, the device's own, which wins);
            # "sshd: message" is a program tag.
            if not _header_follows(line, after):
                break
            if host_seen and line.startswith("%", _skip_spaces(line, after)) and not _is_address(msg.hostname):
                break  # "myhost IOS: %SYS-5-CONFIG_I: ...": a tag (logger -t IOS), not a second host
            word = word[:-1]
        elif (
            host_seen
            or (_TAG.fullmatch(word + ":") is None and not (":" in word and _HOSTNAME.fullmatch(word)))
            or not _looks_like_host_then_tag(line, after)
        ):
            break  # (an IPv6 address is a host, though its colons make no program tag)
        if _HOSTNAME.fullmatch(word) is None:
            break
        msg.hostname = word
        host_seen = True
        pos = after
    while pos < n and line[pos] in " \t":
        pos += 1
    if host_seen and (m := _FACILITY_LEVEL.match(line, pos)) is not None:
        # "host auth|info sshd[1]: ..." / "host auth.info sshd[1]: ...": the priority as words
        # between host and program (HP-UX, Solaris, syslog-ng templates with $FACILITY|$LEVEL).
        _set_facility_level(msg, m["fac"], m["level"])
        pos = m.end()
    rest = line[pos:]
    if not rest.startswith("%"):
        tag = _TAG.match(rest)
        if tag is None and not cisco_style and "[" in rest[:66]:
            tag = _BARE_PID_TAG.match(rest)
            if tag is not None and not rest.startswith(" ", tag.end()):
                tag = None
        # After a Cisco-style header only "name[pid]:" is a program (IOS-XR's "snmpd[1002]:").
        if (
            tag is not None
            and not host_seen
            and not tag.group("pid")
            and not cisco_style
            and (level := _LEVEL_TAG.fullmatch(tag.group("prog"))) is not None
        ):
            # A level, with no host before it: the text starts here (the rules engine reads a
            # line with no program and no host as headerless). A facility.level pair is the
            # priority, not text; socklog writes the program after it ("auth.info: sshd[30993]:
            # Invalid user ..."). A bare level is the program's own prefix ("error: maximum ...").
            tag = None
            if level["fac"] is not None:
                _set_facility_level(msg, level["fac"], level["level"])
                rest = rest[len(level.group(0)) + 1 :].lstrip(" ")
                tag = _TAG.match(rest)
                if tag is not None and _LEVEL_TAG.fullmatch(tag.group("prog")) is not None:
                    tag = None
        if tag is not None and not tag.group("prog").isdigit() and (not cisco_style or tag.group("pid")):
            msg.program = tag.group("prog")
            msg.pid = tag.group("pid") or None
            rest = rest[tag.end() :].lstrip(" ")
            if rest.startswith("[ID "):
                rest = _strip_msgid(msg, rest)
        elif tag is None and not cisco_style and rest.startswith("[") and (tag := _BRACKET_TAG.match(rest)) is not None:
            # "[sshd]: ..." / "[sshd] ...": the program in brackets, as some syslogds and
            # daemons write it (fail2ban's catalogue of header prefixes has both).
            msg.program = tag.group("prog")
            rest = rest[tag.end() :].lstrip(" ")
    msg.text = rest
    _split_mnemonic(msg, rest)
    if msg.timestamp is None and msg.parse_error is None and not msg.mnemonic and msg.program is None:
        msg.parse_error = "no syslog header found"


# RFC 3339 stamps to the second (their text up to the seconds, zone text, default zone): an ISO
# stamp needs no year decision, so an entry never goes stale; None for an impossible date.
_ISO_STAMPS: dict[tuple[str, str | None, tzinfo], datetime | None] = {}


def _iso_local(m: re.Match[str], tz: tzinfo) -> datetime | None:
    """The time of an `_ISO_TS`-shaped match (`tz` when it names no zone), or None."""
    key = (m.string[m.start("y") : m.end("s")], m["tz"], tz)
    try:
        second = _ISO_STAMPS[key]
    except KeyError:
        try:
            second = datetime(
                int(m["y"]), int(m["mo"]), int(m["d"]), int(m["h"]), int(m["mi"]), int(m["s"]), 0, _zone(m["tz"]) or tz
            )
        except ValueError:
            second = None
        _keep(_ISO_STAMPS, 8192, key, second)
    frac = m["frac"]
    return second + _fraction(frac) if frac and second is not None else second


# What can start more header after a tag: a digit, "*", ".", "%", a month's first letter
# (`_more_header` decides); any other first character, or none, cannot.
_HEADER_START = frozenset("0123456789*.%jfmasondJFMASOND")


def _more_header(line: str, pos: int) -> bool:
    """After a fast-path tag: is this really a relay header followed by the device's own
    (`... 192.0.2.1 sw01: 3132779: Jul 14 ...`)? Cheap first-character test, then the full one."""
    head = line[pos : pos + 3]
    if not head or not (head[0].isdigit() or head[0] in "*.%" or head.lower() in _MONTHS):
        return False
    return _header_follows(line, pos)


def _header_follows(line: str, pos: int) -> bool:
    """After a `word:`, does more header come (sequence, timestamp, uptime, Cisco tag)?"""
    pos = _skip_spaces(line, pos)
    return bool(
        _SEQ.match(line, pos)
        or _TASK.match(line, pos)
        or _LOCATION.match(line, pos)
        or _BSD_TS.match(line, pos)
        or _ISO_TS.match(line, pos)
        or _UPTIME.match(line, pos)
        or line.startswith("%", pos)
    )


def _looks_like_host_then_tag(line: str, pos: int) -> bool:
    """After a bare word, a hostname is followed by a program tag, a Cisco tag or more header."""
    pos = _skip_spaces(line, pos)
    if _header_follows(line, pos):
        return True
    word = _WORD.match(line, pos)
    # "host prog[1]: ...", "host -- MARK --", Cisco FTD's "host : %FTD-6-...", and the priority
    # as words before the tag ("host auth|info prog[1]: ...").
    if word is not None and (priority := _FACILITY_LEVEL.match(line, pos)) is not None:
        word = _WORD.match(line, priority.end())
    return word is not None and (
        _TAG.fullmatch(word.group(1)) is not None
        or word.group(1) in ("--", ":")
        or _BARE_PID_TAG.fullmatch(word.group(1)) is not None
    )


def _skip_spaces(line: str, pos: int) -> int:
    """The position of the first non-space at or after `pos`."""
    while pos < len(line) and line[pos] == " ":
        pos += 1
    return pos


def _is_address(host: str | None) -> bool:
    """An IPv4 or IPv6 literal: what a relay writes as the host of a sender that named none."""
    return host is not None and _ADDRESS.fullmatch(host) is not None


def _set_facility_level(msg: Message, fac: str | None, level: str | None) -> None:
    """Facility and severity from `auth.info`-style words or `4.3`-style numbers, when valid."""
    if fac is None or level is None:
        return
    f = int(fac) if fac.isdigit() else _FACILITY_NUMBER.get(fac.lower())
    sev = int(level) if level.isdigit() else _SEVERITY_NUMBER.get(level.lower())
    if f is not None and sev is not None and f < 24 and sev < 8:
        msg.facility, msg.severity = f, sev


def _strip_msgid(msg: Message, text: str) -> str:
    """The text after Solaris's "[ID 800047 auth.info] " (its priority kept), else `text`."""
    m = _SOLARIS_MSGID.match(text)
    if m is None:
        return text
    _set_facility_level(msg, m["fac"], m["level"])
    return text[m.end() :]


def _split_mnemonic(msg: Message, text: str) -> None:
    m = _MNEMONIC.search(text, 0, 200)
    if m is not None and (m.start() == 0 or text[m.start() - 1] in " :"):
        msg.mnemonic = m.group("mn")


def zone_for(name: str) -> tzinfo:
    """A configured per-source zone: an IANA name (`Europe/Vienna`) or an offset/abbreviation."""
    fixed = _zone(name)
    if fixed is not None:
        return fixed
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as Europe/Vienna, or +02:00)") from None
