"""PodControl: the pod create the controller asks for, and what it reports to decide().

An in-memory API answers the pod POST the way the server would (created, 403,
422, 409 with another object's pod); the clock is injected, so the retry pacing
is checked without waiting.
"""

from __future__ import annotations

from typing import Any, cast

from resumable.kubeapi import ApiError, KubeApi, api_error
from resumable.v1alpha1 import ResumableBatch
from resumable_core.decision import PodCreate, PodPlan
from resumable_operator.podcontrol import PodControl

KEY = ("ns", "b")
PLAN = PodPlan(name="b-1", attempt=1, start_index=0, total_items=10)


class PodApi:
    """Answers pod POSTs with the next of ``answers`` (an ApiError, or None: created)."""

    def __init__(self, *answers: ApiError | None, existing_owner: str = "other") -> None:
        self.answers = list(answers)
        self.existing_owner = existing_owner
        self.posts = 0

    def request(self, method: str, path: str, **_: Any) -> Any:
        if method == "POST" and path == "/api/v1/namespaces/ns/pods":
            self.posts += 1
            answer = self.answers.pop(0) if self.answers else None
            if answer is not None:
                raise answer
            return {}
        if method == "GET" and path == "/api/v1/namespaces/ns/pods/b-1":
            return {"metadata": {"ownerReferences": [{"uid": self.existing_owner}]}}
        raise AssertionError(f"unexpected call {method} {path}")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def batch(*, active: str = "b-1", attempt: int = 1) -> ResumableBatch:
    body: dict[str, Any] = {
        "metadata": {"name": "b", "namespace": "ns", "uid": "u"},
        "spec": {
            "template": {
                "spec": {"serviceAccountName": "sa", "containers": [{"name": "w", "image": "w"}]}
            }
        },
        "status": {"activePod": active, "checkpoint": {"attempt": attempt}},
    }
    return ResumableBatch.model_validate(body)


def control(api: PodApi) -> tuple[PodControl, Clock]:
    clock = Clock()
    return PodControl(cast(KubeApi, api), clock=clock), clock


def test_a_pod_refused_for_now_is_tried_again_after_growing_delays_not_before() -> None:
    forbidden = api_error(403, 'pods "b-1" is forbidden: exceeded quota')
    api = PodApi(forbidden, forbidden, forbidden, None)
    pods, clock = control(api)
    waits = []
    for _ in range(3):
        report = pods.create(KEY, batch(), PLAN)
        assert report is not None
        assert (report.result, report.message) == ("retrying", f"403: {forbidden.message}")
        assert report.retry_in is not None
        waits.append(report.retry_in)
        assert pods.due_in(KEY) == report.retry_in
        clock.now += report.retry_in - 0.5
        assert pods.create(KEY, batch(), PLAN) is None  # not due yet: no call
        clock.now += 0.5
    assert waits == [1.0, 2.0, 4.0]
    assert api.posts == 3
    # Meanwhile the next decision is told the attempt's pod is on its way, refused for now.
    told = pods.report(KEY, batch(), set(), set())
    assert told == PodCreate("b-1", 1, "retrying", f"403: {forbidden.message}")
    assert pods.create(KEY, batch(), PLAN) == PodCreate("b-1", 1, "created")
    assert pods.report(KEY, batch(), set(), set()) is None
    assert pods.due_in(KEY) is None


def test_the_servers_retry_after_is_waited_when_longer_and_the_wait_is_capped() -> None:
    pods, _ = control(PodApi(api_error(429, "slow down", retry_after=30.0)))
    report = pods.create(KEY, batch(), PLAN)
    assert report is not None
    assert report.retry_in == 30.0
    pods, _ = control(PodApi(api_error(503, "busy", retry_after=9000.0)))
    report = pods.create(KEY, batch(), PLAN)
    assert report is not None
    assert report.retry_in == 300.0


def test_a_pod_refused_as_invalid_is_reported_and_never_retried() -> None:
    api = PodApi(api_error(422, 'Pod "b-1" is invalid'))
    pods, _ = control(api)
    report = pods.create(KEY, batch(), PLAN)
    assert report == PodCreate("b-1", 1, "refused", 'Pod "b-1" is invalid')
    assert pods.due_in(KEY) is None
    # Until decide() has recorded it (the status moves on), every pass is told.
    assert pods.report(KEY, batch(), set(), set()) == report
    assert pods.report(KEY, batch(active=""), set(), set()) is None
    assert pods.report(KEY, batch(), set(), set()) is None  # forgotten
    assert api.posts == 1


def test_a_name_another_objects_pod_holds_is_reported_taken_until_the_attempt_moves_on() -> None:
    pods, _ = control(PodApi(api_error(409, "already exists")))
    report = pods.create(KEY, batch(), PLAN)
    assert report is not None
    assert report.result == "taken"
    assert pods.report(KEY, batch(), set(), set()) == PodCreate("b-1", 1, "taken", report.message)
    assert pods.report(KEY, batch(active="b-2", attempt=2), set(), set()) is None


def test_an_earlier_create_of_ours_that_went_through_after_all_counts_as_created() -> None:
    pods, _ = control(PodApi(api_error(409, "already exists"), existing_owner="u"))
    assert pods.create(KEY, batch(), PLAN) == PodCreate("b-1", 1, "created")


def test_a_listed_pod_of_another_object_with_the_active_name_is_reported_taken() -> None:
    pods, _ = control(PodApi())
    told = pods.report(KEY, batch(), ours=set(), others={"b-1"})
    assert told is not None
    assert told.result == "taken"
    assert pods.report(KEY, batch(), ours={"b-1"}, others={"b-1"}) is None


def test_a_report_about_a_pod_now_listed_or_another_batch_of_the_name_is_dropped() -> None:
    forbidden = api_error(403, "forbidden")
    pods, _ = control(PodApi(forbidden, forbidden))
    pods.create(KEY, batch(), PLAN)
    assert pods.report(KEY, batch(), ours={"b-1"}, others=set()) is None
    pods.create(KEY, batch(), PLAN)
    other = batch()
    other.metadata.uid = "u2"  # deleted and created again under the same name
    assert pods.report(KEY, other, set(), set()) is None
