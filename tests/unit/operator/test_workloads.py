"""WorkloadControl: the Kueue API calls for a queued batch, and none for any other.

An in-memory API records every call and answers the Workload, ResourceFlavor and
priority-class reads the way the server would.
"""

from __future__ import annotations

from typing import Any, cast

import pytest

from resumable.kubeapi import KubeApi, api_error
from resumable.v1alpha1 import ResumableBatch
from resumable_core import kueue
from resumable_core.decision import Placement, WorkloadPlan, WorkloadView
from resumable_operator.config import OperatorConfig, SettingsError, kueue_enabled
from resumable_operator.workloads import INTEGRATION_OFF, WorkloadControl

WORKLOADS = "/apis/kueue.x-k8s.io/v1beta2/namespaces/ns/workloads"


class KueueApi:
    """Records calls; GETs answer from ``objects`` (a missing path is a 404)."""

    def __init__(self, objects: dict[str, Any] | None = None) -> None:
        self.objects = objects or {}
        self.calls: list[tuple[str, str, Any]] = []

    def request(self, method: str, path: str, *, body: Any = None, **_: Any) -> Any:
        self.calls.append((method, path, body))
        if method == "GET":
            if path not in self.objects:
                raise api_error(404, f"{path} not found")
            return self.objects[path]
        return {}


def batch(**labels: str) -> ResumableBatch:
    return ResumableBatch.model_validate(
        {
            "metadata": {"name": "b", "namespace": "ns", "uid": "u", "labels": labels},
            "spec": {"template": {"spec": {"containers": [{"name": "w", "image": "w"}]}}},
        }
    )


QUEUED = {"kueue.x-k8s.io/queue-name": "team-a"}


def control(api: KueueApi, *, enabled: bool = True) -> WorkloadControl:
    return WorkloadControl(cast(KubeApi, api), enabled=enabled)


@pytest.mark.parametrize("enabled", [True, False])
def test_a_batch_without_the_queue_label_costs_no_kueue_call(enabled: bool) -> None:
    api = KueueApi()
    assert control(api, enabled=enabled).observe(batch()) is None
    assert api.calls == []


def test_with_the_integration_off_a_queued_batch_is_seen_unable_to_queue_without_a_call() -> None:
    api = KueueApi()
    view = control(api, enabled=False).observe(batch(**QUEUED))
    assert view == WorkloadView(
        kueue.workload_name(batch()), exists=False, unavailable=INTEGRATION_OFF
    )
    assert api.calls == []


def test_an_admitted_workload_is_read_with_its_flavours_node_labels_and_tolerations() -> None:
    name = kueue.workload_name(batch())
    toleration = {"key": "pool", "operator": "Exists", "effect": "NoSchedule"}
    api = KueueApi(
        {
            f"{WORKLOADS}/{name}": {
                "metadata": {"name": name},
                "status": {
                    "conditions": [
                        {"type": "QuotaReserved", "status": "True"},
                        {"type": "Admitted", "status": "True"},
                    ],
                    "admission": {
                        "clusterQueue": "cq",
                        "podSetAssignments": [{"name": "main", "flavors": {"cpu": "spot"}}],
                    },
                },
            },
            "/apis/kueue.x-k8s.io/v1beta2/resourceflavors/spot": {
                "spec": {"nodeLabels": {"pool": "spot"}, "tolerations": [toleration]}
            },
        }
    )
    view = control(api).observe(batch(**QUEUED))
    assert view is not None
    assert view.admitted
    assert view.placement == Placement({"pool": "spot"}, [toleration])


def test_create_posts_the_workload_with_the_priority_class_value() -> None:
    api = KueueApi({"/apis/kueue.x-k8s.io/v1beta2/workloadpriorityclasses/high": {"value": 1000}})
    queued = batch(**QUEUED, **{"kueue.x-k8s.io/priority-class": "high"})
    control(api).apply(queued, WorkloadPlan("create", "wl"), stamp="2026-12-04T00:00:00Z")
    method, path, body = api.calls[-1]
    assert (method, path) == ("POST", WORKLOADS)
    assert body["spec"]["priority"] == 1000
    assert body["spec"]["queueName"] == "team-a"


def test_requeue_patches_the_status_fenced_on_the_version_read() -> None:
    name = "wl"
    api = KueueApi(
        {
            f"{WORKLOADS}/{name}": {
                "metadata": {"name": name, "resourceVersion": "7"},
                "status": {"conditions": [{"type": "QuotaReserved", "status": "True"}]},
            }
        }
    )
    control(api).apply(batch(**QUEUED), WorkloadPlan("requeue", name, "Pending", "m"), stamp="t")
    method, path, body = api.calls[-1]
    assert (method, path) == ("PATCH", f"{WORKLOADS}/{name}/status")
    assert body["metadata"] == {"resourceVersion": "7"}
    assert body["status"]["admission"] is None


def test_the_kueue_setting_is_read_and_a_bad_value_named() -> None:
    assert OperatorConfig.from_env({}).kueue is False
    assert OperatorConfig.from_env({"RESUMABLE_OPERATOR_KUEUE": "true"}).kueue is True
    assert kueue_enabled({"RESUMABLE_OPERATOR_KUEUE": "yes"}) is True
    with pytest.raises(SettingsError, match="RESUMABLE_OPERATOR_KUEUE='maybe'"):
        OperatorConfig.from_env({"RESUMABLE_OPERATOR_KUEUE": "maybe"})
