"""`nwsyslog check-config`: every error at once, with what was meant; ports bound and released;
`--connect` against a real emulator. Everything through the CLI and real files and sockets."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ingestor.cli import main
from ingestor.netwrix.tls import colon_hex
from tests.conftest import EmulatorFactory

QUIET = "listeners: [udp://127.0.0.1:0]\nmetrics: {listen: null}\n"  # binds nothing fixed


def check(path: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["check-config", *args, str(path)])


def error_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("nwsyslog: ")]


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_every_error_of_the_file_is_reported_at_once_in_file_order(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("")
    path = write(
        tmp_path,
        "listners:\n"
        "  - udp://127.0.0.1:0\n"
        "accept: [10.20.30.0/8]\n"
        "netwrix:\n"
        "  auth:\n"
        "    method: basic\n"
        "    usrname: svc\n"
        f"    password_file: {secret}\n",
    )
    result = check(path)
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"nwsyslog: {path}:1: listners: unknown key; did you mean 'listeners'?",
        f"nwsyslog: {path}:3: accept[0]: 10.20.30.0/8 has host bits set; did you mean 10.0.0.0/8 "
        "(all of 10.x.x.x) or 10.20.30.0/24?",
        f"nwsyslog: {path}:7: netwrix.auth.usrname: unknown key; did you mean 'username'?",
        f"nwsyslog: {path}:8: netwrix.auth.password_file: {secret} is empty (the password is its first line)",
    ]
    assert result.stdout == "", "no 'ok' summary for a file with errors"


def test_run_with_a_bad_configuration_exits_2_with_every_message(tmp_path: Path) -> None:
    path = write(tmp_path, "listeners: [udp://127.0.0.1:0]\nmetrcs: {}\nspool: {max_records: 1}\n")
    result = CliRunner().invoke(main, ["run", "--config", str(path)])
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"nwsyslog: {path}:2: metrcs: unknown key; did you mean 'metrics'?",
        f"nwsyslog: {path}:3: spool.max_records: Input should be greater than or equal to 1000",
    ]


def test_run_reports_every_error_as_json_under_log_format_json(tmp_path: Path) -> None:
    import json

    path = write(tmp_path, "listeners: [udp://127.0.0.1:0]\ntimezon: UTC\nshutdown_timeout: -1\n")
    result = CliRunner().invoke(main, ["--log-format", "json", "run", "--config", str(path)])
    assert result.exit_code == 2
    messages = [json.loads(line)["message"] for line in result.stderr.splitlines()]
    assert messages == [
        f"{path}:2: timezon: unknown key; did you mean 'timezone'?",
        f"{path}:3: shutdown_timeout: Input should be greater than or equal to 0",
    ]


def test_an_unknown_key_with_no_close_match_lists_the_known_ones(tmp_path: Path) -> None:
    result = check(write(tmp_path, QUIET + "spool: {colour: blue}\n"))
    (line,) = error_lines(result)
    assert "spool.colour: unknown key (known here: path, max_records, max_bytes" in line


def test_did_you_mean_works_inside_lists_of_mappings(tmp_path: Path) -> None:
    text = QUIET + "sources:\n  - cidr: 10.0.0.0/8\n    timezon: Europe/Vienna\n"
    (line,) = error_lines(check(write(tmp_path, text)))
    assert line.endswith(":5: sources[0].timezon: unknown key; did you mean 'timezone'?")


@pytest.mark.parametrize(
    ("cidr", "meant"),
    [
        ("10.20.30.0/8", "did you mean 10.0.0.0/8 (all of 10.x.x.x) or 10.20.30.0/24?"),
        ("10.20.0.0/8", "did you mean 10.0.0.0/8 (all of 10.x.x.x) or 10.20.0.0/16?"),
        ("192.168.1.77/24", "did you mean 192.168.1.0/24 (all of 192.168.1.x) or 192.168.1.77/32 (only 192.168.1.77)?"),
        ("10.20.30.0/20", "did you mean 10.20.16.0/20 (10.20.16.0 to 10.20.31.255) or 10.20.30.0/24?"),
        ("2001:db8:1::/16",
         "did you mean 2001::/16 (2001:: to 2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff) or 2001:db8:1::/48?"),
    ],
)  # fmt: skip
def test_a_cidr_with_host_bits_set_is_refused_with_what_it_means(tmp_path: Path, cidr: str, meant: str) -> None:
    path = write(tmp_path, QUIET + f"accept: [{cidr}]\nsources:\n  - cidr: {cidr}\n")
    result = check(path)
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"nwsyslog: {path}:3: accept[0]: {cidr} has host bits set; {meant}",
        f"nwsyslog: {path}:5: sources[0].cidr: {cidr} has host bits set; {meant}",
    ]


def test_a_proper_network_and_a_single_address_are_accepted(tmp_path: Path) -> None:
    result = check(write(tmp_path, QUIET + "accept: [10.0.0.0/8, 192.0.2.7, '2001:db8::/32']\n"))
    assert result.exit_code == 0, result.output
    assert "accept list: 10.0.0.0/8, 192.0.2.7, 2001:db8::/32" in result.stdout


@pytest.mark.parametrize("content", ["", "\n", "   \n", " \t\nsecond line\n"])
def test_an_empty_password_file_is_refused_naming_it(tmp_path: Path, content: str) -> None:
    secret = tmp_path / "password"
    secret.write_text(content)
    path = write(
        tmp_path,
        QUIET + f"netwrix:\n  auth:\n    method: basic\n    username: svc\n    password_file: {secret}\n",
    )
    result = check(path)
    assert result.exit_code == 2
    assert error_lines(result) == [f"nwsyslog: {path}:7: netwrix.auth.password_file: {secret} is empty "
                                   "(the password is its first line)"]  # fmt: skip


def test_a_missing_password_file_is_refused_naming_it(tmp_path: Path) -> None:
    secret = tmp_path / "nope"
    path = write(tmp_path, QUIET + f"netwrix:\n  auth: {{username: svc, password_file: {secret}}}\n")
    (line,) = error_lines(check(path))
    assert line == f"nwsyslog: {path}:4: netwrix.auth.password_file: cannot read {secret}: No such file or directory"


def test_a_readable_password_file_is_used_and_not_printed(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret-value\n")
    path = write(tmp_path, QUIET + f"netwrix:\n  auth: {{username: svc, password_file: {secret}}}\n")
    result = check(path)
    assert result.exit_code == 0, result.output
    assert f"password from {secret}" in result.stdout and "s3cret" not in result.output


# --- Ports ---------------------------------------------------------------------------------------


def test_free_ports_are_bound_released_and_listed(tmp_path: Path) -> None:
    udp, tcp, metrics = (_free("udp"), _free("tcp"), _free("tcp"))
    path = write(
        tmp_path,
        f"listeners: [udp://127.0.0.1:{udp}, tcp://127.0.0.1:{tcp}]\nmetrics: {{listen: 127.0.0.1:{metrics}}}\n",
    )
    result = check(path)
    assert result.exit_code == 0, result.output
    assert (
        f"  ports free (bound and released): udp://127.0.0.1:{udp}, tcp://127.0.0.1:{tcp}, "
        f"metrics.listen 127.0.0.1:{metrics}"
    ) in result.stdout
    with socket.socket() as again:  # released: the service can have it
        again.bind(("127.0.0.1", metrics))


def test_a_taken_metrics_port_names_metrics_listen_and_the_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = write(tmp_path, f"listeners: [udp://127.0.0.1:0]\nmetrics:\n  listen: 127.0.0.1:{port}\n")
        result = check(path)
    assert result.exit_code == 2
    (line,) = error_lines(result)
    assert line.startswith(
        f"nwsyslog: {path}:3: metrics.listen: 127.0.0.1:{port}: TCP port {port} is already taken by pid {os.getpid()} ("
    )
    assert line.endswith("; the service could not start")


def test_a_taken_listener_port_and_two_keys_naming_one_port_are_both_reported(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        udp = taken.getsockname()[1]
        tcp = _free("tcp")
        path = write(
            tmp_path,
            f"listeners:\n  - udp://127.0.0.1:{udp}\n  - tcp://127.0.0.1:{tcp}\nmetrics: {{listen: 127.0.0.1:{tcp}}}\n",
        )
        result = check(path)
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"nwsyslog: {path}:2: listeners[0]: udp://127.0.0.1:{udp}: UDP port {udp} is already taken by pid "
        f"{os.getpid()} ({_cmdline()}); the service could not start",
        f"nwsyslog: {path}:4: metrics.listen: 127.0.0.1:{tcp}: TCP port {tcp} is also used by listeners[1] "
        f"(tcp://127.0.0.1:{tcp})",
    ]


def test_an_address_not_on_this_machine_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "listeners: [udp://192.0.2.1:5514]\nmetrics: {listen: null}\n")
    (line,) = error_lines(check(path))
    assert (
        line == f"nwsyslog: {path}:1: listeners[0]: udp://192.0.2.1:5514: 192.0.2.1 is not an address of this machine"
    )


def test_a_privileged_port_without_the_capability_is_a_warning_not_an_error(tmp_path: Path) -> None:
    """Port 514 needs root or CAP_NET_BIND_SERVICE, which the systemd unit grants: check-config
    run without it says so and passes. (As root, the capability is dropped for the run.)"""
    if Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text().strip() == "0":
        pytest.skip("every port is unprivileged on this machine")
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("no setpriv to drop CAP_NET_BIND_SERVICE with")
        prefix = [setpriv, "--bounding-set", "-net_bind_service", "--"]
    path = write(tmp_path, "listeners: [udp://127.0.0.1:514]\nmetrics: {listen: null}\n")
    proc = subprocess.run(
        [*prefix, sys.executable, "-m", "ingestor.cli", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    if proc.returncode == 0 and "warning:" not in proc.stderr:
        pytest.skip("this process may bind port 514 anyway")
    assert proc.returncode == 0, proc.stderr
    assert (
        "warning: listeners[0]: udp://127.0.0.1:514: UDP port 514 needs root or CAP_NET_BIND_SERVICE, "
        "which this process lacks"
    ) in proc.stderr


def _free(proto: str) -> int:
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cmdline() -> str:
    args = Path("/proc/self/cmdline").read_bytes().rstrip(b"\0").decode().split("\0")
    shown = " ".join(" ".join(args).split())
    return shown if len(shown) <= 100 else shown[:99] + "…"


# --- Rule files ----------------------------------------------------------------------------------

RULE = """\
pack: site
rules:
  - id: site.app.login
    description: App logons
    match:
      program: app
      regex: {regex}
    record: {{Action: Successful Logon, ObjectType: App, Who: "{who}", What: app}}
    examples:
      - line: "Mar  1 00:00:00 h app[1]: login user=alice"
        record: {{Who: alice}}
"""


def _rules_config(tmp_path: Path, *bodies: str) -> Path:
    folders = []
    for index, body in enumerate(bodies):
        folder = tmp_path / f"rules{index}"
        folder.mkdir()
        (folder / "app.yaml").write_text(body)
        folders.append(str(folder))
    return write(tmp_path, QUIET + f"rules: {{paths: [{', '.join(folders)}]}}\n")


def test_a_pcre_named_group_gets_the_python_spelling(tmp_path: Path) -> None:
    path = _rules_config(tmp_path, RULE.format(regex="'user=(?<user>\\S+)'", who="{user}"))
    result = check(path)
    assert result.exit_code == 2
    (line,) = error_lines(result)
    assert f"{tmp_path / 'rules0' / 'app.yaml'}:7: rules[0].match.regex: rule 'site.app.login': invalid regex" in line
    assert line.endswith("; Python spells a named group (?P<name>...), not (?<name>...)")


def test_a_double_quoted_regex_whose_backslashes_yaml_ate_gets_a_hint(tmp_path: Path) -> None:
    path = _rules_config(tmp_path, RULE.format(regex='"user=(?P<user>\\S+)"', who="{user}"))
    (line,) = error_lines(check(path))
    assert "app.yaml:7: YAML syntax: found unknown escape character 'S'" in line
    assert "write a regex in single quotes ('\\d+') or as a block scalar (|)" in line


def test_a_double_quoted_word_boundary_that_became_a_backspace_is_refused(tmp_path: Path) -> None:
    path = _rules_config(tmp_path, RULE.format(regex='"\\buser=(?P<user>[a-z]+)"', who="{user}"))
    (line,) = error_lines(check(path))
    assert "rules[0].match.regex: rule 'site.app.login': the regex holds a backspace character, YAML's \\b" in line
    assert "write it in single quotes" in line


def test_a_template_naming_a_group_the_regex_lacks_says_which_it_has(tmp_path: Path) -> None:
    path = _rules_config(tmp_path, RULE.format(regex="'user=(?P<user>\\S+) from (\\S+)'", who="{usr}"))
    (line,) = error_lines(check(path))
    assert "rules[0].record.Who: rule 'site.app.login': uses {usr}, which neither the regex captures" in line
    assert "; did you mean {user}?" in line
    assert "; the regex has groups without a name: name the one meant, (?P<name>...)" in line
    assert line.endswith("(the regex captures user)")


def test_every_rule_file_error_is_reported_with_the_configuration_errors(tmp_path: Path) -> None:
    path = _rules_config(
        tmp_path,
        RULE.format(regex="'user=(?<user>\\S+)'", who="{user}"),
        RULE.format(regex="'user=(?P<user>\\S+)'", who="{usr}").replace("site.app.login", "site.app.other"),
    )
    path.write_text(path.read_text() + "timezone: Mars/Olympus\n")
    result = check(path)
    assert result.exit_code == 2
    lines = error_lines(result)
    assert len(lines) == 3, lines
    assert f"{path}:4: timezone:" in lines[0]
    assert "rules0" in lines[1] and "(?P<name>...)" in lines[1]
    assert "rules1" in lines[2] and "{usr}" in lines[2]


def test_test_rules_shows_the_hints_too(tmp_path: Path) -> None:
    folder = _rules_config(tmp_path, RULE.format(regex="'user=(?<user>\\S+)'", who="{user}")).parent / "rules0"
    result = CliRunner().invoke(main, ["test-rules", str(folder)])
    assert result.exit_code == 2
    assert "Python spells a named group (?P<name>...)" in result.stderr


# --- --connect -----------------------------------------------------------------------------------


def _connect_config(tmp_path: Path, url: str, auth: str = "", tls: str = "") -> Path:
    return write(tmp_path, QUIET + f"netwrix:\n  url: {url}\n" + auth + tls)


@pytest.mark.parametrize("scheme", ["basic", "digest", "ntlm"])
def test_connect_proves_url_pinned_certificate_and_credentials_without_writing(
    tmp_path: Path, emulator: EmulatorFactory, scheme: str
) -> None:
    server = emulator(tls=True, user=("svc", "right"), auth_scheme=scheme)
    assert server.cert is not None
    pin = colon_hex(server.cert.sha256)
    path = _connect_config(
        tmp_path,
        server.base_url,
        "  auth: {username: svc, password: right}\n",
        f'  tls: {{mode: thumbprint, thumbprint: "{pin}"}}\n',
    )
    result = check(path, "--connect")
    assert result.exit_code == 0, result.output
    port = server.port
    assert result.stdout.splitlines()[-6:] == [
        f"connect: {server.base_url}/netwrix/api/v1/activity_records/search?format=json&count=1 "
        "(a search that matches nothing; no record is written)",
        f"  reached the server at 127.0.0.1:{port}",
        f"  TLS: the certificate matches the pinned thumbprint {pin}",
        f"  credentials accepted ({scheme} as svc)",
        "  the account may read activity records (the search answered 200)",
        "  not proven: that the account may write records (the Contributor role)",
    ]
    assert server.emulator.store.total == 0, "nothing was written"


def test_connect_with_a_wrong_password_is_a_401_naming_netwrix_auth(tmp_path: Path, emulator: EmulatorFactory) -> None:
    server = emulator(user=("svc", "right"))
    path = _connect_config(tmp_path, server.base_url, "  auth:\n    username: svc\n    password: wrong\n")
    result = check(path, "--connect")
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"nwsyslog: {path}:5: netwrix.auth: --connect: the server refused the credentials (HTTP 401 to BASIC as "
        "svc; it offers BASIC): check netwrix.auth (user name, password, method)"
    ]
    assert f"  reached the server at 127.0.0.1:{server.port}" in result.stdout
    assert "no TLS (http://)" in result.stdout and "credentials accepted" not in result.stdout


def test_connect_with_a_thumbprint_that_does_not_match_sends_nothing(tmp_path: Path, emulator: EmulatorFactory) -> None:
    server = emulator(tls=True, user=("svc", "right"))
    wrong = "AB:" * 19 + "AB"
    path = _connect_config(
        tmp_path,
        server.base_url,
        "  auth: {username: svc, password: right}\n",
        f'  tls:\n    mode: thumbprint\n    thumbprint: "{wrong}"\n',
    )
    result = check(path, "--connect")
    assert result.exit_code == 2
    (line,) = error_lines(result)
    assert line.startswith(f"nwsyslog: {path}:8: netwrix.tls.thumbprint: --connect: 127.0.0.1: certificate thumbprint")
    assert f"does not match the configured {wrong}; nothing was sent" in line
    assert server.emulator.stats["requests"] == 0, "not one HTTP byte reached the server"


def test_connect_to_an_untrusted_certificate_shows_its_thumbprint(tmp_path: Path, emulator: EmulatorFactory) -> None:
    server = emulator(tls=True)
    assert server.cert is not None
    result = check(_connect_config(tmp_path, server.base_url), "--connect")
    assert result.exit_code == 2
    (line,) = error_lines(result)
    assert "netwrix.tls: --connect: " in line and "the TLS certificate is not trusted (self-signed certificate)" in line
    assert f"SHA-256 thumbprint {colon_hex(server.cert.sha256)}" in line


def test_connect_with_nothing_listening_is_connection_refused(tmp_path: Path) -> None:
    port = _free("tcp")
    path = _connect_config(tmp_path, f"https://127.0.0.1:{port}")
    result = check(path, "--connect")
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"nwsyslog: {path}:4: netwrix.url: --connect: 127.0.0.1:{port}: connection refused: nothing listens there "
        "(wrong host or port, the Netwrix service stopped, or a firewall rejecting)"
    ]


def test_connect_to_a_wrong_path_is_a_404_naming_write_path(tmp_path: Path, emulator: EmulatorFactory) -> None:
    server = emulator()
    path = _connect_config(tmp_path, server.base_url + "\n  write_path: /api/activity_records/")
    (line,) = error_lines(check(path, "--connect"))
    assert "netwrix.write_path: --connect: " in line and "answered 404: no such endpoint" in line
