"""decide() for a batch labelled with a Kueue queue: wait for admission, yield on eviction.

The Workload is an observation (a WorkloadView) like the pods: each test builds
one as Kueue would leave it, feeds the decided status back (``settle``) and
checks what the operator is told to do with the pods and the Workload. The
manifests and their reading are tested at the end (resumable_core.kueue).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from resumable.v1alpha1 import ResumableBatch
from resumable_core import conditions as cond
from resumable_core import kueue, objects
from resumable_core.decision import Placement, PodCreate, WorkloadPlan, WorkloadView
from resumable_core.policy import admission
from resumable_core.reconcile import decide
from tests.unit.operator.test_reconcile import (
    T0,
    failed,
    make_batch,
    messages,
    running,
    saved,
    settle,
    succeeded,
)

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
WL = kueue.workload_name(make_batch())
FLAVOR = Placement(
    node_selector={"pool": "batch"},
    tolerations=[{"key": "pool", "operator": "Equal", "value": "batch", "effect": "NoSchedule"}],
)
PENDING = WorkloadView(
    WL, pending_message="couldn't assign flavors to pod set main: insufficient quota"
)
ADMITTED = WorkloadView(
    WL, quota_reserved=True, admitted=True, cluster_queue="team-a", placement=FLAVOR
)
PREEMPTED = WorkloadView(
    WL,
    quota_reserved=True,
    admitted=True,
    evicted=True,
    evicted_reason="Preempted",
    evicted_message="Preempted to accommodate a workload (UID: u2, JobUID: j2)",
    preempted_message="Preempted to accommodate a workload (UID: u2, JobUID: j2) due to "
    "prioritization in the ClusterQueue",
)


def queued(*, queue: str = "team-a", **spec: Any) -> ResumableBatch:
    batch = make_batch(**spec)
    labels = {"kueue.x-k8s.io/queue-name": queue} if queue else {}
    return ResumableBatch.model_validate(
        {
            **batch.model_dump(by_alias=True),
            "metadata": {**batch.metadata.model_dump(), "labels": labels},
        }
    )


def suspended(d: Any) -> tuple[str, str]:
    found = cond.find(d.status.conditions, cond.SUSPENDED)
    assert found is not None
    return found.status, found.reason


def admitted_and_running(batch: ResumableBatch) -> None:
    settle(batch, decide(batch, [], T0, workload=PENDING))
    d = settle(batch, decide(batch, [], T0, workload=ADMITTED))
    assert d.create_pod is not None


# ------------------------------------------------------------------ waiting to be admitted


def test_a_queued_batch_creates_its_workload_and_starts_no_worker() -> None:
    batch = queued()
    d = settle(batch, decide(batch, [], T0, workload=WorkloadView(WL, exists=False)))
    assert d.create_pod is None
    assert d.workload == WorkloadPlan("create", WL)
    assert d.status.phase == "Queued"
    assert suspended(d) == ("True", "Queued")
    assert f"Waiting for admission by Kueue in LocalQueue team-a (Workload {WL}) at item 1/50" in (
        messages(d)
    )


def test_a_pending_workload_keeps_the_batch_queued_with_kueues_reason_and_nothing_more() -> None:
    batch = queued()
    settle(batch, decide(batch, [], T0, workload=WorkloadView(WL, exists=False)))
    d = settle(batch, decide(batch, [], T0, workload=PENDING))
    assert d.create_pod is None
    assert d.workload is None  # it exists: Kueue decides now
    found = cond.find(d.status.conditions, cond.SUSPENDED)
    assert found is not None
    assert "insufficient quota" in found.message
    assert d.events == []  # Queued was said once
    assert d.requeue_after is not None
    again = decide(batch, [], T0 + timedelta(seconds=5), workload=PENDING)
    assert again.status_changed is False


def test_admission_starts_the_worker_on_the_admitted_flavour() -> None:
    batch = queued()
    settle(batch, decide(batch, [], T0, workload=PENDING))
    d = settle(batch, decide(batch, [], T0, workload=ADMITTED))
    assert d.create_pod is not None
    assert d.create_pod.name == "b-1"
    assert d.placement == FLAVOR
    assert suspended(d) == ("False", "Admitted")
    assert "Admitted by ClusterQueue team-a (Workload " + WL + ")" in messages(d)
    pod = objects.build_pod(batch, d.create_pod, placement=d.placement)
    assert pod["spec"]["nodeSelector"] == {"pool": "batch"}
    assert pod["spec"]["tolerations"] == FLAVOR.tolerations


def test_parallel_workers_wait_for_one_admission_then_all_start() -> None:
    batch = queued(parallelism=3)
    d = settle(batch, decide(batch, [], T0, workload=PENDING))
    assert d.create_pod is None
    d = settle(batch, decide(batch, [], T0, workload=ADMITTED))
    assert d.create_pod is not None
    assert d.create_pod.slot == 0


def test_without_the_label_no_workload_is_asked_for_even_if_one_is_seen() -> None:
    batch = queued(queue="")
    d = decide(batch, [], T0, workload=WorkloadView(WL, exists=False))
    assert d.create_pod is not None
    assert d.workload is None
    assert d.placement is None


def test_the_local_runner_passes_no_view_and_a_labelled_batch_runs_at_once() -> None:
    batch = queued()
    d = decide(batch, [], T0)
    assert d.create_pod is not None
    assert d.workload is None


def test_with_the_integration_off_a_labelled_batch_waits_and_says_why() -> None:
    batch = queued()
    off = WorkloadView(WL, exists=False, unavailable="the operator runs without Kueue")
    d = settle(batch, decide(batch, [], T0, workload=off))
    assert d.create_pod is None
    assert d.workload is None
    found = cond.find(d.status.conditions, cond.SUSPENDED)
    assert found is not None
    assert found.message == "Cannot queue in Kueue: the operator runs without Kueue."


# ------------------------------------------------------------------------ eviction


def test_preemption_stops_the_worker_gracefully_and_counts_nothing() -> None:
    batch = queued()
    admitted_and_running(batch)
    saved(batch, 20)
    d = settle(batch, decide(batch, [running()], T0, workload=PREEMPTED))
    assert d.delete_pods == [("b-1", True)]  # SIGTERM, and its grace period to save
    assert d.create_pod is None
    assert d.workload is None  # the quota is held until the worker stopped
    assert d.status.phase == "Queued"
    assert (d.status.restarts, d.status.disruptions) == (0, 0)
    assert d.outcome is None
    (event,) = [e for e in d.events if e.reason == "Evicted"]
    assert "due to prioritization in the ClusterQueue" in event.message
    assert "resumes at item 21/50 or later" in event.message


def test_once_the_worker_stopped_the_evicted_workload_is_requeued_once() -> None:
    batch = queued()
    admitted_and_running(batch)
    saved(batch, 20)
    settle(batch, decide(batch, [running()], T0, workload=PREEMPTED))
    saved(batch, 23)  # its exit flush
    stopped = failed(code=143, reason="Error", deleting=True)
    d = settle(batch, decide(batch, [stopped], T0, workload=PREEMPTED))
    assert d.workload == WorkloadPlan(
        "requeue", WL, "Pending", "Preempted to accommodate a workload (UID: u2, JobUID: j2)"
    )
    assert (d.status.restarts, d.status.disruptions) == (0, 0)
    assert [e for e in d.events if e.reason == "Evicted"] == []  # said once
    # Kueue cleared the reservation: the Workload is pending again, nothing more to do.
    requeued = WorkloadView(WL, evicted=True, evicted_reason="Preempted")
    again = settle(batch, decide(batch, [stopped], T0, workload=requeued))
    assert again.workload is None
    assert again.create_pod is None


def test_readmitted_after_preemption_resumes_at_the_saved_item_with_no_restart() -> None:
    batch = queued()
    admitted_and_running(batch)
    saved(batch, 20)
    settle(batch, decide(batch, [running()], T0, workload=PREEMPTED))
    saved(batch, 23)
    stopped = failed(code=143, reason="Error", deleting=True)
    settle(batch, decide(batch, [stopped], T0, workload=PREEMPTED))
    d = settle(batch, decide(batch, [stopped], T0 + timedelta(seconds=30), workload=ADMITTED))
    assert d.create_pod is not None
    assert (d.create_pod.name, d.create_pod.start_index) == ("b-2", 23)
    assert d.status.restarts == 0
    assert "Resumed at item 24/50 after eviction by Kueue (attempt 2)" in messages(d)


@pytest.mark.parametrize(
    "view",
    [
        WorkloadView(WL, active=False, quota_reserved=True, admitted=True),
        WorkloadView(
            WL,
            quota_reserved=True,
            admitted=True,
            evicted=True,
            evicted_reason="ClusterQueueStopped",
            evicted_message="The ClusterQueue is stopped",
        ),
    ],
    ids=["deactivated", "cluster-queue-stopped"],
)
def test_deactivation_or_a_stopped_queue_stops_the_worker_like_a_preemption(
    view: WorkloadView,
) -> None:
    batch = queued()
    admitted_and_running(batch)
    d = settle(batch, decide(batch, [running()], T0, workload=view))
    assert d.delete_pods == [("b-1", True)]
    assert d.status.phase == "Queued"
    assert d.status.restarts == 0


# ---------------------------------------------------------------- releasing the quota


def test_the_batch_ending_finishes_its_workload_in_the_same_pass() -> None:
    batch = queued()
    admitted_and_running(batch)
    saved(batch, 50)
    batch.status.checkpoint.finished = True
    d = settle(batch, decide(batch, [succeeded()], T0, workload=ADMITTED))
    assert d.status.phase == "Succeeded"
    assert d.workload == WorkloadPlan("finish", WL, "Succeeded", "ResumableBatch b succeeded")
    done = WorkloadView(WL, quota_reserved=True, admitted=True, finished=True)
    assert decide(batch, [succeeded()], T0, workload=done).workload is None


def test_suspending_deletes_the_workload_once_the_worker_stopped() -> None:
    batch = queued()
    admitted_and_running(batch)
    batch.spec.suspend = True
    d = settle(batch, decide(batch, [running()], T0, workload=ADMITTED))
    assert d.delete_pods == [("b-1", True)]
    assert d.workload is None  # the worker still runs on the quota
    stopped = failed(code=143, deleting=True)
    d = settle(batch, decide(batch, [stopped], T0, workload=ADMITTED))
    assert d.workload == WorkloadPlan("delete", WL)
    assert d.status.phase == "Suspended"
    batch.spec.suspend = False
    d = settle(batch, decide(batch, [stopped], T0, workload=WorkloadView(WL, exists=False)))
    assert d.workload == WorkloadPlan("create", WL)  # queued afresh
    assert d.status.phase == "Queued"


def test_an_earlier_runs_finished_workload_is_replaced() -> None:
    batch = queued()
    done = WorkloadView(WL, finished=True)
    d = decide(batch, [], T0, workload=done)
    assert d.workload == WorkloadPlan("delete", WL)
    assert d.create_pod is None


# ------------------------------- refusals by the API server stay "wait and resume"


def test_an_admitted_batch_whose_pod_is_refused_by_a_quota_waits_not_fails() -> None:
    batch = queued()
    settle(batch, decide(batch, [], T0, workload=PENDING))
    settle(batch, decide(batch, [], T0, workload=ADMITTED))
    why = '403: pods "b-1" is forbidden: exceeded quota'
    report = PodCreate("b-1", 1, "retrying", why, retry_in=2.0)
    d = settle(batch, decide(batch, [], T0, create=report, workload=ADMITTED))
    assert d.status.phase == "Pending"
    assert not cond.is_true(d.status.conditions, cond.FAILED)
    assert d.create_pod is not None
    assert d.workload is None  # the admission stands


# ------------------------------------------------------------ the Workload's manifest


def test_the_workload_asks_for_the_template_times_parallelism_in_its_queue() -> None:
    batch = queued(parallelism=4)
    wl = kueue.build_workload(batch, "team-a", priority=None)
    assert wl["apiVersion"] == "kueue.x-k8s.io/v1beta2"
    assert wl["metadata"]["name"] == WL
    assert wl["metadata"]["ownerReferences"] == [objects.owner_reference(batch)]
    assert wl["metadata"]["labels"]["kueue.x-k8s.io/job-uid"] == "uid-1"
    (pod_set,) = wl["spec"]["podSets"]
    assert (pod_set["name"], pod_set["count"]) == ("main", 4)
    assert pod_set["template"]["spec"]["containers"][0]["command"] == ["work"]
    assert wl["spec"]["queueName"] == "team-a"
    assert "priorityClassRef" not in wl["spec"]


def test_the_workload_takes_its_priority_from_the_workload_priority_class_label() -> None:
    batch = queued()
    batch.metadata.model_extra["labels"]["kueue.x-k8s.io/priority-class"] = "high"  # type: ignore[index]
    assert kueue.priority_source(batch) == ("kueue.x-k8s.io", "WorkloadPriorityClass", "high")
    wl = kueue.build_workload(batch, "team-a", priority=1000)
    assert wl["spec"]["priorityClassRef"] == {
        "group": "kueue.x-k8s.io",
        "kind": "WorkloadPriorityClass",
        "name": "high",
    }
    assert wl["spec"]["priority"] == 1000


def test_a_workload_as_kueue_leaves_it_is_read_with_its_flavours_placement() -> None:
    obj = {
        "metadata": {"name": WL},
        "spec": {"active": True},
        "status": {
            "conditions": [
                {"type": "QuotaReserved", "status": "True", "reason": "QuotaReserved"},
                {"type": "Admitted", "status": "True", "reason": "Admitted"},
            ],
            "admission": {
                "clusterQueue": "team-a",
                "podSetAssignments": [{"name": "main", "flavors": {"cpu": "spot"}}],
            },
        },
    }
    flavors = {
        "spot": {"spec": {"nodeLabels": FLAVOR.node_selector, "tolerations": FLAVOR.tolerations}}
    }
    assert kueue.admitted_flavors(obj) == ["spot"]
    view = kueue.workload_view(obj, flavors)
    assert view == ADMITTED


def test_requeueing_clears_the_reservation_as_kueues_job_framework_does() -> None:
    obj = {
        "metadata": {"name": WL, "generation": 1},
        "status": {
            "conditions": [
                {"type": "QuotaReserved", "status": "True", "reason": "QuotaReserved"},
                {"type": "Admitted", "status": "True", "reason": "Admitted"},
                {"type": "Evicted", "status": "True", "reason": "Preempted", "message": "m"},
            ],
            "admission": {"clusterQueue": "team-a", "podSetAssignments": []},
        },
    }
    status = kueue.requeue_status(obj, "Pending", "m", "2026-12-04T00:00:00Z")
    assert status["admission"] is None
    found = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert found == {
        "QuotaReserved": ("False", "Pending"),
        "Admitted": ("False", "NoReservation"),
        "Evicted": ("True", "Preempted"),
        "Requeued": ("True", "Preempted"),
    }


def test_the_kueue_example_queues_both_batches_in_the_queue_it_defines() -> None:
    docs = list(yaml.safe_load_all((EXAMPLES / "queued-batch.yaml").read_text()))
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    (local_queue,) = by_kind["LocalQueue"]
    (cluster_queue,) = by_kind["ClusterQueue"]
    assert cluster_queue["spec"]["preemption"] == {"withinClusterQueue": "LowerPriority"}
    classes = {c["metadata"]["name"] for c in by_kind["WorkloadPriorityClass"]}
    for doc in by_kind["ResumableBatch"]:
        batch = ResumableBatch.model_validate(doc)
        assert admission.queue_name_of(batch) == local_queue["metadata"]["name"]
        source = kueue.priority_source(batch)
        assert source is not None
        assert source[2] in classes
        wl = kueue.build_workload(batch, local_queue["metadata"]["name"], priority=1)
        requests = wl["spec"]["podSets"][0]["template"]["spec"]["containers"][0]["resources"]
        assert requests == {"requests": {"cpu": "1", "memory": "512Mi"}}


def test_kueues_requeue_time_is_shown_while_the_batch_waits() -> None:
    batch = queued()
    view = WorkloadView(WL, pending_message="backoff", requeue_at="2025-03-01T12:05:00Z")
    d = decide(batch, [], T0, workload=view)
    found = cond.find(d.status.conditions, cond.SUSPENDED)
    assert found is not None
    assert found.message.endswith("(Kueue requeues it at 2025-03-01T12:05:00Z).")
    assert d.workload is None  # Kueue alone honours requeueState: nothing to do
