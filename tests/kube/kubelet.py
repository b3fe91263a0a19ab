"""A process "kubelet" for tests: runs pods as local subprocesses.

It watches pods (in chosen namespaces, or all), binds each new unscheduled pod
to its node, and runs ``spec.containers[0].command + args`` as a local process
(the image is ignored, so pods use commands that exist on this machine). It
reports what a kubelet would: phase Running with a containerStatuses entry,
then Succeeded/Failed with the real exit code (128+N when killed by signal N,
so 137 for SIGKILL); a command it cannot exec ends as containerd's does: exit
128, reason StartError, the exec's error as message. Only the first container
is run.

Like a kubelet, it:

- resolves the container's env (literal values with $(VAR) expansion,
  fieldRef, configMapKeyRef/secretKeyRef, envFrom) and expands $(VAR) in
  command and args;
- runs each process as the pod's service account: it asks the API server for
  a token (TokenRequest, bound to the pod) and hands the process a kubeconfig
  holding it through KUBECONFIG, so RBAC applies to the worker;
- restarts containers per restartPolicy (Always/OnFailure), with a short backoff;
- stops a deleted pod's process (SIGTERM, SIGKILL after the grace period),
  writes its terminal status, then removes the pod (delete, grace 0).

Tests drive faults with kill() (SIGKILL, optionally reported as OOMKilled) and
evict() (the Eviction API: the API server adds the DisruptionTarget condition
and deletes the pod; the process then gets SIGTERM, SIGKILL after the grace
period). Each process's stdout/stderr go to a per-pod log file (log_path()),
which, given serving certificates (``tls``), it serves over HTTPS as a kubelet
does, so ``kubectl logs`` and ``pods/log`` work through the API server (see
kubelet_logs.py).

Run it in a thread (``ProcessKubelet(...).start()``) or as its own process::

    python -m tests.kube.kubelet --kubeconfig admin.kubeconfig --workdir /tmp/k -n ns1
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import json
import logging
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, watch

from .controlplane import new_api_client
from .kubelet_logs import LogServer, LogSource, ServingTLS

log = logging.getLogger(__name__)

NODE_NAME = "process-kubelet"
DEFAULT_GRACE_SECONDS = 30
# Variables of the test runner that must not leak into pods.
_SCRUBBED_ENV = ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT")
_SCRUBBED_PREFIXES = ("PYTEST_",)
_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")

Json = dict[str, Any]


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def exit_code_of(returncode: int) -> int:
    """Map Popen.returncode to a container exit code: -N (signal N) -> 128+N."""
    return 128 - returncode if returncode < 0 else returncode


def expand_vars(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes $(VAR) expansion: known vars replaced, $$ escapes, unknown kept."""

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env.get(name, m.group(0))

    return _VAR_REF.sub(repl, text)


def _json(resp: Any) -> Any:
    return json.loads(resp.data)


@dataclass
class PodRun:
    """What the kubelet knows about one pod (by uid)."""

    namespace: str
    name: str
    uid: str
    workdir: Path
    log_path: Path
    container: str = ""  # the name of the one container run
    proc: subprocess.Popen[bytes] | None = None
    restart_count: int = 0
    oom: bool = False  # the next SIGKILL is reported as OOMKilled
    grace_seconds: float = DEFAULT_GRACE_SECONDS
    deleted: bool = False  # deleted in the API: finalize once stopped
    terminate: threading.Event = field(default_factory=threading.Event)
    running: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    last_pod: Json | None = None  # the pod as of our last status write
    error: str | None = None
    thread: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class KubeletError(RuntimeError):
    pass


@dataclass(frozen=True)
class _Cluster:
    server: str
    ca_file: Path


def _cluster_from_kubeconfig(path: Path, workdir: Path) -> _Cluster:
    """Server URL and CA file of the kubeconfig's current context."""
    cfg = yaml.safe_load(path.read_text())
    ctx_name = cfg["current-context"]
    ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
    cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
    if "certificate-authority" in cluster:
        ca = Path(cluster["certificate-authority"])
        if not ca.is_absolute():
            ca = path.parent / ca
    else:
        ca = workdir / "ca.crt"
        ca.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    return _Cluster(server=cluster["server"], ca_file=ca)


class ProcessKubelet:
    """Runs the pods of one (fake) node as local processes. Thread-safe API."""

    def __init__(
        self,
        kubeconfig: Path,
        workdir: Path,
        *,
        namespaces: Iterable[str] | None = None,
        node_name: str = NODE_NAME,
        inherit_env: bool = True,
        extra_env: Mapping[str, str] | None = None,
        finalize_deleted: bool = True,
        restart_backoff: float = 0.5,
        tls: ServingTLS | None = None,
    ) -> None:
        """
        kubeconfig: an admin kubeconfig (the kubelet binds pods, writes status).
        namespaces: watch only these (more can be added with watch_namespace);
            None watches all namespaces.
        inherit_env: start pods with this process's environment (PATH, the
            virtualenv...) under the pod's env; scrubbed of KUBECONFIG and the like.
        finalize_deleted: remove deleted pods once stopped, as a kubelet does.
        tls: serve container logs over HTTPS with these certificates (the API
            server's pods/log); without it, log requests fail as with a node
            that has no kubelet port.
        """
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.node_name = node_name
        self.inherit_env = inherit_env
        self.extra_env = dict(extra_env or {})
        self.finalize_deleted = finalize_deleted
        self.restart_backoff = restart_backoff
        self._namespaces: set[str] | None = set(namespaces) if namespaces is not None else None
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._runs: dict[str, PodRun] = {}  # by uid
        self._latest: dict[tuple[str, str], str] = {}  # (ns, name) -> uid
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self._watch: Any = None
        self._synced = threading.Event()
        workdir.mkdir(parents=True, exist_ok=True)
        self._cluster = _cluster_from_kubeconfig(kubeconfig, workdir)
        self._api = new_api_client(kubeconfig)
        self._watch_api = new_api_client(kubeconfig)
        self.core: Any = client.CoreV1Api(self._api)
        self._event_log = (workdir / "kubelet.log").open("a", buffering=1)
        self._log_server = LogServer(tls, self._log_source) if tls is not None else None

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> ProcessKubelet:
        """Serve logs, register the node and start watching pods (in daemon threads)."""
        if self._log_server is not None:
            self._log_server.start()
        self._register_node()
        self._watcher = threading.Thread(target=self._watch_loop, name="kubelet-watch", daemon=True)
        self._watcher.start()
        if not self._synced.wait(timeout):
            raise KubeletError("the pod watch did not start (see kubelet.log)")
        return self

    def stop(self) -> None:
        """Stop watching; SIGKILL every process still running (no status writes)."""
        self._stopping.set()
        if self._watch is not None:
            self._watch.stop()
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            run.grace_seconds = 0
            run.terminate.set()
            self._signal(run, signal.SIGKILL)
        for run in runs:
            if run.thread is not None:
                run.thread.join(5)
        if self._watcher is not None:
            self._watcher.join(5)
        if self._log_server is not None:
            self._log_server.stop()
        self._api.close()
        self._watch_api.close()
        self._event_log.close()

    def __enter__(self) -> ProcessKubelet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def watch_namespace(self, namespace: str) -> None:
        """Also run pods of this namespace (no-op when watching all)."""
        with self._lock:
            if self._namespaces is not None:
                self._namespaces.add(namespace)
        # Pods created before the namespace was watched: pick them up now.
        pods = _json(self.core.list_namespaced_pod(namespace, _preload_content=False))
        for pod in pods["items"]:
            self._on_event("ADDED", pod)

    def forget_namespace(self, namespace: str) -> None:
        """SIGKILL the namespace's processes and stop tracking it (test teardown)."""
        with self._lock:
            if self._namespaces is not None:
                self._namespaces.discard(namespace)
            runs = [r for r in self._runs.values() if r.namespace == namespace]
        for run in runs:
            run.grace_seconds = 0
            run.terminate.set()
            self._signal(run, signal.SIGKILL)
        for run in runs:
            if run.thread is not None:
                run.thread.join(5)

    # ---- test API ----------------------------------------------------------------------------

    def run_of(self, namespace: str, name: str, timeout: float = 30.0) -> PodRun:
        """The kubelet's record of the (latest) pod with that name, once seen."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                uid = self._latest.get((namespace, name))
                if uid is not None:
                    return self._runs[uid]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"the kubelet has not seen pod {namespace}/{name}")
                self._changed.wait(left)

    def wait_running(self, namespace: str, name: str, timeout: float = 30.0) -> Json:
        """Wait until the pod's process runs and is reported Running; return the pod."""
        deadline = time.monotonic() + timeout
        run = self.run_of(namespace, name, timeout)
        while not run.running.wait(0.05):
            if run.done.is_set() or run.error:
                raise KubeletError(
                    f"pod {namespace}/{name} ended before running: {run.error or run.last_pod}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"pod {namespace}/{name} is not running after {timeout}s")
        if run.last_pod is None:
            raise KubeletError(f"pod {namespace}/{name} is gone: {run.error}")
        return run.last_pod

    def wait_terminated(self, namespace: str, name: str, timeout: float = 60.0) -> Json:
        """Wait for the pod's terminal status write; return that pod object.

        Works after the pod was removed (deleted/evicted pods are finalized).
        """
        run = self.run_of(namespace, name, timeout)
        if not run.done.wait(timeout):
            raise TimeoutError(f"pod {namespace}/{name} has not terminated after {timeout}s")
        if run.last_pod is None:
            raise KubeletError(f"pod {namespace}/{name} has no status: {run.error}")
        return run.last_pod

    def kill(self, namespace: str, name: str, *, oom: bool = False, timeout: float = 30.0) -> None:
        """SIGKILL the pod's process (exit code 137); oom=True reports reason OOMKilled."""
        self.wait_running(namespace, name, timeout)
        run = self.run_of(namespace, name)
        run.oom = oom
        self._log(f"kill {namespace}/{name} (oom={oom})")
        self._signal(run, signal.SIGKILL)

    def evict(self, namespace: str, name: str, *, grace_seconds: int | None = None) -> None:
        """Evict the pod through the Eviction API, like `kubectl drain` does.

        The API server adds the DisruptionTarget condition (EvictionByEvictionAPI)
        and deletes the pod with its grace period; this kubelet then sends SIGTERM,
        SIGKILL after the grace period, reports the terminal phase and removes the pod.
        """
        body: Json = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": namespace},
        }
        if grace_seconds is not None:
            body["deleteOptions"] = {"gracePeriodSeconds": grace_seconds}
        self._log(f"evict {namespace}/{name}")
        self.core.create_namespaced_pod_eviction(name, namespace, body, _preload_content=False)

    def log_path(self, namespace: str, name: str) -> Path:
        """The file that receives the pod process's stdout and stderr."""
        return self.run_of(namespace, name).log_path

    def _log_source(self, namespace: str, name: str) -> LogSource | None:
        """The log server's view of a pod: None unless this kubelet ran it."""
        with self._lock:
            uid = self._latest.get((namespace, name))
            run = self._runs.get(uid) if uid is not None else None
        if run is None:
            return None
        return LogSource(
            container=run.container,
            path=run.log_path,
            started=lambda: run.proc is not None,
            ended=run.done.is_set,
        )

    def read_log(self, namespace: str, name: str) -> str:
        path = self.log_path(namespace, name)
        return path.read_text(errors="replace") if path.exists() else ""

    def pod_workdir(self, namespace: str, name: str) -> Path:
        """The pod process's working directory (also in $POD_WORKDIR)."""
        return self.run_of(namespace, name).workdir

    def runs(self, namespace: str | None = None) -> list[PodRun]:
        with self._lock:
            return [r for r in self._runs.values() if namespace in (None, r.namespace)]

    # ---- watch -------------------------------------------------------------------------------

    def _log(self, msg: str) -> None:
        log.debug("%s", msg)
        with contextlib.suppress(ValueError):  # closed at stop
            self._event_log.write(f"{now_rfc3339()} {msg}\n")

    def _register_node(self) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": {"kubernetes.io/hostname": self.node_name},
            },
        }
        try:
            self.core.create_node(body, _preload_content=False)
        except client.ApiException as e:
            if e.status != 409:
                raise
        node = _json(self.core.read_node(self.node_name, _preload_content=False))
        node["status"] = {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "process kubelet (tests) is ready",
                    "lastHeartbeatTime": now_rfc3339(),
                    "lastTransitionTime": now_rfc3339(),
                }
            ],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "nodeInfo": {
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
                "kernelVersion": os.uname().release,
                "osImage": "process-kubelet",
                "containerRuntimeVersion": "process://",
                "kubeletVersion": "process",
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }
        if self._log_server is not None:  # where the API server sends pods/log
            node["status"]["daemonEndpoints"] = {"kubeletEndpoint": {"Port": self._log_server.port}}
        self.core.replace_node_status(self.node_name, node, _preload_content=False)

    def _watch_loop(self) -> None:
        core: Any = client.CoreV1Api(self._watch_api)
        while not self._stopping.is_set():
            try:
                pods = _json(core.list_pod_for_all_namespaces(_preload_content=False))
                for pod in pods["items"]:
                    self._on_event("ADDED", pod)
                self._synced.set()
                rv = pods["metadata"]["resourceVersion"]
                self._watch = watch.Watch()  # type: ignore[no-untyped-call]
                for event in self._watch.stream(
                    core.list_pod_for_all_namespaces,
                    resource_version=rv,
                    timeout_seconds=60,
                    allow_watch_bookmarks=True,
                    deserialize=False,
                ):
                    if self._stopping.is_set():
                        break
                    kind, obj = event["type"], event["object"]
                    if kind == "ERROR":
                        self._log(f"watch error, relisting: {obj}")
                        break
                    if kind != "BOOKMARK":
                        self._on_event(kind, obj)
            except Exception as e:
                if self._stopping.is_set():
                    break
                self._log(f"watch failed, relisting: {e!r}")
                time.sleep(0.5)

    def _watched(self, namespace: str) -> bool:
        with self._lock:
            return self._namespaces is None or namespace in self._namespaces

    def _on_event(self, kind: str, pod: Json) -> None:
        meta, spec = pod["metadata"], pod.get("spec", {})
        ns, name, uid = meta["namespace"], meta["name"], meta["uid"]
        if not self._watched(ns):
            return
        if spec.get("nodeName") not in (None, "", self.node_name):
            return
        with self._lock:
            run = self._runs.get(uid)
        phase = pod.get("status", {}).get("phase")

        if kind == "DELETED":  # gone for good (e.g. force-deleted): just stop it
            if run is not None and not run.terminate.is_set():
                run.grace_seconds = 0
                run.terminate.set()
                self._signal(run, signal.SIGKILL)
            return

        if meta.get("deletionTimestamp"):
            with self._lock:  # against _run_pod's end: exactly one of us finalizes
                finalize_now = run is None or run.done.is_set()
                if run is not None and not finalize_now and not run.deleted:
                    grace = meta.get("deletionGracePeriodSeconds")
                    if grace is None:
                        grace = spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
                    run.deleted = True
                    run.grace_seconds = float(grace)
                    run.terminate.set()
                    self._log(f"terminate {ns}/{name} (grace {grace}s)")
            if finalize_now:
                self._finalize(ns, name, uid)
            return

        if run is not None or phase in ("Succeeded", "Failed"):
            return
        if self._stopping.is_set():
            return

        podkey = f"{name}-{uid[:8]}"
        workdir = self.workdir / ns / podkey
        workdir.mkdir(parents=True, exist_ok=True)
        containers = spec.get("containers") or [{}]
        run = PodRun(
            namespace=ns,
            name=name,
            uid=uid,
            workdir=workdir,
            log_path=workdir / "container.log",
            container=containers[0].get("name", ""),
        )
        run.thread = threading.Thread(
            target=self._run_pod, args=(run, pod), name=f"pod-{ns}/{name}", daemon=True
        )
        with self._changed:
            self._runs[uid] = run
            self._latest[(ns, name)] = uid
            self._changed.notify_all()
        self._log(f"start {ns}/{name} uid={uid}")
        run.thread.start()

    # ---- running a pod -----------------------------------------------------------------------

    def _run_pod(self, run: PodRun, pod: Json) -> None:
        try:
            self._run_pod_inner(run, pod)
        except Exception as e:
            run.error = repr(e)
            self._log(f"pod {run.namespace}/{run.name} failed in the kubelet: {e!r}")
            if not self._stopping.is_set():
                with contextlib.suppress(Exception):
                    self._write_status(run, partial(self._set_failed, pod=pod, message=repr(e)))
        finally:
            with self._changed:
                run.done.set()
                finalize = run.deleted and not self._stopping.is_set()
                self._changed.notify_all()
        if finalize:
            self._finalize(run.namespace, run.name, run.uid)

    def _run_pod_inner(self, run: PodRun, pod: Json) -> None:
        spec = pod["spec"]
        if not spec.get("nodeName"):
            self._bind(run)
        container = spec["containers"][0]
        env = self._environment(run, pod, container)
        command = [
            expand_vars(a, env) for a in container.get("command", []) + container.get("args", [])
        ]
        if not container.get("command"):
            raise KubeletError(
                "the process kubelet needs spec.containers[0].command (images are ignored)"
            )
        restart_policy = spec.get("restartPolicy", "Always")
        last_state: Json = {}
        started_at = now_rfc3339()

        while True:
            if run.terminate.is_set():
                break
            try:
                with run.log_path.open("ab") as out:
                    run.proc = subprocess.Popen(
                        command,
                        env=env,
                        cwd=run.workdir,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # its own group: signals reach children too
                    )
            except OSError as exc:
                # As containerd reports a container whose command it could not exec.
                self._log(f"start error {run.namespace}/{run.name}: {exc}")
                now = now_rfc3339()
                terminated = {
                    "exitCode": 128,
                    "reason": "StartError",
                    "message": f"exec: {command[0]!r}: {exc.strerror or exc}",
                    "startedAt": now,
                    "finishedAt": now,
                }
                self._write_status(
                    run,
                    partial(
                        self._set_terminated,
                        pod=pod,
                        run=run,
                        terminated=terminated,
                        last_state=last_state,
                    ),
                )
                return
            run.oom = False
            container_started = now_rfc3339()
            self._log(f"pid {run.proc.pid} for {run.namespace}/{run.name}: {command}")
            self._write_status(
                run,
                partial(
                    self._set_running,
                    pod=pod,
                    run=run,
                    container_started=container_started,
                    started_at=started_at,
                    last_state=last_state,
                ),
            )
            run.running.set()
            returncode = self._wait_process(run)
            code = exit_code_of(returncode)
            reason = "OOMKilled" if run.oom else ("Completed" if code == 0 else "Error")
            terminated = {
                "exitCode": code,
                "reason": reason,
                "startedAt": container_started,
                "finishedAt": now_rfc3339(),
                "containerID": f"process://{run.proc.pid}",
            }
            if returncode < 0:
                terminated["signal"] = -returncode
            self._log(f"exit {run.namespace}/{run.name}: code {code} ({reason})")
            restart = restart_policy == "Always" or (restart_policy == "OnFailure" and code != 0)
            if restart and not run.terminate.is_set() and not self._stopping.is_set():
                run.restart_count += 1
                last_state = {"terminated": terminated}
                backoff = min(self.restart_backoff * 2 ** (run.restart_count - 1), 10.0)
                self._write_status(
                    run, partial(self._set_backoff, pod=pod, run=run, terminated=terminated)
                )
                if run.terminate.wait(backoff):
                    break
                continue
            if not self._stopping.is_set():
                self._write_status(
                    run,
                    partial(
                        self._set_terminated,
                        pod=pod,
                        run=run,
                        terminated=terminated,
                        last_state=last_state,
                    ),
                )
            return
        # Deleted while waiting to (re)start: report the last exit, if any.
        if self._stopping.is_set():
            return
        if "terminated" in last_state:
            finish = partial(
                self._set_terminated,
                pod=pod,
                run=run,
                terminated=last_state["terminated"],
                last_state={},
            )
            self._write_status(run, finish)
        else:
            self._write_status(
                run, partial(self._set_failed, pod=pod, message="deleted before start")
            )

    def _wait_process(self, run: PodRun) -> int:
        """Wait for the process; on a termination request SIGTERM, then SIGKILL after grace."""
        assert run.proc is not None
        while True:
            try:
                return run.proc.wait(0.1)
            except subprocess.TimeoutExpired:
                pass
            if run.terminate.is_set():
                break
        self._signal(run, signal.SIGTERM if run.grace_seconds > 0 else signal.SIGKILL)
        try:
            return run.proc.wait(run.grace_seconds)
        except subprocess.TimeoutExpired:
            self._log(f"grace period over for {run.namespace}/{run.name}: SIGKILL")
            self._signal(run, signal.SIGKILL)
            return run.proc.wait()

    def _signal(self, run: PodRun, sig: signal.Signals) -> None:
        proc = run.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)

    def _bind(self, run: PodRun) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": run.name, "namespace": run.namespace},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name},
        }
        try:
            self.core.create_namespaced_pod_binding(
                run.name, run.namespace, body, _preload_content=False
            )
        except client.ApiException as e:
            if e.status != 409:  # already bound
                raise

    def _token_kubeconfig(self, run: PodRun, pod: Json) -> Path:
        sa = pod["spec"].get("serviceAccountName") or "default"
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": 3600,
                # Bound to the pod, as a projected token is: invalid once the pod is gone.
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": run.name,
                    "uid": run.uid,
                },
            },
        }
        resp = _json(
            self.core.create_namespaced_service_account_token(
                sa, run.namespace, body, _preload_content=False
            )
        )
        token = resp["status"]["token"]
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "cluster",
                    "cluster": {
                        "server": self._cluster.server,
                        "certificate-authority": str(self._cluster.ca_file),
                    },
                }
            ],
            "users": [
                {"name": f"system:serviceaccount:{run.namespace}:{sa}", "user": {"token": token}}
            ],
            "contexts": [
                {
                    "name": "pod",
                    "context": {
                        "cluster": "cluster",
                        "user": f"system:serviceaccount:{run.namespace}:{sa}",
                        "namespace": run.namespace,
                    },
                }
            ],
            "current-context": "pod",
        }
        path = run.workdir / "kubeconfig"
        path.write_text(yaml.safe_dump(cfg))
        path.chmod(0o600)
        return path

    def _environment(self, run: PodRun, pod: Json, container: Json) -> dict[str, str]:
        env: dict[str, str] = {}
        if self.inherit_env:
            env.update(
                (k, v)
                for k, v in os.environ.items()
                if k not in _SCRUBBED_ENV and not k.startswith(_SCRUBBED_PREFIXES)
            )
        env.update(self.extra_env)
        env["HOSTNAME"] = run.name
        env["POD_WORKDIR"] = str(run.workdir)
        env["KUBECONFIG"] = str(self._token_kubeconfig(run, pod))

        declared: dict[str, str] = {}
        for source in container.get("envFrom", []):
            prefix = source.get("prefix", "")
            for ref_kind in ("configMapRef", "secretRef"):
                if ref_kind in source:
                    ref = source[ref_kind]
                    data = self._ref_data(
                        run.namespace, ref_kind, ref["name"], ref.get("optional", False)
                    )
                    declared.update({prefix + k: v for k, v in data.items()})
        for var in container.get("env", []):
            if "valueFrom" in var:
                value = self._value_from(run, pod, var["valueFrom"])
                if value is None:
                    continue
            else:
                value = expand_vars(var.get("value", ""), {**env, **declared})
            declared[var["name"]] = value
        env.update(declared)
        return env

    def _value_from(self, run: PodRun, pod: Json, source: Json) -> str | None:
        if "fieldRef" in source:
            return self._field(pod, source["fieldRef"]["fieldPath"])
        for ref_kind, key_kind in (
            ("configMapKeyRef", "configMapRef"),
            ("secretKeyRef", "secretRef"),
        ):
            if ref_kind in source:
                ref = source[ref_kind]
                data = self._ref_data(
                    run.namespace, key_kind, ref["name"], ref.get("optional", False)
                )
                if ref["key"] not in data and not ref.get("optional", False):
                    raise KubeletError(f"{ref_kind} {ref['name']}/{ref['key']} not found")
                return data.get(ref["key"])
        if "resourceFieldRef" in source:
            return "0"  # no resource accounting here
        raise KubeletError(f"unsupported valueFrom: {source}")

    def _field(self, pod: Json, path: str) -> str:
        meta, spec = pod["metadata"], pod["spec"]
        m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
        if m:
            return str(meta.get(m.group(1), {}).get(m.group(2), ""))
        simple: dict[str, Callable[[], Any]] = {
            "metadata.name": lambda: meta["name"],
            "metadata.namespace": lambda: meta["namespace"],
            "metadata.uid": lambda: meta["uid"],
            "spec.nodeName": lambda: spec.get("nodeName") or self.node_name,
            "spec.serviceAccountName": lambda: spec.get("serviceAccountName", "default"),
            "status.hostIP": lambda: "127.0.0.1",
            "status.podIP": lambda: "127.0.0.1",
        }
        if path not in simple:
            raise KubeletError(f"unsupported fieldRef: {path}")
        return str(simple[path]())

    def _ref_data(self, namespace: str, kind: str, name: str, optional: bool) -> dict[str, str]:
        try:
            if kind == "configMapRef":
                cm = _json(
                    self.core.read_namespaced_config_map(name, namespace, _preload_content=False)
                )
                return dict(cm.get("data") or {})
            secret = _json(
                self.core.read_namespaced_secret(name, namespace, _preload_content=False)
            )
            return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
        except client.ApiException as e:
            if e.status == 404 and optional:
                return {}
            raise

    # ---- status ------------------------------------------------------------------------------

    def _write_status(self, run: PodRun, mutate: Callable[[Json], None]) -> Json | None:
        """Read-modify-write the pod's status (retrying conflicts); remember the result."""
        for _ in range(20):
            try:
                pod = _json(
                    self.core.read_namespaced_pod(run.name, run.namespace, _preload_content=False)
                )
            except client.ApiException as e:
                if e.status == 404:
                    return None
                raise
            if pod["metadata"]["uid"] != run.uid:
                return None
            mutate(pod.setdefault("status", {}))
            try:
                written = _json(
                    self.core.replace_namespaced_pod_status(
                        run.name, run.namespace, pod, _preload_content=False
                    )
                )
            except client.ApiException as e:
                if e.status == 409:
                    continue
                if e.status == 404:
                    return None
                raise
            run.last_pod = written
            return run.last_pod
        raise KubeletError(f"could not write the status of {run.namespace}/{run.name}: conflicts")

    @staticmethod
    def _set_condition(status: Json, ctype: str, value: str, reason: str | None = None) -> None:
        conditions: list[Json] = status.setdefault("conditions", [])
        for cond in conditions:
            if cond["type"] == ctype:
                if cond.get("status") != value:
                    cond["lastTransitionTime"] = now_rfc3339()
                cond["status"] = value
                if reason:
                    cond["reason"] = reason
                else:
                    cond.pop("reason", None)
                return
        new: Json = {"type": ctype, "status": value, "lastTransitionTime": now_rfc3339()}
        if reason:
            new["reason"] = reason
        conditions.append(new)

    def _container_status(
        self, pod: Json, run: PodRun, state: Json, last_state: Json, ready: bool
    ) -> Json:
        container = pod["spec"]["containers"][0]
        return {
            "name": container["name"],
            "image": container.get("image", ""),
            "imageID": "",
            "containerID": f"process://{run.proc.pid}" if run.proc else "",
            "ready": ready,
            "started": "running" in state,
            "restartCount": run.restart_count,
            "state": state,
            "lastState": last_state,
        }

    def _set_common(self, status: Json, started_at: str | None = None) -> None:
        status.setdefault("startTime", started_at or now_rfc3339())
        status["hostIP"] = "127.0.0.1"
        status["hostIPs"] = [{"ip": "127.0.0.1"}]
        status["podIP"] = "127.0.0.1"
        status["podIPs"] = [{"ip": "127.0.0.1"}]
        self._set_condition(status, "PodScheduled", "True")
        self._set_condition(status, "Initialized", "True")

    def _set_running(
        self,
        status: Json,
        pod: Json,
        container_started: str,
        started_at: str,
        run: PodRun,
        last_state: Json,
    ) -> None:
        self._set_common(status, started_at)
        status["phase"] = "Running"
        state = {"running": {"startedAt": container_started}}
        status["containerStatuses"] = [
            self._container_status(pod, run, state, last_state, ready=True)
        ]
        self._set_condition(status, "ContainersReady", "True")
        self._set_condition(status, "Ready", "True")

    def _set_backoff(self, status: Json, pod: Json, terminated: Json, run: PodRun) -> None:
        self._set_common(status)
        status["phase"] = "Running"
        state = {
            "waiting": {
                "reason": "CrashLoopBackOff",
                "message": "back-off restarting failed container",
            }
        }
        status["containerStatuses"] = [
            self._container_status(pod, run, state, {"terminated": terminated}, ready=False)
        ]
        self._set_condition(status, "ContainersReady", "False", "ContainersNotReady")
        self._set_condition(status, "Ready", "False", "ContainersNotReady")

    def _set_terminated(
        self, status: Json, pod: Json, terminated: Json, run: PodRun, last_state: Json
    ) -> None:
        self._set_common(status)
        status["phase"] = "Succeeded" if terminated["exitCode"] == 0 else "Failed"
        status["containerStatuses"] = [
            self._container_status(pod, run, {"terminated": terminated}, last_state, ready=False)
        ]
        self._set_condition(status, "ContainersReady", "False", "PodCompleted")
        self._set_condition(status, "Ready", "False", "PodCompleted")

    def _set_failed(self, status: Json, pod: Json, message: str) -> None:
        self._set_common(status)
        status["phase"] = "Failed"
        status["reason"] = "ProcessKubeletError"
        status["message"] = message[:1000]

    def _finalize(self, namespace: str, name: str, uid: str) -> None:
        """Remove a stopped, deleted pod from the API, as the kubelet does."""
        if not self.finalize_deleted:
            return
        self._log(f"finalize {namespace}/{name}")
        with contextlib.suppress(client.ApiException):
            self.core.delete_namespaced_pod(
                name,
                namespace,
                body={"gracePeriodSeconds": 0, "preconditions": {"uid": uid}},
                _preload_content=False,
            )


def main(argv: list[str] | None = None) -> None:
    """Run the kubelet in the foreground until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--kubeconfig", type=Path, required=True, help="admin kubeconfig")
    parser.add_argument("--workdir", type=Path, required=True, help="pods' working dirs and logs")
    parser.add_argument("-n", "--namespace", action="append", help="watch only these (repeatable)")
    parser.add_argument("--node-name", default=NODE_NAME)
    parser.add_argument("--tls-cert", type=Path, help="serve logs with this cert (PEM)...")
    parser.add_argument("--tls-key", type=Path, help="...and key, to clients whose certs...")
    parser.add_argument("--client-ca", type=Path, help="...chain to this CA (the cluster's)")
    args = parser.parse_args(argv)
    tls_args = (args.tls_cert, args.tls_key, args.client_ca)
    if any(tls_args) and not all(tls_args):
        parser.error("--tls-cert, --tls-key and --client-ca go together")
    tls = ServingTLS(*tls_args) if all(tls_args) else None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    log.setLevel(logging.DEBUG)
    kubelet = ProcessKubelet(
        args.kubeconfig,
        args.workdir,
        namespaces=args.namespace,
        node_name=args.node_name,
        tls=tls,
    ).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        kubelet.stop()


if __name__ == "__main__":
    main()
