"""Input-path figure: parse + map lines/s on one core, with 10 rules and with 1,000 rules.

    python3 benchmarks/bench_rules.py [--seconds 3] [--corpus ../shared/corpus] [--reference]

The input is a mixed corpus of real lines: every `.log` file under the shared corpus (Wazuh,
Elastic, Beats, loghub OpenSSH, fail2ban, syslog-ng, rsyslog, ...) plus the built-in packs'
golden logs, shuffled with a fixed seed. "Parse + map" is what the service does per received
message: `parse_syslog()`, `RuleSet.match()`, and for a matching line its rule's record writer
(`ingestor.record_writer.writer_for`, as `Pipeline.handle` uses it), which maps the match to
its Activity Record and writes it, in the same step, as the XML fragment that goes into a
request body: the service has no separate map step, so these figures include serialization.
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
from pathlib import Path

# The checkout's code, not an installed copy (which may be older).
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingestor.encoding import Encoder, XmlEncoder  # noqa: E402
from ingestor.errors import RenderError  # noqa: E402
from ingestor.record_writer import Writer, writer_for  # noqa: E402
from ingestor.records import RecordDefaults  # noqa: E402
from parsers.rules.engine import Rule, RuleSet, build_ruleset, compile_pack  # noqa: E402
from parsers.rules.loader import builtin_dir, load_packs, load_ruleset  # noqa: E402
from parsers.syslog import parse_syslog  # noqa: E402
from parsers.yamlfile import load_yaml  # noqa: E402

SEED = 20261123


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
    """Lines/s over repeated passes; also the records and unmatched lines of one pass.

    Each line is parsed, matched and written into its request-body fragment by its rule's record
    writer, as the service does; without `encoder`, mapped to its record's wire fields
    (`Match.wire`) instead."""
    defaults = RecordDefaults.from_mapping({"DataSource": "bench"})
    writers: dict[Rule, Writer] = {}
    records = unmatched = 0
    done = 0
    started = time.perf_counter()
    deadline = started + seconds
    source = "192.0.2.1"
    first = True
    while True:
        for line in lines:
            match = ruleset.match(parse_syslog(line, source=source))
            if match is None:
                unmatched += first
                continue
            try:
                if encoder is None:
                    out: object = match.wire(defaults)
                else:
                    write = writers.get(match.rule)
                    if write is None:
                        write = writers[match.rule] = writer_for(match.rule, encoder, defaults)
                    out = write(match)
            except RenderError:
                continue
            if out is not None:
                records += first
        done += len(lines)
        first = False
        if time.perf_counter() >= deadline:
            break
    return done / (time.perf_counter() - started), records, unmatched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--corpus", type=Path, default=None)
    parser.add_argument("--reference", action="store_true", help="map with Match.wire(), not the record writers")
    args = parser.parse_args()
    encoder = None if args.reference else XmlEncoder()
    label = "parse+map (Match.wire)" if args.reference else "parse+map+serialize (record writers, XML)"
    corpus = args.corpus
    if corpus is None:
        here = Path(__file__).resolve().parent.parent
        corpus = next(p / "shared" / "corpus" for p in here.parents if (p / "shared" / "corpus").is_dir())
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
