"""Backoff: full-jitter delays stay within the capped exponential envelope."""

from __future__ import annotations

import pytest

from etl_core.adapters.backoff import NO_RETRY, Backoff


def test_delays_stay_under_the_exponential_ceiling_and_the_cap() -> None:
    backoff = Backoff(base_s=0.1, cap_s=1.0)
    for retry, ceiling in enumerate([0.1, 0.2, 0.4, 0.8, 1.0, 1.0]):
        assert all(0.0 <= backoff.delay(retry) <= ceiling for _ in range(200))


def test_delays_are_jittered_not_fixed() -> None:
    assert len({Backoff(base_s=1.0, cap_s=1.0).delay(3) for _ in range(20)}) > 1


async def test_pause_never_waits_less_than_the_servers_retry_after() -> None:
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    await Backoff(base_s=0.001, cap_s=0.001, sleep=record).pause(0, at_least=5.0)

    assert slept == [5.0]


def test_attempts_count_the_first_try() -> None:
    assert NO_RETRY.attempts == 1
    with pytest.raises(ValueError, match="attempts"):
        Backoff(attempts=0)


def test_a_budget_stops_retries_that_would_start_after_it() -> None:
    budget = Backoff(budget_s=10.0)

    assert budget.within_budget(elapsed_s=4.0, delay_s=5.0)
    assert not budget.within_budget(elapsed_s=6.0, delay_s=4.0)
    assert Backoff().within_budget(elapsed_s=1e9, delay_s=1e9)  # no budget: attempts decide
    with pytest.raises(ValueError, match="budget_s"):
        Backoff(budget_s=0)
