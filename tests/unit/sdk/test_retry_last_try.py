"""call_with_retries keeps its last try ``last_try`` seconds before the deadline.

The kube store gives each request only the time left before its write's
deadline (KubeApi.request's ``until``), so that try still gets its answer and no
try ends past the deadline. On a simulated clock whose jitter can be forced to
its worst draw; tests/reliability/test_kube_shutdown.py times the real thing.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from resumable.kubeapi import ApiError, api_error, call_with_retries


class SimulatedTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.calls: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def failing(self, *, retry_after: float | None = None) -> Any:
        def call() -> str:
            self.calls.append(self.now)
            raise api_error(0, "Connection refused", retry_after=retry_after)

        return call


@pytest.fixture
def worst_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: high)


def test_the_last_try_comes_last_try_seconds_before_the_deadline(worst_jitter: None) -> None:
    t = SimulatedTime()
    with pytest.raises(ApiError):
        call_with_retries(t.failing(), deadline=20.0, last_try=1.0, sleep=t.sleep, clock=t.clock)
    # Backoffs 0.4, 0.8, 1.6, 3.2, 5, 5 reach 16.0; the next 5 s would pass 19.0.
    assert t.calls[-1] == pytest.approx(19.0)
    assert t.now == pytest.approx(19.0)  # and it gives up there, not at 20


def test_near_the_deadline_one_more_try_is_made_then_it_gives_up(worst_jitter: None) -> None:
    t = SimulatedTime()
    with pytest.raises(ApiError):
        call_with_retries(t.failing(), deadline=0.5, last_try=1.0, sleep=t.sleep, clock=t.clock)
    assert t.calls == [0.0, 0.0]  # no busy loop on errors that come at once


def test_a_retry_after_that_fits_is_waited_for_and_its_try_is_the_last() -> None:
    t = SimulatedTime()
    with pytest.raises(ApiError):
        call_with_retries(
            t.failing(retry_after=2.5), deadline=3.0, last_try=1.0, sleep=t.sleep, clock=t.clock
        )
    assert t.sleeps == [2.5]
    assert t.calls == [0.0, 2.5]
