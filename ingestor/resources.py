"""Where the files that ship with nwsyslog are: in a checkout and in an installed wheel alike."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent


def samples_dir() -> Path:
    """The folder of the sample logs, configurations and write bodies.

    A wheel installs `samples/` as the data package `ingestor.samples`; a checkout has it at the
    top of the tree (where `ingestor/samples` does not exist, so the import fails)."""
    try:
        return Path(str(importlib.resources.files("ingestor.samples")))
    except ModuleNotFoundError:
        return _CHECKOUT / "samples"


def sample_files() -> list[Path]:
    """Every shipped sample file, sorted by name (the package marker left out)."""
    return sorted(p for p in samples_dir().iterdir() if p.is_file() and p.suffix != ".py" and p.name != "README.md")
