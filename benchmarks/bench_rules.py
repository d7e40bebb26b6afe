"""Input-path figure: parse + map lines/s on one core, with 10 rules and with 1,000 rules.

    python3 benchmarks/bench_rules.py [--seconds 3] [--corpus tests/corpus] [--reference]

The input is a mixed corpus of real lines: every `.log` file under the vendored corpus
`tests/corpus` (Wazuh, Elastic, Beats, fail2ban, syslog-ng, rsyslog, an OpenSSH server's auth
log, ...) plus the built-in packs' golden logs, shuffled with a fixed seed. "Parse + map" is
what the service does per received message: `Pipeline.handle()`, the listeners' handler:
`parse_syslog()`, `RuleSet.match()`, and for a matching line its rule's record writer
(`ingestor.record_writer`), which maps the match to its Activity Record and writes it, in the
same step, as the XML fragment that goes into a request body: the service has no separate map
step, so these figures include serialization.
With `--reference`, a match is mapped by the general path instead, `Match.wire()` (the record's
checked wire fields, what `record_fields()` gives for the ActivityRecord), without serializing.

- 10 rules: the built-in rules most of the corpus lines hit.
- 1,000 rules: the same 10 plus 990 generated user rules (half keyed on Cisco mnemonics, half
  on programs, one in fifty keyed on neither but gated by a literal), as a large site's rule
  folder would be. The lines and the rules that match them are the same, so the ratio
  1,000/10 isolates what the rule count costs (target >= 0.8).
- all built-in rules: the rate with the shipped packs, what a default install runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

# The checkout's code, not an installed copy (which may be older).
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingestor.config import RecordFieldsConfig  # noqa: E402
from ingestor.errors import RenderError  # noqa: E402
from ingestor.netwrix.encoding import Encoder, XmlEncoder  # noqa: E402
from ingestor.netwrix.records import RecordDefaults  # noqa: E402
from ingestor.pipeline import Pipeline  # noqa: E402
from parsers.rules.engine import Rule, RuleSet, build_ruleset, compile_pack  # noqa: E402
from parsers.rules.loader import builtin_dir, load_packs, load_ruleset  # noqa: E402
from parsers.syslog import parse_syslog  # noqa: E402
from parsers.yamlfile import load_yaml  # noqa: E402

SEED = 20261123
CORPUS = ROOT / "tests" / "corpus"


def corpus_lines(corpus: Path) -> list[bytes]:
    files = sorted(corpus.rglob("*.log")) + sorted(builtin_dir().glob("*/tests/*.log"))
    lines = [line for f in files for line in f.read_bytes().splitlines() if line.strip()]
    random.Random(SEED).shuffle(lines)
    return lines


def generated_rules(count: int) -> list[Rule]:
    """`count` plausible user rules on programs and mnemonics the corpus mostly does not use."""
    rules = []
    for i in range(count):
        if i % 50 == 49:
            match = f"{{contains: 'SITE-EVENT-{i}', regex: 'SITE-EVENT-{i} user=(?P<user>\\S+)'}}"
        elif i % 2:
            match = f"{{program: app{i}, regex: '^user (?P<user>\\S+) did (?P<what>\\S+)'}}"
        else:
            match = f"{{mnemonic: SITE{i}-5-EVENT, regex: 'by (?P<user>\\S+)'}}"
        rules.append(
            f"""  - id: site.rule{i}
    description: generated rule {i}
    match: {match}
    record: {{Action: Modified, ObjectType: Site object, Who: "{{user}}", What: site}}
    examples: [{{line: "x", unmatched: true}}]
"""
        )
    text = "pack: site\nrules:\n" + "".join(rules)
    return compile_pack(load_yaml("generated.yaml", text))


def ten_rules(lines: list[bytes]) -> RuleSet:
    full = load_ruleset()
    hits: Counter[str] = Counter()
    for line in lines:
        match = full.match(parse_syslog(line))
        if match is not None:
            hits[match.rule.id] += 1
    top = {rule_id for rule_id, _ in hits.most_common(10)}
    return RuleSet(tuple(r for r in full.rules if r.id in top))


def thousand_rules(ten: RuleSet) -> RuleSet:
    return build_ruleset([list(ten.rules), generated_rules(1000 - len(ten))])


def measure(
    ruleset: RuleSet, lines: list[bytes], seconds: float, encoder: Encoder | None = None
) -> tuple[float, int, int]:
    """Lines/s of the fastest of repeated passes over `lines` for `seconds` (on a shared machine
    the fastest pass is the least disturbed one); also the records and unmatched lines of a pass.

    With `encoder`, each line goes through `Pipeline.handle`, the listeners' handler (parse,
    match, its rule's record writer, counters), with a receive time per 32 lines as a listener
    gives one per read; without it, each line is parsed, matched and mapped to its record's
    wire fields (`Match.wire`)."""
    if encoder is not None:
        return _fastest(lines, seconds, _pipeline_pass(ruleset, lines, encoder))
    defaults = RecordDefaults.from_mapping({"DataSource": "bench"})
    source = "192.0.2.1"

    def one_pass() -> tuple[int, int]:
        records = unmatched = 0
        for line in lines:
            match = ruleset.match(parse_syslog(line, source=source))
            if match is None:
                unmatched += 1
                continue
            try:
                out = match.wire(defaults)
            except RenderError:
                continue
            if out is not None:
                records += 1
        return records, unmatched

    return _fastest(lines, seconds, one_pass)


def _pipeline_pass(ruleset: RuleSet, lines: list[bytes], encoder: Encoder) -> Callable[[], tuple[int, int]]:
    """One pass through `Pipeline.handle`, giving the records and unmatched lines it counted."""
    pipeline = Pipeline(ruleset, encoder, records=RecordFieldsConfig(data_source="bench"))
    handle, stats = pipeline.handle, pipeline.stats
    chunks = [lines[i : i + 32] for i in range(0, len(lines), 32)]
    peer = "192.0.2.1"

    def one_pass() -> tuple[int, int]:
        records, unmatched = stats.records, stats.unmatched
        for chunk in chunks:
            now = time.time()
            for line in chunk:
                handle(line, peer, now)
        pipeline.take()
        return stats.records - records, stats.unmatched - unmatched

    return one_pass


def _fastest(lines: list[bytes], seconds: float, one_pass: Callable[[], tuple[int, int]]) -> tuple[float, int, int]:
    """Lines/s of the fastest run of `one_pass` over `seconds` (at least one run), with the
    records and unmatched lines a pass counted."""
    best = float("inf")
    deadline = time.perf_counter() + seconds
    while True:
        started = time.perf_counter()
        records, unmatched = one_pass()
        best = min(best, time.perf_counter() - started)
        if time.perf_counter() >= deadline:
            return len(lines) / best, records, unmatched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--corpus", type=Path, default=None)
    parser.add_argument("--reference", action="store_true", help="map with Match.wire(), not the record writers")
    args = parser.parse_args()
    encoder = None if args.reference else XmlEncoder()
    label = "parse+map (Match.wire)" if args.reference else "parse+map+serialize (Pipeline.handle, XML)"
    corpus = args.corpus or CORPUS
    lines = corpus_lines(corpus)
    small = ten_rules(lines)
    large = thousand_rules(small)
    shipped = build_ruleset(p.rules for p in load_packs([builtin_dir()]))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"corpus: {len(lines)} lines from {corpus}")
    rates = {}
    for name, ruleset in (("10 rules", small), ("1,000 rules", large), ("built-in", shipped)):
        measure(ruleset, lines[:2000], 0.2, encoder)  # warm-up
        rate, records, unmatched = measure(ruleset, lines, args.seconds, encoder)
        rates[name] = rate
        print(
            f"{label}, {name:>11} ({len(ruleset)} loaded): {rate:,.0f} lines/s, "
            f"{rate * records / len(lines):,.0f} records/s "
            f"({records} records, {unmatched} unmatched per pass of {len(lines)} lines)"
        )
    print(f"ratio 1,000 rules / 10 rules: {rates['1,000 rules'] / rates['10 rules']:.2f}")


if __name__ == "__main__":
    main()
