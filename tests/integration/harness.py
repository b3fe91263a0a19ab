"""Helpers for the operator's integration tests: run the operator, drive batches, wait.

The operator runs as a real subprocess (the `resumable-operator` entry point)
against the test control plane, with its log in a file that failing tests show.
:func:`create_at_first_attempt` plays the operator in process instead, for the
tests and benches that run a worker of attempt 1 themselves (tests/reliability,
bench/outage_throughput.py).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from resumable.kubeapi import JSON_PATCH, MERGE_PATCH, ApiError, KubeApi, batch_path
from resumable.v1alpha1 import ResumableBatch
from resumable_core.objects import status_patch
from resumable_core.reconcile import decide
from tests.waiting import wait_for


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OperatorProcess:
    """The operator as a subprocess watching one namespace."""

    def __init__(
        self, kubeconfig: Path, namespace: str, log_path: Path, *, env: dict[str, str] | None = None
    ) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.log_path = log_path
        self.metrics_port = free_port()
        self.extra_env = env or {}
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    def elected(cls, kubeconfig: Path, namespace: str, workdir: Path, name: str) -> OperatorProcess:
        """A replica named ``name`` that acts only while it holds a 3 s Lease in
        ``namespace``; its log is ``workdir/<name>.log``."""
        env = {
            "RESUMABLE_OPERATOR_LEADER_ELECTION": "true",
            "RESUMABLE_OPERATOR_LEASE_NAMESPACE": namespace,
            "RESUMABLE_OPERATOR_LEASE_SECONDS": "3",
            "POD_NAME": name,
        }
        return cls(kubeconfig, namespace, workdir / f"{name}.log", env=env)

    def start(self) -> OperatorProcess:
        """Start it and wait until its metrics endpoint answers."""
        env = dict(os.environ)
        env.update(
            {
                "KUBECONFIG": str(self.kubeconfig),
                "RESUMABLE_OPERATOR_NAMESPACES": self.namespace,
                "RESUMABLE_OPERATOR_METRICS_PORT": str(self.metrics_port),
                "RESUMABLE_OPERATOR_LIVENESS": f"http://127.0.0.1:{free_port()}/healthz",
                "RESUMABLE_OPERATOR_LOG_LEVEL": "INFO",
            }
        )
        env.update(self.extra_env)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "resumable_operator.main"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for(self._metrics_up, what="the operator's /metrics", timeout=30)
        return self

    def _metrics_up(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"operator exited {self.process.returncode}:\n{self.log()}")
        return self.metrics() != ""

    def metrics(self) -> str:
        """The /metrics text ('' when not up)."""
        import urllib.request

        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2
            ) as r:
                return str(r.read().decode())
        except OSError:
            return ""

    def stop(self, *, sig: int = signal.SIGTERM) -> None:
        """Stop it (SIGKILL simulates a crash)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        """The operator's log so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def leader_and_standby(
    kubeconfig: Path, namespace: str, workdir: Path
) -> tuple[OperatorProcess, OperatorProcess]:
    """Two elected replicas, op-1 leading and op-2 standing by; the caller stops both."""
    first = OperatorProcess.elected(kubeconfig, namespace, workdir, "op-1").start()
    try:
        wait_for(lambda: "leading: op-1_" in first.log(), what="op-1 to lead")
        second = OperatorProcess.elected(kubeconfig, namespace, workdir, "op-2").start()
    except BaseException:
        first.stop()
        raise
    try:
        wait_for(lambda: "is held by op-1_" in second.log(), what="op-2 to stand by")
    except BaseException:
        first.stop()
        second.stop()
        raise
    return first, second


class Batches:
    """Create, read and change ResumableBatch objects in one namespace."""

    def __init__(self, api: KubeApi, namespace: str) -> None:
        self.api = api
        self.namespace = namespace

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """POST a batch."""
        result: dict[str, Any] = self.api.request("POST", batch_path(self.namespace), body=manifest)
        return result

    def get(self, name: str) -> dict[str, Any]:
        """GET a batch."""
        result: dict[str, Any] = self.api.request("GET", batch_path(self.namespace, name))
        return result

    def exists(self, name: str) -> bool:
        """True while the batch exists."""
        try:
            self.get(name)
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        """Merge-patch the spec."""
        self.api.request(
            "PATCH", batch_path(self.namespace, name), body={"spec": spec}, content_type=MERGE_PATCH
        )

    def patch_status(self, name: str, ops: list[dict[str, Any]]) -> None:
        """JSON-patch the status."""
        self.api.request(
            "PATCH",
            batch_path(self.namespace, name, status=True),
            body=ops,
            content_type=JSON_PATCH,
        )

    def condition(self, name: str, type_: str) -> dict[str, Any] | None:
        """The condition of that type, if any."""
        for c in (self.get(name).get("status") or {}).get("conditions", []):
            if c["type"] == type_:
                return dict(c)
        return None

    def wait_condition(self, name: str, type_: str, *, timeout: float = 90.0) -> dict[str, Any]:
        """Wait until the condition is True."""
        return wait_for(
            lambda: (c := self.condition(name, type_)) is not None and c["status"] == "True" and c,
            what=f"{name} condition {type_}=True",
            timeout=timeout,
        )

    def wait_ended(self, name: str, *, timeout: float = 120.0) -> dict[str, Any]:
        """Wait for Succeeded or Failed; return the batch."""

        def ended() -> dict[str, Any] | None:
            obj = self.get(name)
            for c in (obj.get("status") or {}).get("conditions", []):
                if c["type"] in ("Succeeded", "Failed") and c["status"] == "True":
                    return obj
            return None

        return wait_for(ended, what=f"{name} to end", timeout=timeout)

    def pods(self, name: str) -> list[dict[str, Any]]:
        """The batch's worker pods, oldest attempt first."""
        items = self.api.request(
            "GET",
            f"/api/v1/namespaces/{self.namespace}/pods",
            query={"labelSelector": f"resumable.dev/batch={name}"},
        ).get("items", [])
        return sorted(
            items, key=lambda p: int(p["metadata"]["labels"].get("resumable.dev/attempt", "0"))
        )

    def events(self, name: str) -> list[dict[str, Any]]:
        """Events about the batch."""
        items = self.api.request(
            "GET",
            f"/api/v1/namespaces/{self.namespace}/events",
            query={"fieldSelector": f"involvedObject.name={name}"},
        ).get("items", [])
        return list(items)


def create_at_first_attempt(api: KubeApi, namespace: str, name: str) -> None:
    """Create a batch and make the operator's first status write (attempt 1), in process.

    What a worker of attempt 1 finds when its pod starts (the fencing token), written
    with the operator's own ``decide`` and ``status_patch`` and no operator running:
    the batch's template (``true``) is never run.
    """
    manifest = {
        "apiVersion": "resumable.dev/v1alpha1",
        "kind": "ResumableBatch",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "worker", "image": "w:dev", "command": ["true"]}]}
            }
        },
    }
    raw = api.request("POST", batch_path(namespace), body=manifest)
    decision = decide(ResumableBatch.model_validate(raw), [], datetime.now(UTC))
    new = decision.status.model_dump(by_alias=True, exclude_none=True, mode="json")
    api.request(
        "PATCH",
        batch_path(namespace, name, status=True),
        body=status_patch(raw.get("status"), new),
        content_type=JSON_PATCH,
    )


def outputs_in(directory: Path) -> list[int]:
    """Item indices of the output files a worker wrote."""
    return sorted(
        json.loads(p.read_text())["index"] for p in (directory / "outputs").glob("*.json")
    )
