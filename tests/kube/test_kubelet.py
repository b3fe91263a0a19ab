"""The process kubelet (kubelet.py) runs pods the way the operator sees them in a cluster.

Exit codes and reasons, Running and Ready, logs through the API server (and -f),
SIGKILL and OOMKilled, eviction's DisruptionTarget, the grace period, env and the
pod's service account, restartPolicy OnFailure: against the harness's real
kube-apiserver (fixtures from plugin.py and conftest.py).
"""

from __future__ import annotations

import json
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.kube.kubelet import ProcessKubelet
from tests.waiting import wait_for

Json = dict[str, Any]


def _json(resp: Any) -> Any:
    return json.loads(resp.data)


def pod_manifest(
    name: str,
    script: str,
    *,
    grace: int = 30,
    restart_policy: str = "Never",
    env: list[Json] | None = None,
    service_account: str | None = None,
) -> Json:
    spec: Json = {
        "restartPolicy": restart_policy,
        "terminationGracePeriodSeconds": grace,
        "containers": [
            {
                "name": "main",
                "image": "ignored:latest",
                "command": [sys.executable, "-c", textwrap.dedent(script)],
                "env": env or [],
            }
        ],
    }
    if service_account:
        spec["serviceAccountName"] = service_account
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


SLEEP = "import time\nwhile True: time.sleep(1)"


@pytest.fixture
def run_pod(core: Any, namespace: str, kubelet: ProcessKubelet) -> Callable[..., str]:
    """Create a pod whose container runs a Python script (this interpreter)."""

    def run(name: str, script: str, **kwargs: Any) -> str:
        core.create_namespaced_pod(
            namespace, pod_manifest(name, script, **kwargs), _preload_content=False
        )
        return name

    return run


def terminated_state(pod: Json) -> Json:
    state: Json = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    return state


def test_pod_exit_code_3_ends_failed_with_exit_code_3(
    run_pod: Callable[..., str], kubelet: ProcessKubelet, core: Any, namespace: str
) -> None:
    run_pod("exit3", "import sys; print('working'); sys.exit(3)")
    final = kubelet.wait_terminated(namespace, "exit3")
    pod = _json(core.read_namespaced_pod("exit3", namespace, _preload_content=False))
    assert pod["spec"]["nodeName"] == kubelet.node_name  # bound through the binding subresource
    assert pod["status"]["phase"] == "Failed"
    terminated = terminated_state(pod)
    assert terminated["exitCode"] == 3
    assert terminated["reason"] == "Error"
    assert pod["status"] == final["status"]
    assert "working" in kubelet.read_log(namespace, "exit3")


def test_pod_exit_0_succeeds(
    run_pod: Callable[..., str], kubelet: ProcessKubelet, namespace: str
) -> None:
    run_pod("ok", "pass")
    pod = kubelet.wait_terminated(namespace, "ok")
    assert pod["status"]["phase"] == "Succeeded"
    assert terminated_state(pod) | {"exitCode": 0, "reason": "Completed"} == terminated_state(pod)


def test_running_pod_reports_running(
    run_pod: Callable[..., str], kubelet: ProcessKubelet, core: Any, namespace: str
) -> None:
    run_pod("runner", SLEEP)
    kubelet.wait_running(namespace, "runner")
    pod = _json(core.read_namespaced_pod("runner", namespace, _preload_content=False))
    assert pod["status"]["phase"] == "Running"
    status = pod["status"]["containerStatuses"][0]
    assert status["state"]["running"]["startedAt"]
    assert status["ready"] is True
    ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert ready["Ready"] == "True"


def test_kubectl_logs_reaches_the_kubelet_through_the_api_server(
    run_pod: Callable[..., str],
    kubelet: ProcessKubelet,
    kubectl: Callable[..., Any],
    namespace: str,
) -> None:
    # kubectl -> kube-apiserver (pods/log) -> the kubelet's HTTPS port, mutual TLS.
    run_pod("talker", "for i in range(1, 6): print(f'line {i}')")
    kubelet.wait_terminated(namespace, "talker")
    logs = kubectl("logs", "talker", "-n", namespace)
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout == "".join(f"line {i}\n" for i in range(1, 6))
    assert kubectl("logs", "talker", "-n", namespace, "--tail=2").stdout == "line 4\nline 5\n"
    assert kubectl("logs", "talker", "-n", namespace, "--limit-bytes=8").stdout == "line 1\nl"
    refused = kubectl("logs", "talker", "-n", namespace, "--previous")
    assert refused.returncode != 0
    assert "the process kubelet keeps one log per pod" in refused.stderr


def test_kubectl_logs_follow_streams_until_the_container_exits(
    run_pod: Callable[..., str],
    kubelet: ProcessKubelet,
    kubectl: Callable[..., Any],
    namespace: str,
) -> None:
    script = "import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.5)"
    run_pod("slow", script)
    kubelet.wait_running(namespace, "slow")
    followed = kubectl("logs", "-f", "slow", "-n", namespace)
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout == "0\n1\n2\n"  # all of it, though it started mid-way
    assert kubelet.run_of(namespace, "slow").done.is_set()


@pytest.mark.parametrize(("oom", "reason"), [(False, "Error"), (True, "OOMKilled")])
def test_killed_pod_ends_with_137(
    run_pod: Callable[..., str], kubelet: ProcessKubelet, namespace: str, oom: bool, reason: str
) -> None:
    run_pod("victim", SLEEP)
    kubelet.kill(namespace, "victim", oom=oom)
    pod = kubelet.wait_terminated(namespace, "victim")
    assert pod["status"]["phase"] == "Failed"
    assert terminated_state(pod)["exitCode"] == 137
    assert terminated_state(pod)["reason"] == reason


def test_evicted_pod_carries_disruption_target(
    run_pod: Callable[..., str], kubelet: ProcessKubelet, core: Any, namespace: str
) -> None:
    run_pod("evictee", SLEEP, grace=5)
    kubelet.wait_running(namespace, "evictee")
    kubelet.evict(namespace, "evictee")

    # Right after the Eviction API call: the condition is there, the pod is terminating.
    pod = _json(core.read_namespaced_pod("evictee", namespace, _preload_content=False))
    assert pod["metadata"]["deletionTimestamp"]
    conditions = {c["type"]: c for c in pod["status"]["conditions"]}
    assert conditions["DisruptionTarget"]["status"] == "True"
    assert conditions["DisruptionTarget"]["reason"] == "EvictionByEvictionAPI"

    # The process got SIGTERM (143); the terminal status keeps the condition.
    final = kubelet.wait_terminated(namespace, "evictee")
    assert final["status"]["phase"] == "Failed"
    assert terminated_state(final)["exitCode"] == 143
    assert "DisruptionTarget" in {c["type"] for c in final["status"]["conditions"]}

    # Then the kubelet removes it, as a real one does.
    _wait_gone(core, namespace, "evictee")


def _wait_gone(core: Any, namespace: str, name: str, timeout: float = 15) -> None:
    def gone() -> bool:
        try:
            core.read_namespaced_pod(name, namespace, _preload_content=False)
        except client.ApiException as e:
            if e.status == 404:
                return True
            raise
        return False

    wait_for(gone, what=f"pod {namespace}/{name} to be removed", timeout=timeout)


def test_deleted_pod_ignoring_sigterm_is_killed_after_the_grace_period(
    run_pod: Callable[..., str], kubelet: ProcessKubelet, core: Any, namespace: str
) -> None:
    script = "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n" + SLEEP
    run_pod("stubborn", script, grace=1)
    kubelet.wait_running(namespace, "stubborn")
    start = time.monotonic()
    core.delete_namespaced_pod("stubborn", namespace, _preload_content=False)
    final = kubelet.wait_terminated(namespace, "stubborn")
    assert terminated_state(final)["exitCode"] == 137
    assert time.monotonic() - start >= 0.9
    _wait_gone(core, namespace, "stubborn")


def test_pod_process_gets_env_workdir_and_its_service_account(
    run_pod: Callable[..., str], kubelet: ProcessKubelet, namespace: str
) -> None:
    script = """
        import os, subprocess
        print("name", os.environ["MY_NAME"])
        print("ns", os.environ["MY_NS"])
        print("greeting", os.environ["GREETING"])
        print("cwd", os.getcwd())
        who = subprocess.run(
            ["kubectl", "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"],
            capture_output=True, text=True,
        )
        print("whoami", who.stdout, who.stderr)
        """
    env = [
        {"name": "MY_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "MY_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "WHO", "value": "world"},
        {"name": "GREETING", "value": "hello $(WHO)"},
    ]
    run_pod("envy", script, env=env)
    pod = kubelet.wait_terminated(namespace, "envy")
    out = kubelet.read_log(namespace, "envy")
    assert pod["status"]["phase"] == "Succeeded", out
    lines = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    assert lines["name"] == "envy"
    assert lines["ns"] == namespace
    assert lines["greeting"] == "hello world"
    assert Path(lines["cwd"]) == kubelet.pod_workdir(namespace, "envy")
    assert lines["whoami"].strip() == f"system:serviceaccount:{namespace}:default"


def test_on_failure_pod_is_restarted_until_it_succeeds(
    run_pod: Callable[..., str], kubelet: ProcessKubelet, namespace: str
) -> None:
    script = """
        import pathlib, sys
        marker = pathlib.Path("tried")
        if not marker.exists():
            marker.write_text("once")
            sys.exit(1)
        """
    run_pod("flaky", script, restart_policy="OnFailure")
    pod = kubelet.wait_terminated(namespace, "flaky")
    status = pod["status"]["containerStatuses"][0]
    assert pod["status"]["phase"] == "Succeeded"
    assert status["restartCount"] == 1
    assert status["lastState"]["terminated"]["exitCode"] == 1
