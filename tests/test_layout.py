"""The output half (`ingestor/netwrix/`) knows nothing of syslog or of the service around it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NETWRIX = ROOT / "ingestor" / "netwrix"
# What the output half may import from this project: itself, the shared exception tree, and the
# failure bookkeeping the service's spool commits share with it (it imports nothing of the project).
ALLOWED = ("ingestor.netwrix", "ingestor.errors", "ingestor.trouble")
PROJECT = ("ingestor", "parsers", "rules")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in a module of `ingestor/netwrix/`."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.append((node.lineno, module))
            # `from . import x` / `from .. import x` name modules too.
            if not node.module:
                names += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return names


def outside_imports() -> list[str]:
    found = []
    for path in sorted(NETWRIX.rglob("*.py")):
        for line, module in imported_modules(path):
            inside_project = module.split(".")[0] in PROJECT
            if inside_project and module != "ingestor" and not module.startswith(ALLOWED):
                found.append(f"{path.relative_to(ROOT)}:{line}: imports {module}")
    return found


def test_the_output_half_imports_only_itself_and_the_exception_tree() -> None:
    assert {"client.py", "records.py", "sink.py"} <= {p.name for p in NETWRIX.glob("*.py")}
    assert outside_imports() == []


def test_the_import_check_sees_a_forbidden_import(tmp_path, monkeypatch) -> None:
    """The check itself: a module of the output half that imported the parser would be named."""
    fake = tmp_path / "ingestor" / "netwrix"
    fake.mkdir(parents=True)
    (fake / "leak.py").write_text("from ..pipeline import Pipeline\nimport parsers.syslog\nfrom ..errors import X\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "NETWRIX", fake)
    assert outside_imports() == [
        "ingestor/netwrix/leak.py:1: imports ingestor.pipeline",
        "ingestor/netwrix/leak.py:2: imports parsers.syslog",
    ]


def test_loading_the_output_half_loads_no_syslog_or_service_module() -> None:
    """At run time too: importing every output module (and the package `ingestor`, which the
    import passes through) leaves `parsers`, the listeners, the pipeline, the spool, the
    service and the CLI unloaded."""
    modules = sorted(f"ingestor.netwrix.{p.stem}" for p in NETWRIX.glob("*.py") if p.stem != "__init__")
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "import ingestor.netwrix.schema\n"
        "print('\\n'.join(sorted(m for m in sys.modules if m.split('.')[0] in ('ingestor', 'parsers', 'rules'))))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert "ingestor.netwrix.client" in loaded
    assert [m for m in loaded if m != "ingestor" and not m.startswith(ALLOWED)] == []
