"""The fault matrix, short form (tests/e2e/fault_matrix.py runs the long one): for every fault,
every record sent is delivered, quarantined with a reason, or kept in the spool. None is lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingestor.loop import run

from .fault_matrix import run_scenario as run_one
from .fault_matrix import scenarios

SHORT = {s.name: s for s in scenarios(outage=3.0, latency_ms=2000)}


@pytest.mark.parametrize("name", list(SHORT))
def test_no_record_is_lost(tmp_path: Path, name: str) -> None:
    scenario = SHORT[name]
    result = run(run_one(scenario, tmp_path, count=400, seconds=1.5, timeout=60))
    assert result.injected > 0, "the fault must actually strike"
    assert result.lost == 0, result
    if scenario.expect_delivery:
        assert result.delivered == result.sent and result.kept == 0, result
    else:
        assert result.delivered == 0 and result.kept == result.sent, "refused: nothing sent, everything kept"
    # Only a reply lost after the server stored a batch can duplicate it; none of these faults
    # does that (the reset cuts the request before the server has it all).
    assert result.duplicated == 0, result
