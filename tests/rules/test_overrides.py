"""A user rule replacing a built-in one (same id) is said: by check-config, test-rules and the
service's log at start and reload. Two user rules with one id are an error naming both."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from click.testing import CliRunner

from ingestor.cli import main
from parsers.rules.loader import builtin_dir, load_packs
from tests.rules.test_packs import OVERRIDE

ROOT = Path(__file__).resolve().parents[2]


def builtin_source(rule_id: str) -> str:
    """file:line of the built-in rule with this id."""
    return next(r.source for p in load_packs([builtin_dir()]) for r in p.rules if r.id == rule_id)


def user_folder(tmp_path: Path, *files: tuple[str, str]) -> Path:
    folder = tmp_path / "site"
    folder.mkdir(exist_ok=True)
    for name, body in files:
        (folder / name).write_text(body)
    return folder


def config(tmp_path: Path, folder: Path, extra: str = "") -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(f"listeners: [udp://127.0.0.1:0]\nmetrics: {{listen: null}}\nrules: {{paths: [{folder}]}}\n{extra}")
    return path


def test_check_config_says_which_user_rule_replaces_which_builtin_one(tmp_path: Path) -> None:
    folder = user_folder(tmp_path, ("site.yaml", OVERRIDE))
    result = CliRunner().invoke(main, ["check-config", str(config(tmp_path, folder))])
    assert result.exit_code == 0, result.output
    line = (
        f"  rule linux.sshd.accepted from {folder / 'site.yaml'}:3 replaces the built-in one from "
        f"{builtin_source('linux.sshd.accepted')}"
    )
    assert line in result.stdout.splitlines()
    assert "rules/linux/" in line


def test_test_rules_says_it_too(tmp_path: Path) -> None:
    folder = user_folder(tmp_path, ("site.yaml", OVERRIDE))
    result = CliRunner().invoke(main, ["test-rules", str(folder)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == (
        f"rule linux.sshd.accepted from {folder / 'site.yaml'}:3 replaces the built-in one from "
        f"{builtin_source('linux.sshd.accepted')}"
    )
    assert result.stdout.splitlines()[-1].startswith("ok: 1 rules")


def test_no_override_no_line(tmp_path: Path) -> None:
    folder = user_folder(tmp_path, ("site.yaml", OVERRIDE.replace("id: linux.sshd.accepted", "id: site.sshd")))
    result = CliRunner().invoke(main, ["check-config", str(config(tmp_path, folder))])
    assert "replaces the built-in one" not in result.output


def test_two_user_files_with_one_id_are_an_error_naming_both(tmp_path: Path) -> None:
    same = OVERRIDE.replace("linux.sshd.accepted", "site.sshd")
    folder = user_folder(tmp_path, ("a.yaml", same), ("b.yaml", same.replace("pack: site", "pack: other")))
    for command in (["check-config", str(config(tmp_path, folder))], ["test-rules", str(folder)]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 2, result.output
        assert result.stderr.splitlines() == [
            f"nwsyslog: {folder / 'b.yaml'}:3: rules[0].id: rule 'site.sshd': the id is also defined at "
            f"{folder / 'a.yaml'}:3; only one user rule may have an id (reusing a built-in rule's id replaces "
            "that rule): rename or remove one"
        ]


def test_one_id_twice_in_one_user_file_is_an_error(tmp_path: Path) -> None:
    rule = OVERRIDE.split("rules:\n", 1)[1]
    folder = user_folder(tmp_path, ("site.yaml", OVERRIDE + rule))
    result = CliRunner().invoke(main, ["check-config", str(config(tmp_path, folder))])
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert f"{folder / 'site.yaml'}:12: rules[1].id: rule 'linux.sshd.accepted': the id is also defined at " in line
    assert f"{folder / 'site.yaml'}:3;" in line


def test_the_service_logs_the_override_at_start_and_at_reload(tmp_path: Path) -> None:
    folder = user_folder(tmp_path, ("site.yaml", OVERRIDE))
    path = config(tmp_path, folder, f"emulator: true\nspool: {{path: {tmp_path / 'spool.db'}}}\n")
    with subprocess.Popen(
        [sys.executable, "-m", "ingestor.cli", "run", "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    ) as proc:
        assert proc.stderr is not None and proc.stdout is not None
        stderr = proc.stderr
        log: list[str] = []
        reader = threading.Thread(target=lambda: log.extend(iter(stderr.readline, "")), daemon=True)
        reader.start()
        try:
            for line in proc.stdout:
                if "nwsyslog: spool" in line:
                    break
            expected = f"rule linux.sshd.accepted from {folder / 'site.yaml'}:3 replaces the built-in one from "
            assert [line for line in log if expected in line], log
            proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 30
            while not any("rules reloaded" in line for line in log):
                assert time.monotonic() < deadline, log
                time.sleep(0.1)
            overrides = [line for line in log if expected in line]
            assert len(overrides) == 2, log
            assert all(" INFO nwsyslog.rules: " in line for line in overrides)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
            reader.join(10)
