"""Coverage-guided fuzzing with atheris (libFuzzer) — a script, not part of the CI suite.

    python3 -m pip install atheris
    python3 tests/fuzz/atheris_harness.py framing -atheris_runs=1000000
    python3 tests/fuzz/atheris_harness.py rules   -atheris_runs=1000000
    python3 tests/fuzz/atheris_harness.py config  -atheris_runs=1000000

Targets (every other argument goes to libFuzzer: `-max_total_time=600`, `-jobs=2`, ...):

- framing: bytes split at a fuzzer-chosen point and fed to the TCP `Framer` (octet counting and
  LF framing), every frame parsed with `parse_syslog`; a frame never exceeds `max_message`, and
  the framer never holds more than that.
- rules: bytes parsed, matched against the built-in rule packs, the record built and encoded as
  XML; only `RenderError` may come out (counted by the service), and every fragment is
  well-formed XML holding exactly one `<Who>`.
- config: text loaded as a service configuration and as a rule pack; only `ConfigError`
  (file, line and reason for the user) may come out.

The seed corpus is made from tests/corpus (every log line), the samples and the built-in
rule packs, written to a temporary folder. A crash, an unexpected exception or a run longer
than `-timeout` (default 10 s here) stops the fuzzer with the input that caused it.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "corpus"
MAX_MESSAGE = 4096
sys.path.insert(0, str(ROOT))  # the checkout's code, not an installed copy

with atheris.instrument_imports():
    from lxml import etree

    import ingestor

    assert Path(ingestor.__file__).resolve().parent == ROOT / "ingestor", ingestor.__file__
    from ingestor.config import ServiceConfig
    from ingestor.errors import ConfigError, RenderError
    from ingestor.netwrix.encoding import XmlEncoder
    from ingestor.netwrix.records import RecordDefaults
    from parsers.framing import Framer
    from parsers.rules.engine import compile_pack
    from parsers.rules.loader import load_ruleset
    from parsers.syslog import parse_syslog
    from parsers.yamlfile import load_yaml

RULES = load_ruleset()
ENCODER = XmlEncoder()
DEFAULTS = RecordDefaults.from_mapping({"DataSource": "fuzz"})


def fuzz_framing(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    cut = fdp.ConsumeIntInRange(0, 64)
    rest = fdp.ConsumeBytes(fdp.remaining_bytes())
    framer = Framer(MAX_MESSAGE)
    for chunk in (rest[:cut], rest[cut:]):
        for frame in framer.feed(chunk):
            assert len(frame) <= MAX_MESSAGE, len(frame)
            parse_syslog(frame, source="192.0.2.1")
        assert framer.buffered <= MAX_MESSAGE + 11, framer.buffered  # its documented bound


def fuzz_rules(data: bytes) -> None:
    message = parse_syslog(data, source="192.0.2.1")
    match = RULES.match(message)
    if match is None:
        return
    try:
        core = match.core(DEFAULTS)
    except RenderError:
        return
    if core is None:
        return
    fragment = ENCODER.encode_core(core)
    root = etree.fromstring(fragment)
    assert len(root.findall("Who")) == 1, fragment


def fuzz_config(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    try:
        doc = load_yaml("<fuzz>", text)
    except ConfigError:
        return
    # pydantic's ValidationError (a ValueError) is what the service turns into a ConfigError.
    with contextlib.suppress(ValueError):
        ServiceConfig.model_validate(doc.data)
    with contextlib.suppress(ConfigError):
        compile_pack(doc)


TARGETS = {"framing": fuzz_framing, "rules": fuzz_rules, "config": fuzz_config}


def seed_corpus(target: str, folder: Path) -> None:
    """One file per seed: log lines for framing and rules, YAML files for config."""
    seeds: list[bytes] = []
    if target == "config":
        for path in [*ROOT.glob("samples/*.yaml"), *ROOT.glob("deploy/*.yaml"), *ROOT.glob("rules/*/*.yaml")]:
            seeds.append(path.read_bytes())
    else:
        for path in sorted([*CORPUS.rglob("*.log"), *ROOT.glob("samples/*.log")]):
            for line in path.read_bytes().splitlines():
                if line.strip():
                    # framing: the first byte picks the split point; LF and octet-counted frames.
                    seeds.append(line if target == "rules" else b"\x10" + line + b"\n" + b"%d " % len(line) + line)
    for i, seed in enumerate(seeds[:5000]):
        (folder / f"seed-{i:05d}").write_bytes(seed)


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(TARGETS)}}} [libFuzzer options]")
    target = sys.argv[1]
    with tempfile.TemporaryDirectory(prefix=f"nwsyslog-fuzz-{target}-") as tmp:
        seed_corpus(target, Path(tmp))
        args = [sys.argv[0], *sys.argv[2:]]
        if not any(a.startswith("-timeout=") for a in args):
            args.append("-timeout=10")
        if target == "config" and not any(a.startswith("-max_len=") for a in args):
            args.append("-max_len=2048")  # whole rule packs as inputs would run ~30 per second
        args.append(tmp)
        atheris.Setup(args, TARGETS[target])
        atheris.Fuzz()


if __name__ == "__main__":
    main()
