import random

import pytest

from ingestor.netwrix.retry import Backoff, Outcome, classify


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.DELIVERED),
        (204, Outcome.DELIVERED),
        (400, Outcome.REJECTED),
        (401, Outcome.HALT),
        (403, Outcome.HALT),
        (404, Outcome.HALT),
        (405, Outcome.HALT),
        (408, Outcome.RETRY),
        (413, Outcome.SPLIT),
        (429, Outcome.RETRY),
        (500, Outcome.RETRY),
        (502, Outcome.RETRY),
        (503, Outcome.RETRY),
        (504, Outcome.RETRY),
        (507, Outcome.RETRY),
        (302, Outcome.HALT),
        (418, Outcome.HALT),
    ],
)
def test_status_table(status, outcome):
    assert classify(status) is outcome


def test_backoff_grows_exponentially_and_is_capped():
    backoff = Backoff(base=0.5, factor=2.0, cap=4.0)
    rng = random.Random(1)
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (10, 4.0), (1000, 4.0)]:
        delays = [backoff.delay(attempt, rng=rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # full jitter spreads over the whole range


def test_retry_after_is_a_floor_but_never_above_the_cap():
    backoff = Backoff(base=0.1, factor=2.0, cap=5.0)
    assert backoff.delay(0, retry_after=3.0) >= 3.0
    assert backoff.delay(0, retry_after=60.0) == 5.0
