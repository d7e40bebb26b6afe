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


def split_tables(text: str) -> list[int]:
    """Line numbers where a Markdown table goes on after a blank line without a header of its
    own (the blank line ends the table there, and the rest renders as text)."""
    lines = text.splitlines()
    found = []
    for i in range(2, len(lines)):
        if lines[i].startswith("|") and not lines[i - 1].strip() and lines[i - 2].startswith("|"):
            header = i + 1 < len(lines) and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", lines[i + 1].strip())
            if not header:
                found.append(i + 1)
    return found


def test_split_tables_are_found() -> None:
    assert split_tables("| a |\n|---|\n| 1 |\n\n| 2 |\n") == [5]
    assert split_tables("| a |\n|---|\n| 1 |\n\n| b |\n|---|\n") == []


def test_no_markdown_table_of_the_project_is_split_by_a_blank_line() -> None:
    files = [ROOT / "README.md", *sorted(ROOT.glob("*/README.md")), *sorted(ROOT.glob("*/*/SOURCES.md"))]
    assert ROOT / "samples" / "README.md" in files
    assert {str(f.relative_to(ROOT)): split_tables(f.read_text()) for f in files if split_tables(f.read_text())} == {}
