"""objects.py: the manifests the operator creates and the pod views it reads.

Pure functions, checked on hand-built inputs. The fenced status patch is
test_patches.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from resumable import v1alpha1
from resumable.v1alpha1 import CheckpointPolicy, ResumableBatch
from resumable_core import objects
from resumable_core.decision import EventPlan, PodPlan


def make_batch(*, pod_spec: dict[str, Any] | None = None, **spec: Any) -> ResumableBatch:
    template: dict[str, Any] = {
        "metadata": {"labels": {"team": "docs"}, "annotations": {"note": "x"}},
        "spec": pod_spec
        or {
            "containers": [
                {
                    "name": "worker",
                    "image": "worker:1",
                    "command": ["python", "-m", "work"],
                    "env": [
                        {"name": "MINE", "value": "1"},
                        {"name": "RESUMABLE_START_INDEX", "value": "999"},  # ours wins
                    ],
                },
                {"name": "sidecar", "image": "side:1"},
            ],
            "nodeSelector": {"pool": "batch"},  # passed through untouched
        },
    }
    return ResumableBatch.model_validate(
        {
            "metadata": {"name": "docs", "namespace": "team-a", "uid": "uid-9", "generation": 3},
            "spec": {"template": template, "runId": "r1", **spec},
        }
    )


PLAN = PodPlan(name="docs-3", attempt=3, start_index=47, total_items=200)


def env_of(container: dict[str, Any]) -> dict[str, str | None]:
    return {e["name"]: e.get("value") for e in container["env"]}


# ---------------------------------------------------------------- build_pod


def test_build_pod_injects_the_resumable_env_into_every_container() -> None:
    pod = objects.build_pod(make_batch(checkpoint={"everyItems": 5}), PLAN)
    worker, sidecar = pod["spec"]["containers"]
    env = env_of(worker)
    assert env["MINE"] == "1"
    assert env["RESUMABLE_BATCH_NAME"] == "docs"
    assert env["RESUMABLE_NAMESPACE"] == "team-a"
    assert env["RESUMABLE_START_INDEX"] == "47"  # the user's stale value is replaced
    assert [e["name"] for e in worker["env"]].count("RESUMABLE_START_INDEX") == 1
    assert env["RESUMABLE_ATTEMPT"] == "3"
    assert env["RESUMABLE_TOTAL_ITEMS"] == "200"
    assert env["RESUMABLE_RUN_ID"] == "r1"
    assert env["RESUMABLE_STORE"] == "kube"
    assert json.loads(env["RESUMABLE_CHECKPOINT"] or "")["everyItems"] == 5
    assert "RESUMABLE_CAREFUL" not in env
    assert env_of(sidecar)["RESUMABLE_ATTEMPT"] == "3"


def test_build_pod_leaves_out_unknown_total_and_marks_careful_attempts() -> None:
    plan = PodPlan(name="docs-4", attempt=4, start_index=0, total_items=None, careful=True)
    env = env_of(objects.build_pod(make_batch(), plan)["spec"]["containers"][0])
    assert "RESUMABLE_TOTAL_ITEMS" not in env
    assert env["RESUMABLE_CAREFUL"] == "1"


def test_build_pod_is_never_restarted_by_the_kubelet_and_is_owned_by_the_batch() -> None:
    pod = objects.build_pod(make_batch(), PLAN)
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["nodeSelector"] == {"pool": "batch"}
    meta = pod["metadata"]
    assert meta["name"] == "docs-3"
    assert meta["namespace"] == "team-a"
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "resumable.dev/v1alpha1",
            "kind": "ResumableBatch",
            "name": "docs",
            "uid": "uid-9",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert meta["labels"] == {
        "team": "docs",
        "resumable.dev/batch": "docs",
        "resumable.dev/attempt": "3",
        "resumable.dev/run-id": "r1",
        "app.kubernetes.io/managed-by": objects.MANAGED_BY,
    }
    assert meta["annotations"] == {"note": "x"}


def test_build_pod_does_not_change_the_batch_template() -> None:
    batch = make_batch()
    before = batch.model_dump()
    objects.build_pod(batch, PLAN)
    assert batch.model_dump() == before


def test_build_pod_service_account_defaults_to_the_batch_worker_account() -> None:
    pod = objects.build_pod(make_batch(), PLAN)
    assert pod["spec"]["serviceAccountName"] == "docs-worker"


def test_build_pod_keeps_the_users_service_account() -> None:
    spec = {"serviceAccountName": "my-sa", "containers": [{"name": "w", "command": ["x"]}]}
    pod = objects.build_pod(make_batch(pod_spec=spec), PLAN)
    assert pod["spec"]["serviceAccountName"] == "my-sa"


# -------------------------------------------------------------- worker_rbac


def test_worker_rbac_role_may_read_its_batch_and_patch_only_its_status() -> None:
    sa, role, binding = objects.worker_rbac(make_batch())
    assert (sa["kind"], role["kind"], binding["kind"]) == ("ServiceAccount", "Role", "RoleBinding")
    assert {o["metadata"]["name"] for o in (sa, role, binding)} == {"docs-worker"}
    assert {o["metadata"]["namespace"] for o in (sa, role, binding)} == {"team-a"}
    assert role["rules"] == [
        {
            "apiGroups": [v1alpha1.GROUP],
            "resources": ["resumablebatches"],
            "resourceNames": ["docs"],
            "verbs": ["get"],
        },
        {
            "apiGroups": [v1alpha1.GROUP],
            "resources": ["resumablebatches/status"],
            "resourceNames": ["docs"],
            "verbs": ["get", "patch"],
        },
    ]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "docs-worker",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "docs-worker", "namespace": "team-a"}
    ]
    for obj in (sa, role, binding):
        assert obj["metadata"]["ownerReferences"][0]["uid"] == "uid-9"


# ------------------------------------------------------------------ pod_view


def pod(
    phase: str = "Running",
    *,
    terminated: dict[str, Any] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    reason: str | None = None,
    deleting: bool = False,
    attempt: str = "2",
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "conditions": conditions or []}
    if terminated is not None:
        status["containerStatuses"] = [{"name": "worker", "state": {"terminated": terminated}}]
    if reason is not None:
        status["reason"] = reason
    meta: dict[str, Any] = {"name": "docs-2", "labels": {"resumable.dev/attempt": attempt}}
    if deleting:
        meta["deletionTimestamp"] = "2025-03-01T12:00:00Z"
    return {"metadata": meta, "status": status}


def test_pod_view_reads_a_running_pod() -> None:
    view = objects.pod_view(pod())
    assert (view.name, view.attempt, view.phase) == ("docs-2", 2, "Running")
    assert view.exit_code is None
    assert view.disruption == ""
    assert not view.deleting
    assert not view.ended


def test_pod_view_reads_the_exit_code_and_reason() -> None:
    view = objects.pod_view(pod("Failed", terminated={"exitCode": 137, "reason": "Error"}))
    assert (view.phase, view.exit_code, view.reason, view.ended) == (
        "Failed",
        137,
        "Error",
        True,
    )


def test_pod_view_reads_oom_killed() -> None:
    view = objects.pod_view(pod("Failed", terminated={"exitCode": 137, "reason": "OOMKilled"}))
    assert view.reason == "OOMKilled"
    assert view.exit_code == 137
    assert view.disruption == ""


def test_pod_view_reads_the_disruption_target_condition() -> None:
    conditions = [
        {"type": "Ready", "status": "False"},
        {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"},
    ]
    view = objects.pod_view(pod("Failed", terminated={"exitCode": 143}, conditions=conditions))
    assert view.disruption == "EvictionByEvictionAPI"


def test_pod_view_ignores_a_false_disruption_target() -> None:
    conditions = [
        {"type": "DisruptionTarget", "status": "False", "reason": "EvictionByEvictionAPI"}
    ]
    assert objects.pod_view(pod("Failed", conditions=conditions)).disruption == ""


@pytest.mark.parametrize("reason", ["Evicted", "Preempting", "NodeLost"])
def test_pod_view_reads_an_eviction_from_the_pod_reason(reason: str) -> None:
    assert objects.pod_view(pod("Failed", reason=reason)).disruption == reason


def test_pod_view_unknown_phase_is_a_lost_node() -> None:
    view = objects.pod_view(pod("Unknown"))
    assert view.phase == "Unknown"
    assert view.disruption == "NodeLost"


def test_pod_view_reads_the_deletion_timestamp() -> None:
    assert objects.pod_view(pod(deleting=True)).deleting is True


def test_pod_view_tolerates_a_bare_pod() -> None:
    view = objects.pod_view({"metadata": {"name": "p", "labels": {"resumable.dev/attempt": "x"}}})
    assert (view.name, view.attempt, view.phase) == ("p", 0, "Pending")


# -------------------------------------------------------------- event_manifest


def test_event_manifest_points_at_the_batch() -> None:
    event = objects.event_manifest(
        make_batch(),
        EventPlan("Normal", "Resumed", "Resumed at item 48/200"),
        "2025-03-01T12:00:00Z",
    )
    assert event["involvedObject"] == {
        "apiVersion": "resumable.dev/v1alpha1",
        "kind": "ResumableBatch",
        "name": "docs",
        "namespace": "team-a",
        "uid": "uid-9",
    }
    assert (event["type"], event["reason"], event["message"]) == (
        "Normal",
        "Resumed",
        "Resumed at item 48/200",
    )
    assert event["metadata"] == {"generateName": "docs.", "namespace": "team-a"}


def test_pod_view_reads_the_worker_container_not_a_sidecar_listed_first() -> None:
    # The kubelet lists container statuses by name: a sidecar "agent" comes first.
    manifest = {
        "metadata": {"name": "docs-1", "labels": {"resumable.dev/attempt": "1"}},
        "spec": {"containers": [{"name": "worker"}, {"name": "agent"}]},
        "status": {
            "phase": "Failed",
            "containerStatuses": [
                {"name": "agent", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "worker", "state": {"terminated": {"exitCode": 3, "reason": "Error"}}},
            ],
        },
    }
    view = objects.pod_view(manifest)
    assert (view.exit_code, view.reason) == (3, "Error")


def test_build_pod_puts_the_injected_env_first_so_user_values_can_refer_to_it() -> None:
    batch = make_batch()
    worker = batch.spec.template.spec.containers[0]
    worker.env.append(v1alpha1.EnvVar(name="OUT", value="/data/$(RESUMABLE_BATCH_NAME)"))
    env = objects.build_pod(batch, PLAN)["spec"]["containers"][0]["env"]
    names = [e["name"] for e in env]
    assert names.index("RESUMABLE_BATCH_NAME") < names.index("OUT")
    assert names.count("RESUMABLE_START_INDEX") == 1  # the user's copy is dropped


def test_an_unset_every_seconds_reaches_the_worker_unset() -> None:
    # The worker's SDK resolves it for its store (10 s in a cluster): the operator
    # passes spec.checkpoint on as written, with no default of its own.
    plan = PodPlan(name="docs-1", attempt=1, start_index=0, total_items=None, careful=False)
    batch = make_batch()
    batch.spec.checkpoint = CheckpointPolicy()
    env = env_of(objects.build_pod(batch, plan)["spec"]["containers"][0])
    assert json.loads(env["RESUMABLE_CHECKPOINT"] or "") == {"minIntervalSeconds": 1.0}
