"""call_with_retries: how long a write keeps trying while the API server is away.

The clock and sleep are a simulated pair, so each case runs in no time and the
jitter's worst draws can be forced (random.uniform returning its upper bound).
"""

from __future__ import annotations

import random

import pytest

from resumable.kubeapi import ApiError, api_error, call_with_retries


class SimulatedTime:
    """A monotonic clock that only moves when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class ServerAwayUntil:
    """A call that fails with ``status`` until the simulated clock reaches ``back_at``."""

    def __init__(
        self,
        time_: SimulatedTime,
        back_at: float,
        status: int = 503,
        retry_after: float | None = None,
    ) -> None:
        self.time = time_
        self.back_at = back_at
        self.status = status
        self.retry_after = retry_after
        self.calls: list[float] = []

    def __call__(self) -> str:
        self.calls.append(self.time.now)
        if self.time.now < self.back_at:
            raise api_error(self.status, "ServiceUnavailable", retry_after=self.retry_after)
        return "saved"


@pytest.fixture
def worst_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every backoff draws its longest delay."""
    monkeypatch.setattr(random, "uniform", lambda low, high: high)


def test_a_server_back_before_the_deadline_is_reached_even_when_backoff_would_overshoot(
    worst_jitter: None,
) -> None:
    t = SimulatedTime()
    # Backoffs of 0.4, 0.8, 1.6 leave the clock at 2.8; the next draw (3.2) would
    # overshoot a 3 s deadline, so it is cut to 0.2 and the last try lands at 3.0.
    call = ServerAwayUntil(t, back_at=2.9)
    assert call_with_retries(call, deadline=3.0, sleep=t.sleep, clock=t.clock) == "saved"
    assert call.calls[-1] == pytest.approx(3.0)
    assert t.sleeps[-1] == pytest.approx(0.2)


def test_a_server_away_past_the_deadline_gives_up_at_the_deadline(worst_jitter: None) -> None:
    t = SimulatedTime()
    call = ServerAwayUntil(t, back_at=100.0)
    with pytest.raises(ApiError) as raised:
        call_with_retries(call, deadline=3.0, sleep=t.sleep, clock=t.clock)
    assert raised.value.status == 503
    assert t.now == pytest.approx(3.0)  # never sleeps past the deadline
    assert call.calls[-1] == pytest.approx(3.0)  # and tries once more there


def test_retry_after_longer_than_the_time_left_gives_up_without_sleeping() -> None:
    t = SimulatedTime()
    call = ServerAwayUntil(t, back_at=100.0, status=429, retry_after=10.0)
    with pytest.raises(ApiError) as raised:
        call_with_retries(call, deadline=3.0, sleep=t.sleep, clock=t.clock)
    assert raised.value.status == 429
    assert t.sleeps == []
    assert len(call.calls) == 1


def test_retry_after_is_waited_for_when_it_fits() -> None:
    t = SimulatedTime()
    call = ServerAwayUntil(t, back_at=1.5, status=429, retry_after=1.5)
    assert call_with_retries(call, deadline=3.0, sleep=t.sleep, clock=t.clock) == "saved"
    assert t.sleeps[0] >= 1.5
    assert len(call.calls) == 2


def test_an_error_not_worth_retrying_is_raised_at_once() -> None:
    t = SimulatedTime()
    call = ServerAwayUntil(t, back_at=100.0, status=422)
    with pytest.raises(ApiError) as raised:
        call_with_retries(call, deadline=3.0, sleep=t.sleep, clock=t.clock)
    assert raised.value.status == 422
    assert len(call.calls) == 1
    assert t.sleeps == []
