"""Real senders end to end: rsyslog, syslog-ng, util-linux logger and Python's SysLogHandler,
over UDP, TCP (LF, octet counting, NUL) and TLS, into `nwsyslog run` and the emulator.

Every case sends the same realistic event set (sudo command, sudo incorrect password, su
success, su session, su failure, sshd accepted, failed password, invalid user, useradd, and a
Cisco CONFIG_I) with a token of its own in every user name, and checks that each event arrives
exactly once, with the Who, Action and What the same line gives when parsed directly, the
Where the sender's header names, and the When it carries (the receive time where it carries
none). The relays (rsyslog, syslog-ng) receive the events as a Linux host's or a Cisco device's
RFC 3164 lines over TCP and forward them with the output each case names. The programs come
from Debian's packages (`tests/interop/programs.py`); a missing one fails the test with the
reason.
"""

from __future__ import annotations

import collections
import json
import logging
import logging.handlers
import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from ingestor.emulator.process import EmulatorProcess
from ingestor.emulator.server import Certificate, self_signed_certificate
from parsers.rules.loader import builtin_dir, load_ruleset
from parsers.rules.testing import ExplainOptions, explain_lines
from tests.conftest import enum_all
from tests.e2e.test_service import ServiceProcess, free_port
from tests.interop import programs

ROOT = Path(__file__).resolve().parents[2]
HOSTNAME = socket.gethostname()

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Event:
    """One event of the set: facility, program tag, pid and message text (`{t}`: the token)."""

    facility: str
    program: str
    pid: str | None
    text: str

    def message(self, token: str) -> str:
        return self.text.format(t=token)

    def tag(self) -> str:
        return f"{self.program}[{self.pid}]" if self.pid else self.program

    def file_line(self, token: str, host: str, when: datetime) -> str:
        """As the host's syslog daemon writes it, with the PRI a relay receives."""
        pri = {"authpriv": 10 * 8 + 6, "auth": 4 * 8 + 6, "local7": 23 * 8 + 5}[self.facility]
        separator = " " if self.program.startswith("%") else ": "
        tag = self.tag() + (":" if self.program.startswith("%") else "")
        return f"<{pri}>{when:%b} {when.day:2d} {when:%H:%M:%S} {host} {tag}{separator}{self.message(token)}"


SUDO = "  u{t} : TTY=pts/0 ; PWD=/home/u{t} ; USER=root ; "
EVENTS = [
    Event("authpriv", "sudo", None, SUDO + "COMMAND=/usr/bin/systemctl restart nginx"),
    Event(
        "authpriv", "sudo", None, SUDO.replace(" : ", " : 3 incorrect password attempts ; ", 1) + "COMMAND=/bin/bash"
    ),
    Event("authpriv", "su", "4101", "(to root) u{t} on pts/0"),
    Event("authpriv", "su", "4101", "pam_unix(su-l:session): session opened for user root(uid=0) by u{t}(uid=1000)"),
    Event("authpriv", "su", "4102", "FAILED SU (to root) u{t} on pts/1"),
    Event("auth", "sshd", "811", "Accepted publickey for u{t} from 192.0.2.10 port 50022 ssh2: ED25519 SHA256:uNiVztk"),
    Event("auth", "sshd", "812", "Failed password for u{t} from 192.0.2.11 port 50023 ssh2"),
    Event("auth", "sshd", "813", "Invalid user v{t} from 192.0.2.12 port 50024"),
    Event("authpriv", "useradd", "900", "new user: name=n{t}, UID=1050, GID=1050, home=/home/n{t}, shell=/bin/bash"),
    Event("local7", "%SYS-5-CONFIG_I", None, "Configured from console by u{t} on vty0 (10.1.1.1)"),
]
LINUX_ONLY = [e for e in EVENTS if e.facility != "local7"]


def expected_records(events: list[Event], token: str, host: str) -> collections.Counter[tuple[str, str, str]]:
    """(Who, Action, What) of each event's line parsed directly: what the relayed one must give."""
    lines = [e.file_line(token, host, datetime.now(UTC)) for e in events]
    options = ExplainOptions(received_at=datetime.now(UTC))
    rows = list(explain_lines(load_ruleset(), lines, options))
    assert all("record" in row for row in rows), rows  # every event of the set maps
    return collections.Counter((r["record"]["Who"], r["record"]["Action"], r["record"]["What"]) for r in rows)


@dataclass
class Target:
    """The service under test: its ports, TLS certificate and the emulator it writes to."""

    ports: dict[str, int]
    cert: Certificate
    emulator_url: str

    def records(self, token: str) -> list[dict[str, Any]]:
        return [r for r in enum_all(self.emulator_url) if token in json.dumps(r)]


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    tmp = tmp_path_factory.mktemp("interop")
    cert = self_signed_certificate(tmp / "tls", ["localhost", "127.0.0.1"])
    with EmulatorProcess("--db", str(tmp / "emulator.db")) as emulator:
        config = tmp / "nwsyslog.yaml"
        config.write_text(
            f"""
listeners:
  - url: udp://127.0.0.1:0
    receive_buffer: 4194304
  - tcp://127.0.0.1:0
  - url: tls://127.0.0.1:0
    cert_file: {cert.cert_file}
    key_file: {cert.key_file}
netwrix: {{url: {emulator.url}, retry: {{base: 0.05, cap: 0.5}}}}
batching: {{linger: 0.1}}
records: {{monitoring_plan: Syslog, item: interop}}
spool: {{path: {tmp / "spool.db"}}}
metrics: {{listen: "127.0.0.1:0"}}
shutdown_timeout: 5
"""
        )
        service = ServiceProcess(config)
        try:
            assert set(service.ports) == {"udp", "tcp", "tls"}, service.ports
            yield Target(service.ports, cert, emulator.url)
        finally:
            code, err = service.stop()
            assert code == 0, err[-3000:]


def wait_for_records(target: Target, token: str, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    records = target.records(token)
    while len(records) < count and time.monotonic() < deadline:
        time.sleep(0.25)
        records = target.records(token)
    time.sleep(0.5)  # and nothing more arrives: each event exactly once
    return target.records(token)


def check(
    target: Target, token: str, events: list[Event], where: str, when: tuple[datetime, datetime] | datetime
) -> None:
    """Every event's record arrived once, as the direct parse of its line, at `where` and `when`
    (an exact time, or the window the records must fall in when the sender sends none)."""
    wanted = expected_records(events, token, where)
    records = wait_for_records(target, token, sum(wanted.values()))
    got = collections.Counter((r["Who"], r["Action"], r["What"]) for r in records)
    assert got == wanted, f"missing {wanted - got}, unexpected {got - wanted}"
    assert {r["Where"] for r in records} == {where}
    for record in records:
        stamp = datetime.fromisoformat(record["When"].replace("Z", "+00:00"))
        if isinstance(when, datetime):
            assert stamp == when, record
        else:
            assert when[0] - timedelta(seconds=1) <= stamp <= when[1] + timedelta(seconds=1), record


def now_to_the_second() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


# --------------------------------------------------------------------------------- logger


LOGGER_CASES = {
    "udp-rfc3164": ["-d", "--rfc3164"],
    "udp-rfc5424": ["-d", "--rfc5424"],
    "tcp-rfc3164": ["-T", "--rfc3164"],
    "tcp-rfc5424-octet-count": ["-T", "--rfc5424", "--octet-count"],
}


@pytest.mark.parametrize("case", list(LOGGER_CASES))
def test_util_linux_logger(target: Target, case: str) -> None:
    binary = programs.logger()
    token = f"lg{list(LOGGER_CASES).index(case)}"
    transport = "udp" if "-d" in LOGGER_CASES[case] else "tcp"
    start = datetime.now(UTC)
    for event in EVENTS:
        priority = f"{event.facility}.{'notice' if event.facility == 'local7' else 'info'}"
        command = [binary, "-n", "127.0.0.1", "-P", str(target.ports[transport]), *LOGGER_CASES[case]]
        command += ["-t", event.program, "-p", priority]
        if event.pid:
            command.append(f"--id={event.pid}")
        subprocess.run([*command, "--", event.message(token)], check=True, timeout=30)
    check(target, token, EVENTS, HOSTNAME, (start, datetime.now(UTC)))


# ------------------------------------------------------------------------ Python logging


@pytest.mark.parametrize("socktype", [socket.SOCK_DGRAM, socket.SOCK_STREAM], ids=["udp", "tcp-nul"])
def test_python_sysloghandler(target: Target, socktype: socket.SocketKind) -> None:
    """`logging.handlers.SysLogHandler`: `<PRI>ident message` and a NUL after each message (its
    default, over TCP too); no time and no host, so Where is the sender's address and When the
    receive time."""
    token = "py" + ("u" if socktype == socket.SOCK_DGRAM else "t")
    port = target.ports["udp" if socktype == socket.SOCK_DGRAM else "tcp"]
    handler = logging.handlers.SysLogHandler(address=("127.0.0.1", port), socktype=socktype)
    log = logging.getLogger(f"nwsyslog.interop.{token}")
    log.propagate = False
    log.addHandler(handler)
    start = datetime.now(UTC)
    try:
        for event in EVENTS:
            handler.facility = handler.facility_names[event.facility]
            handler.ident = f"{event.tag()}: " if not event.program.startswith("%") else f"{event.program}: "
            log.warning(event.message(token))
    finally:
        log.removeHandler(handler)
        handler.close()
    check(target, token, EVENTS, "127.0.0.1", (start, datetime.now(UTC)))


# -------------------------------------------------------------------------------- relays


def feed(port: int, lines: list[str]) -> None:
    """The events as a host's RFC 3164 lines, to a relay's TCP input (LF framing)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall("".join(line + "\n" for line in lines).encode())


def wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the relay exited with {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"the relay did not listen on {port}: {log.read_text()[-3000:]}")


class Relay:
    """A relay program in the foreground in its own folder: started, fed, stopped."""

    def __init__(self, command: list[str], env: dict[str, str] | None, folder: Path, port: int) -> None:
        self.log = folder / "relay.log"
        self.port = port
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        wait_listening(port, self.proc, self.log)

    def stop(self) -> str:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.log.read_text()


def relay_case(target: Target, token: str, start: Callable[[int], Relay], events: list[Event] = EVENTS) -> None:
    host = f"h{token}"
    when = now_to_the_second() - timedelta(seconds=5)
    relay = start(free_port())
    try:
        feed(relay.port, [e.file_line(token, host, when) for e in events])
        check(target, token, events, host, when)
    finally:
        output = relay.stop()
    assert "error" not in output.lower() or "0 errors" in output.lower(), output[-3000:]


def rsyslog_config(folder: Path, in_port: int, action: str, cert: Certificate) -> Path:
    (folder / "work").mkdir(exist_ok=True)
    config = folder / "rsyslog.conf"
    config.write_text(
        f"""
global(workDirectory="{folder / "work"}" DefaultNetstreamDriverCAFile="{cert.cert_file}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{in_port}")
{action}
"""
    )
    return config


def start_rsyslog(target: Target, folder: Path, action: str) -> Callable[[int], Relay]:
    rsyslog = programs.rsyslog()

    def start(in_port: int) -> Relay:
        config = rsyslog_config(folder, in_port, action, target.cert)
        return Relay(rsyslog.command(config, folder / "rsyslog.pid"), rsyslog.env(), folder, in_port)

    return start


def rsyslog_actions(target: Target) -> dict[str, str]:
    udp, tcp, tls = target.ports["udp"], target.ports["tcp"], target.ports["tls"]
    tls_action = (
        'action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp" StreamDriver="{driver}" '
        'StreamDriverMode="1" StreamDriverAuthMode="x509/certvalid" TCP_Framing="octet-counted" '
        'template="RSYSLOG_SyslogProtocol23Format")'
    )
    return {
        "udp-traditional": f'action(type="omfwd" target="127.0.0.1" port="{udp}" protocol="udp" '
        'template="RSYSLOG_TraditionalForwardFormat")',
        "tcp-5424-octet-counted": f'action(type="omfwd" target="127.0.0.1" port="{tcp}" protocol="tcp" '
        'TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")',
        "tls-gtls-certvalid": tls_action.format(port=tls, driver="gtls"),
        "tls-ossl-certvalid": tls_action.format(port=tls, driver="ossl"),
    }


RSYSLOG_CASES = ["udp-traditional", "tcp-5424-octet-counted", "tls-gtls-certvalid", "tls-ossl-certvalid"]


@pytest.mark.parametrize("case", RSYSLOG_CASES)
def test_rsyslog_relay(target: Target, case: str, tmp_path: Path) -> None:
    token = f"rs{RSYSLOG_CASES.index(case)}"
    relay_case(target, token, start_rsyslog(target, tmp_path, rsyslog_actions(target)[case]))


def deploy_snippet(port: int) -> str:
    """deploy/rsyslog-nwsyslog.conf as shipped, pointed at the service's UDP port."""
    text = (ROOT / "deploy" / "rsyslog-nwsyslog.conf").read_text()
    assert "nwsyslog.example.com:514" in text
    return text.replace("nwsyslog.example.com:514", f"127.0.0.1:{port}").replace(
        'target="nwsyslog.example.com" port="514"', f'target="127.0.0.1" port="{port}"'
    )


def test_rsyslog_with_the_deploy_snippet_as_shipped(target: Target, tmp_path: Path) -> None:
    """The snippet forwards auth and authpriv: every Linux event of the set maps."""
    relay_case(target, "rsd", start_rsyslog(target, tmp_path, deploy_snippet(target.ports["udp"])), LINUX_ONLY)


# What a Linux host's syslog daemon writes: an RFC 3164 header ("Mmm dd hh:mm:ss host tag"), an
# RFC 3339 one (rsyslog's precise format) or RFC 5424. Lines of other shapes (Cisco's headers,
# sudo's log file, "2020-03-23 06:47:42.801612-0700" stamps) are not what a relay receives from
# a Linux host, and rsyslog's RFC 3164 parser mangles them.
SYSLOG_SHAPE = re.compile(
    r"(?:<\d{1,3}>)?(?:1 \S+ \S+ \S+ "
    r"|[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d [^\s:]+ [^\s:|]+:"
    r"|\d{4}-\d\d-\d\dT\S+ \S+ [^\s:]+:)"
)


def builtin_examples() -> list[str]:
    """The example lines of the built-in Linux and privileged-user packs that a Linux host's
    syslog daemon sends, with a PRI (authpriv.info) where they have none."""
    lines = []
    for pack in ("linux", "privileged"):
        doc = yaml.safe_load((builtin_dir() / pack / f"{pack}.yaml").read_text())
        for rule in doc["rules"]:
            for example in rule["examples"]:
                line = example["line"]
                if SYSLOG_SHAPE.match(line):
                    lines.append(line if line.startswith("<") else "<86>" + line)
    return lines


def test_the_builtin_examples_through_rsyslogs_5424_template_all_map(tmp_path: Path) -> None:
    """Every built-in pack's examples, received by rsyslog as they are written and written out
    with RSYSLOG_SyslogProtocol23Format (what omfwd sends), make the same records as when
    parsed directly."""
    rsyslog = programs.rsyslog()
    examples = builtin_examples()
    out = tmp_path / "out.log"
    action = f'action(type="omfile" file="{out}" template="RSYSLOG_SyslogProtocol23Format")'
    port = free_port()
    cert = self_signed_certificate(tmp_path / "tls", ["localhost"])
    config = rsyslog_config(tmp_path, port, action, cert)
    relay = Relay(rsyslog.command(config, tmp_path / "rsyslog.pid"), rsyslog.env(), tmp_path, port)
    try:
        feed(port, examples)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (not out.exists() or len(out.read_text().splitlines()) < len(examples)):
            time.sleep(0.1)
    finally:
        relay.stop()
    relayed = out.read_text().splitlines()
    assert len(relayed) == len(examples) > 90
    now = datetime(2026, 6, 15, 12, tzinfo=UTC)
    options = ExplainOptions(received_at=now)
    ruleset = load_ruleset()

    def mapped(lines: list[str]) -> list[tuple[str, str, str] | None]:
        rows = list(explain_lines(ruleset, lines, options))
        return [
            (r["record"]["Who"], r["record"]["Action"], r["record"]["What"]) if "record" in r else None for r in rows
        ]

    direct, through = mapped(examples), mapped(relayed)
    differ = [(examples[i], relayed[i]) for i in range(len(examples)) if direct[i] != through[i]]
    assert differ == [], "\n".join(f"{a}\n  -> {b}" for a, b in differ)
    assert sum(d is not None for d in direct) > 50


# ------------------------------------------------------------------------------ syslog-ng


def start_syslog_ng(folder: Path, destination: str) -> Callable[[int], Relay]:
    binary = programs.syslog_ng()

    def start(in_port: int) -> Relay:
        config = folder / "syslog-ng.conf"
        config.write_text(
            f"""@version: 3.38
options {{ keep-hostname(yes); keep-timestamp(yes); chain-hostnames(no); use-dns(no); stats_freq(0); }};
source s_in {{ network(ip("127.0.0.1") port({in_port}) transport("tcp")); }};
destination d_out {{ {destination}; }};
log {{ source(s_in); destination(d_out); }};
"""
        )
        command = [
            binary, "-F", "-e", "--no-caps", "-f", str(config), "-p", str(folder / "syslog-ng.pid"),
            "-c", str(folder / "syslog-ng.ctl"), "-R", str(folder / "syslog-ng.persist"),
        ]  # fmt: skip
        return Relay(command, {"TZ": "UTC", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, folder, in_port)

    return start


SYSLOG_NG_CASES = ["network-udp", "network-tcp", "syslog-tcp", "syslog-tls-required-trusted"]


def syslog_ng_destination(target: Target, case: str) -> str:
    udp, tcp, tls = target.ports["udp"], target.ports["tcp"], target.ports["tls"]
    return {
        "network-udp": f'network("127.0.0.1" port({udp}) transport("udp"))',
        "network-tcp": f'network("127.0.0.1" port({tcp}) transport("tcp"))',
        "syslog-tcp": f'syslog("127.0.0.1" port({tcp}) transport("tcp"))',
        "syslog-tls-required-trusted": f'syslog("127.0.0.1" port({tls}) transport("tls") '
        f'tls(peer-verify(required-trusted) ca-file("{target.cert.cert_file}")))',
    }[case]


@pytest.mark.parametrize("case", SYSLOG_NG_CASES)
def test_syslog_ng_relay(target: Target, case: str, tmp_path: Path) -> None:
    token = f"sn{SYSLOG_NG_CASES.index(case)}"
    relay_case(target, token, start_syslog_ng(tmp_path, syslog_ng_destination(target, case)))
