"""Precision guard: corpus lines that are not audit events make no record.

The list is data (`tests/corpus/non-events.tsv`, written by
`tests/corpus/nwsyslog/list_non_events.py` from message families an auditor does not want in
Netwrix: scanner noise, PAM summaries of lines already recorded, disconnects naming only an
address, service sessions, network telemetry). Every listed line must come out unmatched or
dropped (counted) under the built-in packs as a default installation loads them; the optional
cisco_ios_security pack, once enabled, is where the telemetry goes.
"""

from __future__ import annotations

import collections
import csv

import pytest

from parsers.rules.loader import load_ruleset
from parsers.rules.testing import ExplainOptions, explain
from tests.conftest import find_corpus

CORPUS = find_corpus()
LIST = CORPUS / "non-events.tsv"
OPTIONS = ExplainOptions()


def non_events() -> list[tuple[str, int, str, bytes]]:
    rows = []
    with LIST.open(newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            lines = (CORPUS / row["file"]).read_bytes().splitlines()
            rows.append((row["file"], int(row["line"]), row["family"], lines[int(row["line"]) - 1]))
    return rows


def test_the_list_is_current_and_covers_every_family():
    rows = non_events()
    families = collections.Counter(family for _, _, family, _ in rows)
    assert len(rows) > 400 and len(families) >= 10, families


def test_no_listed_non_event_makes_a_record():
    ruleset = load_ruleset()
    records = []
    for file, number, family, line in non_events():
        result = explain(ruleset, line, number, OPTIONS)
        if "record" in result:
            records.append(f"{file}:{number} [{family}] {result['rule']}: {line.decode(errors='replace')[:120]}")
    assert records == []


@pytest.mark.parametrize("family", ["cisco-acl-hit", "cisco-ips"])
def test_telemetry_maps_only_with_the_optional_security_pack(family):
    lines = [(n, line) for _, n, f, line in non_events() if f == family]
    assert lines, family
    default, enabled = load_ruleset(), load_ruleset(enable=["cisco_ios_security"])
    assert not any("record" in explain(default, line, n, OPTIONS) for n, line in lines)
    assert any("record" in explain(enabled, line, n, OPTIONS) for n, line in lines)
