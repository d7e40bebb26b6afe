"""README's set-up commands: exactly two, and CI runs the test one as written."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_the_quick_start_has_one_run_and_one_test_set_up_command() -> None:
    setups = [c for c in quick_start_commands() if "install" in c]
    assert len(setups) == 2, setups
    run, test = setups
    assert run.endswith("nwsyslog run") and '".[test]"' in test and test.endswith("python -m pytest")


def test_ci_runs_exactly_the_readme_test_command() -> None:
    test = next(c for c in quick_start_commands() if '".[test]"' in c)
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test in ci_lines
