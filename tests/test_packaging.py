"""The built wheel and sdist carry everything the commands need, and the wheel works on its own.

Builds both from the checkout with `python -m build` (the sdist first, the wheel from it, as
a user's `pip install` of the sdist would), installs the wheel into a fresh virtual environment
and runs the commands there from a folder outside the checkout, so that nothing can come from
the source tree.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import ingestor

ROOT = Path(__file__).resolve().parents[1]
# The checkout's folders and where a wheel puts them.
WHEEL_PLACES = {"ingestor": "ingestor", "parsers": "parsers", "rules": "rules", "samples": "ingestor/samples"}

pytestmark = pytest.mark.slow


def run(*args: str | Path, cwd: Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600, **kwargs
    )  # type: ignore[call-overload]


def checkout_files() -> list[tuple[str, str]]:
    """(folder, path inside it) of every module, rule pack, golden log, schema and sample of
    the checkout's packaged folders."""
    return [
        (folder, path.relative_to(ROOT / folder).as_posix())
        for folder in WHEEL_PLACES
        for path in sorted((ROOT / folder).rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    ]


def shipped_files() -> list[str]:
    """What the wheel must hold: every checkout file at its place in the wheel."""
    return [f"{WHEEL_PLACES[folder]}/{inner}" for folder, inner in checkout_files()]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(wheel, sdist) built from the checkout (the wheel from the unpacked sdist)."""
    out = tmp_path_factory.mktemp("dist")
    proc = run(sys.executable, "-m", "build", "--outdir", out, ROOT, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (wheel,) = out.glob("nwsyslog-*.whl")
    (sdist,) = out.glob("nwsyslog-*.tar.gz")
    return wheel, sdist


@pytest.fixture(scope="module")
def venv(built: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the built wheel (and its dependencies) installed."""
    where = tmp_path_factory.mktemp("venv")
    proc = run(sys.executable, "-m", "venv", "--without-pip", where, cwd=where)
    assert proc.returncode == 0, proc.stderr
    proc = run(sys.executable, "-m", "pip", "--python", where / "bin" / "python", "install", built[0], cwd=where)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return where


def test_the_wheel_holds_every_module_pack_golden_log_schema_and_sample(built: tuple[Path, Path]) -> None:
    names = set(zipfile.ZipFile(built[0]).namelist())
    missing = [name for name in shipped_files() if name not in names]
    assert missing == []
    assert "ingestor/netwrix/schema/activity_records.xsd" in names
    assert {"rules/linux/linux.yaml", "rules/privileged/tests/test-sudo-su.log-expected.jsonl"} <= names
    assert "ingestor/samples/cisco-ios.log" in names
    # No top-level `samples` package and nothing of the test suite in site-packages.
    assert not any(n.startswith(("samples/", "tests/")) for n in names)
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)


def test_the_sdist_holds_the_same_sources_and_data(built: tuple[Path, Path]) -> None:
    with tarfile.open(built[1]) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    wanted = [f"{folder}/{inner}" for folder, inner in checkout_files()]  # the sdist keeps the checkout's layout
    assert [name for name in wanted if name not in names] == []
    assert {"pyproject.toml", "README.md", "LICENSE"} <= names


def test_the_installed_wheel_runs_its_commands_outside_the_checkout(venv: Path, tmp_path: Path) -> None:
    nwsyslog = venv / "bin" / "nwsyslog"

    version = run(nwsyslog, "--version", cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    count_rules = "from parsers.rules.loader import load_ruleset; print(len(load_ruleset().rules))"
    rules = run(venv / "bin" / "python", "-c", count_rules, cwd=tmp_path)
    count = int(rules.stdout)
    assert count > 50
    assert version.stdout.strip() == (
        f"nwsyslog {ingestor.__version__} (Python {platform.python_version()}, {count} built-in rules)"
    )

    tested = run(nwsyslog, "test-rules", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr
    assert tested.stdout.splitlines()[-1].startswith("ok: ")  # every pack, the optional ones too

    listed = run(nwsyslog, "samples", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    paths = [Path(line) for line in listed.stdout.splitlines()]
    assert {p.name for p in paths} >= {"cisco-ios.log", "linux.log", "sudo-su.log", "lab.yaml", "activity-records.xml"}
    assert all(p.is_file() and venv in p.parents for p in paths), paths

    sample = run(nwsyslog, "samples", "cisco-ios.log", cwd=tmp_path).stdout.strip()
    explained = run(nwsyslog, "parse", "--explain", sample, cwd=tmp_path)
    assert explained.returncode == 0, explained.stderr
    rows = [json.loads(line) for line in explained.stdout.splitlines()]
    assert len(rows) == len(Path(sample).read_text().splitlines())
    records = [row["record"] for row in rows if "record" in row]
    assert records and all(r["Who"] and r["Action"] and r["Where"] for r in records)

    # The configuration the samples folder ships is valid where it is installed.
    checked = run(nwsyslog, "check-config", Path(sample).with_name("lab.yaml"), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    unknown = run(nwsyslog, "samples", "nope.log", cwd=tmp_path)
    assert unknown.returncode == 2 and "cisco-ios.log" in unknown.stderr
