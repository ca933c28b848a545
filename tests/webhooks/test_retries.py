"""What an attempt's answer does to its delivery: 2xx delivers; 5xx, 408, 429 and transient
errors retry with doubling, capped, jittered waits while the retry window lasts; other answers
fail at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.settings import WebhookSettings
from service.webhooks.retries import Answer, Outcome, backoff, next_attempt

SETTINGS = WebhookSettings(backoff_seconds=5, max_backoff_seconds=60, retry_hours=1)
START = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        (Answer(status_code=200), Outcome.delivered),
        (Answer(status_code=204), Outcome.delivered),
        (Answer(status_code=500), Outcome.retry),
        (Answer(status_code=503), Outcome.retry),
        (Answer(status_code=408), Outcome.retry),
        (Answer(status_code=429), Outcome.retry),
        (Answer(status_code=301), Outcome.failed),
        (Answer(status_code=302), Outcome.failed),
        (Answer(status_code=400), Outcome.failed),
        (Answer(status_code=404), Outcome.failed),
        (Answer(status_code=410), Outcome.failed),
        (Answer(error="ConnectError: refused", transient=True), Outcome.retry),
        (Answer(error="address refused: loopback"), Outcome.failed),
    ],
)
def test_each_answer_has_its_outcome(answer: Answer, outcome: Outcome) -> None:
    assert answer.outcome() is outcome


def test_waits_double_from_the_first_backoff_up_to_the_cap() -> None:
    waits = [backoff(n, SETTINGS, 1.0).total_seconds() for n in range(1, 8)]
    assert waits == [5, 10, 20, 40, 60, 60, 60]
    assert backoff(10_000, SETTINGS, 1.0).total_seconds() == 60


@pytest.mark.parametrize("jitter", [0.5, 1.0, 1.5])
def test_jitter_scales_the_wait_by_half_to_one_and_a_half(jitter: float) -> None:
    assert next_attempt(2, START, START, SETTINGS, jitter) == START + timedelta(seconds=10 * jitter)


def test_random_jitter_stays_within_its_bounds() -> None:
    for _ in range(200):
        due = next_attempt(1, START, START, SETTINGS)
        assert due is not None
        assert START + timedelta(seconds=2.5) <= due <= START + timedelta(seconds=7.5)


def test_no_retry_is_due_after_the_retry_window_ends() -> None:
    late = START + timedelta(minutes=59, seconds=30)
    assert next_attempt(9, START, late, SETTINGS, 1.0) is None
    assert next_attempt(1, START, late, SETTINGS, 1.0) == late + timedelta(seconds=5)
