"""One operator, 1,000 batches: memory, CPU, recovery latency and API load. Run by hand.

    .venv/bin/python bench/operator_scale.py              # about 7 minutes; last line is JSON
    .venv/bin/python bench/operator_scale.py --kill-rate 0 --items 120   # the burst
    .venv/bin/python bench/operator_scale.py --batches 200 --items 60
    .venv/bin/python bench/operator_scale.py --every-seconds 1   # the old default, to compare

Starts the test control plane (etcd + kube-apiserver from tests/controlplane) and
the real operator as a subprocess (the ``resumable-operator`` entry point, four
reconcile workers, as deployed), creates --batches ResumableBatch objects with zero
restart backoff, and plays the kubelet and the workers itself:

  - **Simulated workers, real writes.** A 2-core machine cannot hold 1,000 worker
    processes (each Python worker is 30-40 MB and a few hundred ms of CPU to start),
    so no process runs: :class:`Fleet` watches the pods the operator creates, marks
    each Running (the pod status PATCH a kubelet makes), and runs a simulated worker
    for it in this process. The worker claims its attempt and writes its checkpoints
    through the SDK's own :class:`resumable._kube.KubeStore` (the fenced status
    PATCHes a real worker sends, the same bytes) at the item boundaries the SDK's
    own :class:`resumable._policy.Coalescer` says, under the default policy resolved
    for a cluster (``spec.checkpoint`` left unset). Items take --item-seconds of
    wall time and no CPU. A worker blocks while its write is in flight, as the SDK's
    does.
  - **One kill per batch.** Once every batch runs, first attempts die one after
    another at --kill-rate a second (default 5: 1,000 kills over 200 s), the
    earliest started first, each at its next item boundary: no final write, the pod
    reported Failed with exit 137 (what the process kubelet reports for SIGKILL).
    The operator sees the failure and creates the next attempt's pod, which resumes
    from the checkpoint and finishes; the batch ends Succeeded. ``--kill-rate 0``
    is the burst instead: each first attempt dies at an item drawn (seeded) from
    half way to seven eighths of its list, 1,000 kills in about a minute.

Reported: the operator's peak RSS (VmHWM) and CPU seconds (utime + stime, from
/proc), failure-to-replacement latency (the Failed status written, to the new
pod's ADDED event on this process's watch) p50/p99 beside the operator's own
``resumable_resume_seconds``, the reconcile queue depth (the operator's
``resumable_reconcile_queue_depth``, sampled), API requests per batch and per
item (``apiserver_request_total`` from the API server's /metrics; the operator's
share is the total less what this process sent), and status writes/s at the API
server while all batches run. Targets (issue 20): peak RSS <= 250 MB, p99
failure-to-pod <= 2 s, status writes <= 100/s with 1,000 running. Exit status 1
when one is missed.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import math
import os
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from kubernetes import client as k8s_client  # noqa: E402
from kubernetes import config as k8s_config  # noqa: E402
from kubernetes import watch  # noqa: E402

from bench._common import (  # noqa: E402
    percentile,
    request_counts,
    table,
    work_directory,
    writes,
)
from resumable._kube import KubeStore  # noqa: E402
from resumable._policy import Coalescer  # noqa: E402
from resumable.errors import ResumableError  # noqa: E402
from resumable.kubeapi import MERGE_PATCH, KubeApi, batch_path  # noqa: E402
from resumable.v1alpha1 import GROUP, PLURAL, VERSION, Checkpoint, CheckpointPolicy  # noqa: E402
from tests.integration.harness import OperatorProcess  # noqa: E402
from tests.kube.controlplane import find_binaries, running_control_plane  # noqa: E402

NAMESPACE = "fleet"
TARGET_RSS_MB = 250.0
TARGET_P99_S = 2.0
TARGET_WRITES_PER_S = 100.0
#: Status writes/s are taken over the samples with at least this share of batches running.
RUNNING_SHARE = 0.95
#: Threads that send this process's requests (pod statuses, checkpoint writes).
SENDERS = 24


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class CountingApi(KubeApi):
    """A KubeApi that counts what it sends, by (verb, resource), for the per-client split."""

    def __init__(self, api_client: Any) -> None:
        super().__init__(api_client)
        self.lock = threading.Lock()
        self.sent: Counter[str] = Counter()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        with self.lock:
            self.sent[method] += 1
        return super().request(method, path, **kwargs)


def api_client(kubeconfig: Path, pool: int) -> Any:
    """An ApiClient with a connection pool as large as the threads sharing it."""
    configuration = k8s_client.Configuration()
    k8s_config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    configuration.connection_pool_maxsize = pool
    configuration.retries = 0
    return k8s_client.ApiClient(configuration)


@dataclass
class Worker:
    """One simulated worker: a pod of one attempt and where its items are."""

    batch: str
    pod: str
    attempt: int
    total: int
    kill_at: int | None
    store: KubeStore
    coalescer: Coalescer
    index: int = 0
    saved: int = 0


@dataclass
class Fleet:
    """Plays the kubelet and the workers for every pod the operator creates."""

    api: CountingApi
    kubeconfig: Path
    items: int
    item_seconds: float
    policy: CheckpointPolicy
    kill_at: dict[str, int]
    lock: threading.Lock = field(default_factory=threading.Lock)
    running: int = 0
    #: Batches whose first attempt dies at its next item boundary (--kill-rate).
    doomed: set[str] = field(default_factory=set)
    #: Batches in the order their first attempt started.
    started: list[str] = field(default_factory=list)
    failed_at: dict[str, float] = field(default_factory=dict)
    replaced_at: dict[str, float] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)
    errors: Counter[str] = field(default_factory=Counter)
    checkpoint_writes: int = 0
    _heap: list[tuple[float, int, Callable[[], None]]] = field(default_factory=list)
    _cv: threading.Condition = field(default_factory=threading.Condition)
    _seq: Any = field(default_factory=itertools.count)
    _stop: threading.Event = field(default_factory=threading.Event)
    _seen: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.pool = ThreadPoolExecutor(SENDERS, thread_name_prefix="send")
        self._threads = [
            threading.Thread(target=self._watch_loop, daemon=True),
            threading.Thread(target=self._clock_loop, daemon=True),
        ]

    def start(self) -> Fleet:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._cv:
            self._cv.notify_all()
        self.pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------ the clock

    def at(self, when: float, action: Callable[[], None]) -> None:
        """Run ``action`` on the clock thread at ``when`` (time.monotonic())."""
        with self._cv:
            heapq.heappush(self._heap, (when, next(self._seq), action))
            self._cv.notify()

    def _clock_loop(self) -> None:
        while not self._stop.is_set():
            with self._cv:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else 1.0
                    self._cv.wait(max(0.0, timeout))
                    if self._stop.is_set():
                        return
                _, _, action = heapq.heappop(self._heap)
            action()

    def send(self, action: Callable[[], None]) -> None:
        """Run an action that makes requests on a sender thread."""

        def guarded() -> None:
            try:
                action()
            except Exception as exc:  # counted and shown: a bench must not die of one
                with self.lock:
                    self.errors[type(exc).__name__] += 1
                    if self.errors[type(exc).__name__] <= 3:
                        print(f"  ({type(exc).__name__}: {exc})", file=sys.stderr)

        self.pool.submit(guarded)

    # ------------------------------------------------------------ the kubelet

    def _watch_loop(self) -> None:
        from tests.kube.controlplane import new_api_client

        api = new_api_client(self.kubeconfig)
        core: Any = k8s_client.CoreV1Api(api)
        while not self._stop.is_set():
            try:
                w: Any = watch.Watch()  # type: ignore[no-untyped-call]
                for event in w.stream(
                    core.list_namespaced_pod, NAMESPACE, timeout_seconds=300, deserialize=False
                ):
                    self._on_pod(event["type"], event["object"])
                    if self._stop.is_set():
                        w.stop()
            except Exception as exc:
                if not self._stop.is_set():
                    print(f"  (pod watch restarted: {exc!r})", file=sys.stderr)
                    time.sleep(0.2)

    def _on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        now = time.monotonic()
        meta = pod["metadata"]
        name = meta["name"]
        phase = (pod.get("status") or {}).get("phase")
        if kind != "ADDED" or name in self._seen or phase not in (None, "Pending"):
            return
        self._seen.add(name)
        labels = meta.get("labels") or {}
        batch, attempt = labels["resumable.dev/batch"], int(labels["resumable.dev/attempt"])
        if attempt > 1:
            with self.lock:
                self.replaced_at.setdefault(batch, now)
        api = self.api
        worker = Worker(
            batch=batch,
            pod=name,
            attempt=attempt,
            total=self.items,
            kill_at=self.kill_at.get(batch) if attempt == 1 else None,
            store=KubeStore(api, NAMESPACE, batch),
            coalescer=Coalescer(self.policy.resolved("kube"), last_write=now),
        )
        self.send(lambda: self._start(worker))

    def _pod_status(self, pod: str, status: dict[str, Any]) -> None:
        self.api.request(
            "PATCH",
            f"/api/v1/namespaces/{NAMESPACE}/pods/{pod}/status",
            body={"status": status},
            content_type=MERGE_PATCH,
        )

    def _container(self, state: dict[str, Any]) -> dict[str, Any]:
        ready = "running" in state
        return {
            "name": "worker",
            "image": "w:dev",
            "imageID": "",
            "ready": ready,
            "started": ready,
            "restartCount": 0,
            "state": state,
        }

    def _ended(self, worker: Worker, phase: str, code: int) -> None:
        stamp = now_rfc3339()
        term = {"exitCode": code, "reason": "Completed" if code == 0 else "Error"}
        term |= {"startedAt": stamp, "finishedAt": stamp}
        self._pod_status(
            worker.pod,
            {"phase": phase, "containerStatuses": [self._container({"terminated": term})]},
        )

    # ------------------------------------------------------------ the workers

    def _start(self, worker: Worker) -> None:
        stamp = now_rfc3339()
        self._pod_status(
            worker.pod,
            {
                "phase": "Running",
                "startTime": stamp,
                "containerStatuses": [self._container({"running": {"startedAt": stamp}})],
            },
        )
        status, _ = worker.store.claim(worker.attempt)
        worker.index = worker.saved = status.checkpoint.next_index
        worker.coalescer.last_write = time.monotonic()
        with self.lock:
            self.running += 1
            if worker.attempt == 1:
                self.started.append(worker.batch)
        self.at(time.monotonic() + self.item_seconds, lambda: self._boundary(worker))

    def _boundary(self, worker: Worker) -> None:
        """An item ended (clock thread): die, finish, write or go on."""
        now = time.monotonic()
        with self.lock:
            doomed = worker.attempt == 1 and worker.batch in self.doomed
        if doomed or (worker.kill_at is not None and worker.index == worker.kill_at):
            self.send(lambda: self._kill(worker))
            return
        worker.index += 1
        worker.coalescer.record()
        if worker.index >= worker.total:
            self.send(lambda: self._finish(worker))
        elif worker.coalescer.due(now):
            self.send(lambda: self._write(worker))
        else:
            self.at(now + self.item_seconds, lambda: self._boundary(worker))

    def _checkpoint(self, worker: Worker, *, finished: bool = False) -> Checkpoint:
        done = worker.index
        return Checkpoint(
            next_index=0 if finished else done,
            completed="" if finished or not done else f"0-{done - 1}",
            attempt=worker.attempt,
            items_done=done,
            total_items=worker.total,
            context={
                "taskId": f"{NAMESPACE}/{worker.batch}",
                "workerId": worker.pod,
                "attempt": worker.attempt,
                "iteration": 1 if finished else 0,
                "redone": 0,
                "user": {},
            },
            finished=finished,
            updated_at=now_rfc3339(),
        )

    def _write(self, worker: Worker) -> None:
        try:
            worker.store.try_checkpoint(
                self._checkpoint(worker),
                progress=f"{worker.index}/{worker.total}",
                expect_attempt=worker.attempt,
                expect_next=worker.saved,
            )
            worker.saved = worker.index
            worker.coalescer.written(time.monotonic())
            with self.lock:
                self.checkpoint_writes += 1
        except ResumableError as exc:
            started = time.monotonic()
            worker.coalescer.failed(started=started, now=started, jitter=random.random())
            with self.lock:
                self.errors[type(exc).__name__] += 1
        self.at(time.monotonic() + self.item_seconds, lambda: self._boundary(worker))

    def _kill(self, worker: Worker) -> None:
        with self.lock:
            self.running -= 1
        self._ended(worker, "Failed", 137)
        with self.lock:
            self.failed_at[worker.batch] = time.monotonic()

    def _finish(self, worker: Worker) -> None:
        worker.store.save_checkpoint(
            self._checkpoint(worker, finished=True),
            progress=f"{worker.total}/{worker.total}",
            expect_attempt=worker.attempt,
            expect_next=worker.saved,
            final=True,
        )
        with self.lock:
            self.running -= 1
            self.checkpoint_writes += 1
        self._ended(worker, "Succeeded", 0)
        with self.lock:
            self.finished.add(worker.batch)

    # ------------------------------------------------------------ results

    def latencies(self) -> list[float]:
        with self.lock:
            return [
                self.replaced_at[b] - t for b, t in self.failed_at.items() if b in self.replaced_at
            ]


@dataclass
class Sample:
    """One look at the operator, the fleet and (every few) the API server."""

    t: float
    running: int
    rss_mb: float
    cpu_s: float
    queue_depth: float
    in_flight: float
    requests: Counter[tuple[str, str, str]] | None = None


def proc_figures(pid: int) -> tuple[float, float, float]:
    """(RSS MB, peak RSS MB, CPU seconds) of a process, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    rss = int(fields["VmRSS"].split()[0]) / 1024
    peak = int(fields["VmHWM"].split()[0]) / 1024
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    return rss, peak, cpu


def metric(text: str, name: str) -> float:
    """The value of an unlabelled sample in a Prometheus text page (NaN when absent)."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return float("nan")


def histogram_quantile(text: str, name: str, q: float) -> float:
    """The bucket bound at quantile q of a Prometheus histogram (its upper bound)."""
    buckets: list[tuple[float, float]] = []
    for line in text.splitlines():
        if line.startswith(name + "_bucket{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float(bound), float(line.split()[-1])))
    if not buckets or buckets[-1][1] == 0:
        return float("nan")
    total = buckets[-1][1]
    return next(bound for bound, count in buckets if count >= q * total)


def apiserver_requests(api: KubeApi) -> Counter[tuple[str, str, str]]:
    text = b"".join(api.stream("/metrics")).decode()
    return request_counts(text)


def batch_manifest(name: str, items: int, every_seconds: float | None) -> dict[str, Any]:
    checkpoint = {} if every_seconds is None else {"everySeconds": every_seconds}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ResumableBatch",
        "metadata": {"name": name},
        "spec": {
            "totalItems": items,
            "checkpoint": checkpoint,
            "retry": {"backoff": {"initialSeconds": 0, "maxSeconds": 0, "factor": 1}},
            "template": {
                "spec": {"containers": [{"name": "worker", "image": "w:dev", "command": ["true"]}]}
            },
        },
    }


def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    binaries = find_binaries(log_file=workdir / "build.log")
    rng = random.Random(args.seed)
    names = [f"b{i:04d}" for i in range(args.batches)]
    # Late in the list (from half way to seven eighths): every batch is running
    # before the first kill, so the steady state with all of them running is seen.
    low, high = args.items // 2, args.items * 7 // 8
    kill_at = {} if args.kill_rate else {name: rng.randrange(low, high) for name in names}
    with running_control_plane(workdir / "cp", binaries=binaries) as cp:
        cp.install_crds(sorted((ROOT / "crds").glob("*.yaml")))
        cp.create_namespace(NAMESPACE)
        env = {"RESUMABLE_OPERATOR_LOG_LEVEL": args.operator_log_level}
        if args.operator_workers:
            env["RESUMABLE_OPERATOR_WORKERS"] = str(args.operator_workers)
        operator = OperatorProcess(cp.kubeconfig, NAMESPACE, workdir / "operator.log", env=env)
        operator.start()
        assert operator.process is not None
        pid = operator.process.pid
        api = CountingApi(api_client(cp.kubeconfig, SENDERS + 8))
        admin = KubeApi(api_client(cp.kubeconfig, 4))
        policy = CheckpointPolicy(every_seconds=args.every_seconds)
        fleet = Fleet(api, cp.kubeconfig, args.items, args.item_seconds, policy, kill_at).start()
        profiler = start_profiler(args.profile, pid, workdir)
        samples: list[Sample] = []
        try:
            base_requests = apiserver_requests(admin)
            _, _, cpu0 = proc_figures(pid)
            sent0 = sum(api.sent.values())
            t0 = time.monotonic()
            creating = ThreadPoolExecutor(8)
            for name in names:
                body = batch_manifest(name, args.items, args.every_seconds)
                creating.submit(admin.request, "POST", batch_path(NAMESPACE), body=body)
            creating.shutdown(wait=False)
            if args.kill_rate:
                threading.Thread(target=killer, args=(fleet, args), daemon=True).start()
            print(f"created {args.batches} batches; sampling every {args.sample_seconds:g} s")
            print(
                f"{'t':>6} {'running':>8} {'replaced':>9} {'done':>6} {'rss MB':>7} "
                f"{'cpu s':>7} {'queue':>6} {'writes/s':>9}"
            )
            last_api_sample = 0.0
            deadline = t0 + args.timeout
            while True:
                time.sleep(args.sample_seconds)
                now = time.monotonic()
                rss, _, cpu = proc_figures(pid)
                page = operator.metrics()
                sample = Sample(
                    t=now - t0,
                    running=fleet.running,
                    rss_mb=rss,
                    cpu_s=cpu - cpu0,
                    queue_depth=metric(page, "resumable_reconcile_queue_depth"),
                    in_flight=metric(page, "resumable_reconciles_in_flight"),
                )
                if now - last_api_sample >= args.api_sample_seconds:
                    sample.requests = apiserver_requests(admin)
                    last_api_sample = now
                samples.append(sample)
                counted = [s for s in samples if s.requests is not None][-2:]
                rate = status_rate(counted) if sample.requests else None
                print(
                    f"{sample.t:>6.0f} {sample.running:>8} {len(fleet.replaced_at):>9} "
                    f"{len(fleet.finished):>6} {rss:>7.0f} {sample.cpu_s:>7.1f} "
                    f"{sample.queue_depth:>6.0f} {'' if rate is None else f'{rate:.0f}':>9}",
                    flush=True,
                )
                if len(fleet.finished) >= args.batches and succeeded(admin) >= args.batches:
                    break
                if now > deadline:
                    print(f"timed out after {args.timeout:.0f} s", file=sys.stderr)
                    break
            wall = time.monotonic() - t0
            final_requests = apiserver_requests(admin)
            _, peak, cpu = proc_figures(pid)
            page = operator.metrics()
        finally:
            stop_profiler(profiler)
            fleet.stop()
            operator.stop()
        sent = sum(api.sent.values()) - sent0
        succeeded_count = succeeded(admin)
    total = final_requests - base_requests
    return summarise(
        args,
        samples,
        fleet,
        total=total,
        sent=sent,
        peak_mb=peak,
        cpu_s=cpu - cpu0,
        wall=wall,
        succeeded=succeeded_count,
        operator_resume_p99=histogram_quantile(page, "resumable_resume_seconds", 0.99),
    )


def killer(fleet: Fleet, args: argparse.Namespace) -> None:
    """--kill-rate: once every batch runs, kill one first attempt after another at that
    rate, the earliest started first (each at its next item boundary)."""
    deadline = time.monotonic() + args.timeout / 2
    while fleet.running < args.batches and time.monotonic() < deadline:
        time.sleep(0.5)
    print(f"all {fleet.running} running: killing {args.kill_rate:g} a second", flush=True)
    for index in range(args.batches):
        with fleet.lock:
            if index >= len(fleet.started):
                break
            fleet.doomed.add(fleet.started[index])
        time.sleep(1.0 / args.kill_rate)


def succeeded(api: KubeApi) -> int:
    listing = api.request("GET", batch_path(NAMESPACE))
    count = 0
    for obj in listing.get("items", []):
        for c in (obj.get("status") or {}).get("conditions", []):
            if c["type"] == "Succeeded" and c["status"] == "True":
                count += 1
    return count


def status_rate(samples: list[Sample]) -> float | None:
    """Status PATCHes/s between the first and last of ``samples`` that have API counts."""
    counted = [s for s in samples if s.requests is not None]
    if len(counted) < 2:
        return None
    first, last = counted[0], counted[-1]
    assert first.requests is not None
    assert last.requests is not None
    key = ("PATCH", PLURAL, "status")
    return (last.requests[key] - first.requests[key]) / (last.t - first.t)


def start_profiler(seconds: float, pid: int, workdir: Path) -> Any:
    """py-spy on the operator for ``seconds`` (0: none), written to workdir/profile.txt."""
    if not seconds:
        return None
    import shutil
    import subprocess

    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out = workdir / "operator-profile.txt"
    cmd = [spy, "record", "-p", str(pid), "-d", str(int(seconds)), "-f", "raw", "-o", str(out)]
    print(f"profiling the operator for {seconds:.0f} s into {out}")
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_profiler(proc: Any) -> None:
    if proc is not None:
        try:
            proc.wait(timeout=60)
        except Exception:
            proc.kill()


def summarise(
    args: argparse.Namespace,
    samples: list[Sample],
    fleet: Fleet,
    *,
    total: Counter[tuple[str, str, str]],
    sent: int,
    peak_mb: float,
    cpu_s: float,
    wall: float,
    succeeded: int,
    operator_resume_p99: float,
) -> dict[str, Any]:
    latencies = fleet.latencies()
    threshold = RUNNING_SHARE * args.batches
    steady = [s for s in samples if s.running >= threshold and s.requests is not None]
    requests = sum(total.values())
    watches = sum(n for (verb, _, _), n in total.items() if verb == "WATCH")
    status_key = ("PATCH", PLURAL, "status")
    counted = [s for s in samples if s.requests is not None]
    rates = [status_rate([a, b]) or 0.0 for a, b in itertools.pairwise(counted)]
    every = CheckpointPolicy(every_seconds=args.every_seconds).resolved("kube").every_seconds
    items_done = args.batches * args.items
    operator_requests = requests - sent - watches
    figures: dict[str, Any] = {
        "batches": args.batches,
        "items_per_batch": args.items,
        "item_s": args.item_seconds,
        "every_seconds": every,
        "succeeded": succeeded,
        "wall_s": round(wall, 1),
        "operator_peak_rss_mb": round(peak_mb, 1),
        "operator_cpu_s": round(cpu_s, 1),
        "failures": len(fleet.failed_at),
        "replacements": len(latencies),
        "failure_to_pod_p50_s": round(percentile(latencies, 50), 3),
        "failure_to_pod_p99_s": round(percentile(latencies, 99), 3),
        "failure_to_pod_max_s": round(max(latencies, default=float("nan")), 3),
        "operator_resume_seconds_p99_bucket": (
            None if math.isnan(operator_resume_p99) else operator_resume_p99
        ),
        "queue_depth_max": max((s.queue_depth for s in samples), default=0),
        "queue_depth_mean": round(sum(s.queue_depth for s in samples) / max(1, len(samples)), 1),
        "api_requests": requests,
        "api_requests_per_batch": round(requests / args.batches, 1),
        "api_requests_per_item": round(requests / items_done, 3),
        "operator_requests_per_batch": round(operator_requests / args.batches, 1),
        "worker_kubelet_requests_per_batch": round(sent / args.batches, 1),
        "api_writes_per_batch": round(writes(total) / args.batches, 1),
        "status_writes": total[status_key],
        "checkpoint_writes": fleet.checkpoint_writes,
        "status_writes_per_s_all_running": (
            round(status_rate(steady) or float("nan"), 1) if len(steady) >= 2 else None
        ),
        "status_writes_per_s_peak": round(max(rates, default=0.0), 1),
        "status_writes_per_s_mean": round(total[status_key] / wall, 1),
        "seconds_all_running": round(steady[-1].t - steady[0].t, 1) if len(steady) >= 2 else 0,
        "bench_errors": dict(fleet.errors),
    }
    steady_rate = figures["status_writes_per_s_all_running"]
    figures["targets"] = {
        "peak_rss_mb<=250": figures["operator_peak_rss_mb"] <= TARGET_RSS_MB,
        "failure_to_pod_p99_s<=2": figures["failure_to_pod_p99_s"] <= TARGET_P99_S,
        "status_writes_per_s<=100": steady_rate is not None and steady_rate <= TARGET_WRITES_PER_S,
    }
    figures["targets_met"] = all(figures["targets"].values())
    return figures


def report(figures: dict[str, Any]) -> None:
    f = figures
    print()
    print(
        f"{f['batches']} batches x {f['items_per_batch']} items of {f['item_s']:g} s, "
        f"checkpoint every {f['every_seconds']:g} s, one kill each; {f['succeeded']} Succeeded "
        f"in {f['wall_s']:.0f} s"
    )
    rows: list[list[object]] = [
        ["operator peak RSS (MB)", f["operator_peak_rss_mb"], f"<= {TARGET_RSS_MB:.0f}"],
        ["operator CPU (s)", f["operator_cpu_s"], ""],
        ["failure to new pod p50 (s)", f["failure_to_pod_p50_s"], ""],
        ["failure to new pod p99 (s)", f["failure_to_pod_p99_s"], f"<= {TARGET_P99_S:.0f}"],
        ["failure to new pod max (s)", f["failure_to_pod_max_s"], ""],
        ["  operator's own p99 (bucket bound, s)", f["operator_resume_seconds_p99_bucket"], ""],
        ["reconcile queue depth max", f["queue_depth_max"], ""],
        ["reconcile queue depth mean", f["queue_depth_mean"], ""],
        ["API requests per batch", f["api_requests_per_batch"], ""],
        ["  of them the operator's", f["operator_requests_per_batch"], ""],
        ["  of them workers' and kubelet's", f["worker_kubelet_requests_per_batch"], ""],
        ["API requests per item", f["api_requests_per_item"], ""],
        ["API writes per batch", f["api_writes_per_batch"], ""],
        [
            "status writes/s, all running",
            "n/a"
            if f["status_writes_per_s_all_running"] is None
            else f["status_writes_per_s_all_running"],
            f"<= {TARGET_WRITES_PER_S:.0f}",
        ],
        ["  seconds with all running", f["seconds_all_running"], ""],
        ["status writes/s, peak sample", f["status_writes_per_s_peak"], ""],
        ["status writes/s, whole run", f["status_writes_per_s_mean"], ""],
    ]
    print(table(["", "measured", "target"], rows))
    for name, ok in f["targets"].items():
        print(f"target {name}: {'PASS' if ok else 'FAIL'}")
    if f["bench_errors"]:
        print(f"bench-side errors (counted, not fatal): {f['bench_errors']}")
    print(json.dumps(figures))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=1000, help="batches (default 1000)")
    parser.add_argument("--items", type=int, default=300, help="items per batch (default 300)")
    parser.add_argument(
        "--item-seconds", type=float, default=1.0, help="wall time per item (default 1)"
    )
    parser.add_argument(
        "--every-seconds",
        type=float,
        default=None,
        help="spec.checkpoint.everySeconds (default: unset, the cluster default)",
    )
    parser.add_argument("--operator-workers", type=int, default=0, help="reconcile workers")
    parser.add_argument(
        "--kill-rate",
        type=float,
        default=5.0,
        help="kills a second once all batches run, earliest started first (default 5); "
        "0: each first attempt dies at an item drawn from its second half instead",
    )
    parser.add_argument("--seed", type=int, default=20, help="seed of the kill points")
    parser.add_argument("--sample-seconds", type=float, default=2.0)
    parser.add_argument("--api-sample-seconds", type=float, default=4.0)
    parser.add_argument("--timeout", type=float, default=900.0, help="give up after (s)")
    parser.add_argument(
        "--profile", type=float, default=0.0, help="py-spy the operator for this many seconds"
    )
    parser.add_argument("--operator-log-level", default="WARNING")
    parser.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    args = parser.parse_args(argv)
    if args.items < 8:
        parser.error("--items must be at least 8 (the kill falls in the second half)")
    logs = "operator.log, cp/*.log, operator-profile.txt"
    with work_directory("rb-bench-scale-", keep=args.keep, logs=logs) as workdir:
        figures = measure(args, workdir)
    report(figures)
    return 0 if figures["targets_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
