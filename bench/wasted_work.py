"""Work wasted by failures, four ways, against the failure-free ideal. Run by hand.

    .venv/bin/python bench/wasted_work.py            # about 2 minutes; last line is JSON
    .venv/bin/python bench/wasted_work.py --scale 0.05 --failures 5

One batch of 200 items with realistic costs, drawn once (seeded): an LLM call per
item, seconds log-normal around 8 s (0.5 sigma), input tokens around 3,000 and
output tokens around 400, priced at $3 and $15 per million (bench/wasted_worker.py).
Seconds are time-scaled by --scale (default 0.02: 8 s become 0.16 s). The same
failures happen at the same points for every strategy: the first time the batch
works on one of the --failures chosen items (seeded, spread over the list), the
worker dies half way through it (SIGKILL), having spent half its tokens.

  - **restart from scratch (plain Job)**: every failure starts over at item 1,
    after the Job controller's backoff (10 s, 20 s, 40 s..., time-scaled).
  - **one pod per item (Indexed Job, backoffLimitPerIndex)**: parallelism 1, a pod
    start before every item; a failed index is retried after its backoff (10 s,
    time-scaled), the items done stay done.
  - **this system, default policy**: the real SDK and operator on the test control
    plane, the worker a process run by the process kubelet; spec.checkpoint the
    cluster default (everySeconds 10, minIntervalSeconds 1) and the restart
    backoff (2 s, x2) time-scaled like the items.
  - **durable write after every item**: the same, with everyItems 1 and
    minIntervalSeconds 0.

The two Job strategies are modelled (the test control plane has no Job
controller): their work is the same arithmetic over the same items, their pod
start is the one measured for our attempts in this run (pod created to the
worker's first line), and their API writes count what the Job controller, the
scheduler and the kubelet write per pod (:data:`WRITES_PER_POD`) plus the Job
itself. Ours are measured: items and tokens from the worker's log, wall time from
the batch's creation to its Succeeded condition, API writes from the API server's
``apiserver_request_total`` (every POST, PUT, PATCH and DELETE while it ran: the
operator's, the worker's checkpoints, the kubelet's). The ideal is one pod doing
every item once, with no failure (a plain Job's writes). Prints each strategy's
figures and its ratio to the ideal.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from kubernetes import client as k8s_client  # noqa: E402
from kubernetes import watch  # noqa: E402

from bench._common import request_counts, table, work_directory, writes  # noqa: E402
from bench.wasted_worker import item_cost_usd  # noqa: E402
from resumable.kubeapi import KubeApi, batch_path  # noqa: E402
from resumable.v1alpha1 import DEFAULT_EVERY_SECONDS, CheckpointPolicy  # noqa: E402
from tests.integration.harness import OperatorProcess  # noqa: E402
from tests.kube.controlplane import find_binaries, new_api_client, running_control_plane  # noqa: E402
from tests.kube.kubelet import ProcessKubelet  # noqa: E402

NAMESPACE = "wasted"
WORKER = ROOT / "bench" / "wasted_worker.py"
#: The Job controller's backoff after a failed pod: 10 s, doubling (documented).
JOB_BACKOFF_S = 10.0
#: API writes per pod of a Job: the pod's create, its binding, the kubelet's two
#: status writes (Running, terminated) and the Job controller's status update.
WRITES_PER_POD = 5
#: The Job object itself.
WRITES_PER_JOB = 1


@dataclass(frozen=True)
class Item:
    seconds: float
    tokens_in: int
    tokens_out: int

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out

    @property
    def cost_usd(self) -> float:
        return item_cost_usd(self.tokens_in, self.tokens_out)


@dataclass
class Outcome:
    """What one strategy spent to get every item done."""

    name: str
    items: int = 0  # item completions, redone ones included
    tokens: float = 0.0
    cost_usd: float = 0.0
    wall_s: float = 0.0
    writes: int = 0
    pods: int = 0

    def spend(self, item: Item, share: float = 1.0) -> None:
        """Pay for ``share`` of an item (a whole one counts as processed)."""
        self.tokens += item.tokens * share
        self.cost_usd += item.cost_usd * share
        if share == 1.0:
            self.items += 1


def draw_items(count: int, scale: float, rng: random.Random) -> list[Item]:
    """Item costs: seconds log-normal around 8 s (time-scaled), tokens around 3,000/400."""
    items = []
    for _ in range(count):
        seconds = rng.lognormvariate(0.0, 0.5) * 8.0 * scale
        tokens_in = max(200, int(rng.gauss(3000, 800)))
        tokens_out = max(50, int(rng.gauss(400, 100)))
        items.append(Item(round(seconds, 4), tokens_in, tokens_out))
    return items


def failure_points(count: int, failures: int, rng: random.Random) -> list[int]:
    """``failures`` item indices, one in each of as many equal stretches of the list."""
    stretch = count / (failures + 1)
    return [
        int(stretch * (k + 1) + rng.uniform(-stretch / 3, stretch / 3)) for k in range(failures)
    ]


def ideal(items: list[Item], pod_start: float) -> Outcome:
    """One pod, every item once, no failure."""
    out = Outcome("failure-free ideal", wall_s=pod_start, writes=WRITES_PER_JOB + WRITES_PER_POD)
    out.pods = 1
    for item in items:
        out.spend(item)
        out.wall_s += item.seconds
    return out


def plain_job(items: list[Item], fail_at: list[int], pod_start: float, scale: float) -> Outcome:
    """Restart from scratch: each failure (the first visit of its item) starts over."""
    out = Outcome("restart from scratch (Job)", writes=WRITES_PER_JOB)
    pending = set(fail_at)
    backoff = JOB_BACKOFF_S * scale
    while True:
        out.pods += 1
        out.writes += WRITES_PER_POD
        out.wall_s += pod_start
        died = False
        for index, item in enumerate(items):
            if index in pending:
                pending.discard(index)
                out.spend(item, 0.5)
                out.wall_s += item.seconds / 2 + backoff
                backoff *= 2
                died = True
                break
            out.spend(item)
            out.wall_s += item.seconds
        if not died:
            return out


def indexed_job(items: list[Item], fail_at: list[int], pod_start: float, scale: float) -> Outcome:
    """One pod per item, parallelism 1: a pod start each; a failed index is retried."""
    out = Outcome("one pod per item (Indexed Job)", writes=WRITES_PER_JOB)
    for index, item in enumerate(items):
        if index in fail_at:
            out.pods += 1
            out.writes += WRITES_PER_POD
            out.spend(item, 0.5)
            out.wall_s += pod_start + item.seconds / 2 + JOB_BACKOFF_S * scale
        out.pods += 1
        out.writes += WRITES_PER_POD
        out.spend(item)
        out.wall_s += pod_start + item.seconds
    return out


class PodTimes:
    """When each pod was first seen (time.time()), from a pod watch."""

    def __init__(self, kubeconfig: Path) -> None:
        self.api = new_api_client(kubeconfig)
        self.added: dict[str, float] = {}
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> PodTimes:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        core: Any = k8s_client.CoreV1Api(self.api)
        while not self._stop.is_set():
            try:
                w: Any = watch.Watch()  # type: ignore[no-untyped-call]
                for event in w.stream(
                    core.list_namespaced_pod, NAMESPACE, timeout_seconds=60, deserialize=False
                ):
                    now = time.time()
                    name = event["object"]["metadata"]["name"]
                    with self.lock:
                        self.added.setdefault(name, now)
                    if self._stop.is_set():
                        w.stop()
            except Exception:
                time.sleep(0.2)


def scaled_policy(name: str, scale: float) -> dict[str, Any]:
    """spec.checkpoint of a strategy of ours, its seconds time-scaled."""
    if name == "every":
        return {"everyItems": 1, "minIntervalSeconds": 0}
    default = CheckpointPolicy()
    return {
        "everySeconds": DEFAULT_EVERY_SECONDS["kube"] * scale,
        "minIntervalSeconds": default.min_interval_seconds * scale,
    }


def batch_manifest(name: str, workdir: Path, fail_at: list[int], scale: float, policy: str) -> Any:
    env = {
        "WASTED_COSTS": str(workdir / "costs.json"),
        "WASTED_FAIL_AT": ",".join(map(str, fail_at)),
        "WASTED_MARKERS": str(workdir / f"markers-{name}"),
        "WASTED_LOG": str(workdir / f"{name}.log"),
        "RESUMABLE_OUTPUT_DIR": str(workdir / f"out-{name}"),
    }
    (workdir / f"markers-{name}").mkdir()
    count = len(json.loads((workdir / "costs.json").read_text()))
    return {
        "apiVersion": "resumable.dev/v1alpha1",
        "kind": "ResumableBatch",
        "metadata": {"name": name},
        "spec": {
            "totalItems": count,
            "checkpoint": scaled_policy(policy, scale),
            "retry": {
                "maxRestarts": len(fail_at) + 5,
                "backoff": {"initialSeconds": 2.0 * scale, "maxSeconds": 300.0 * scale},
            },
            "template": {
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [
                        {
                            "name": "worker",
                            "image": "w:dev",
                            "command": [sys.executable, str(WORKER)],
                            "env": [{"name": k, "value": v} for k, v in env.items()],
                        }
                    ],
                }
            },
        },
    }


def succeeded(api: KubeApi, name: str) -> bool:
    obj = api.request("GET", batch_path(NAMESPACE, name))
    conditions = (obj.get("status") or {}).get("conditions", [])
    return any(c["type"] == "Succeeded" and c["status"] == "True" for c in conditions)


def run_ours(
    api: KubeApi,
    pods: PodTimes,
    workdir: Path,
    items: list[Item],
    fail_at: list[int],
    scale: float,
    policy: str,
    label: str,
    timeout: float,
) -> tuple[Outcome, list[float]]:
    """One batch of ours to Succeeded: what it spent, and its pods' start times."""
    name = f"ours-{policy}"
    before = request_counts(b"".join(api.stream("/metrics")).decode())
    start = time.time()
    api.request(
        "POST", batch_path(NAMESPACE), body=batch_manifest(name, workdir, fail_at, scale, policy)
    )
    deadline = time.monotonic() + timeout
    while not succeeded(api, name):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} did not succeed within {timeout:.0f} s")
        time.sleep(0.05)
    wall = time.time() - start
    after = request_counts(b"".join(api.stream("/metrics")).decode())
    out = Outcome(label, wall_s=wall, writes=writes(after - before))
    starts: list[float] = []
    for line in (workdir / f"{name}.log").read_text().splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "done":
            out.spend(items[int(rest)])
        elif kind == "killed":
            out.spend(items[int(rest)], 0.5)
        elif kind == "begin":
            out.pods += 1
            attempt, at = rest.split()
            pod = f"{name}-{attempt}"
            with pods.lock:
                created = pods.added.get(pod)
            if created is not None:
                starts.append(float(at) - created)
    return out, starts


def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    items = draw_items(args.items, args.scale, rng)
    fail_at = failure_points(args.items, args.failures, rng)
    (workdir / "costs.json").write_text(
        json.dumps([[i.seconds, i.tokens_in, i.tokens_out] for i in items])
    )
    binaries = find_binaries(log_file=workdir / "build.log")
    with running_control_plane(workdir / "cp", binaries=binaries) as cp:
        cp.install_crds(sorted((ROOT / "crds").glob("*.yaml")))
        cp.create_namespace(NAMESPACE)
        kubelet = ProcessKubelet(cp.kubeconfig, workdir / "pods", namespaces=[NAMESPACE]).start()
        operator = OperatorProcess(cp.kubeconfig, NAMESPACE, workdir / "operator.log").start()
        pods = PodTimes(cp.kubeconfig).start()
        api = KubeApi.from_environment(kubeconfig=str(cp.kubeconfig))
        try:
            ours, starts = run_ours(
                api,
                pods,
                workdir,
                items,
                fail_at,
                args.scale,
                "default",
                "this system, default policy",
                args.timeout,
            )
            every, more = run_ours(
                api,
                pods,
                workdir,
                items,
                fail_at,
                args.scale,
                "every",
                "durable write after every item",
                args.timeout,
            )
        finally:
            pods.stop()
            operator.stop()
            kubelet.stop()
    starts += more
    pod_start = sorted(starts)[len(starts) // 2] if starts else 0.0
    base = ideal(items, pod_start)
    outcomes = [
        plain_job(items, fail_at, pod_start, args.scale),
        indexed_job(items, fail_at, pod_start, args.scale),
        ours,
        every,
    ]
    return summarise(args, fail_at, pod_start, base, outcomes)


def summarise(
    args: argparse.Namespace,
    fail_at: list[int],
    pod_start: float,
    base: Outcome,
    outcomes: list[Outcome],
) -> dict[str, Any]:
    keys = ["plain_job", "indexed_job", "ours_default", "ours_every_item"]
    figures: dict[str, Any] = {
        "items": args.items,
        "scale": args.scale,
        "failures_at": fail_at,
        "pod_start_s": round(pod_start, 3),
        "ideal": row_figures(base, base),
    }
    for key, out in zip(keys, outcomes, strict=True):
        figures[key] = row_figures(out, base)
    return figures


def row_figures(out: Outcome, base: Outcome) -> dict[str, Any]:
    return {
        "items": out.items,
        "tokens": round(out.tokens),
        "cost_usd": round(out.cost_usd, 4),
        "wall_s": round(out.wall_s, 2),
        "api_writes": out.writes,
        "pods": out.pods,
        "items_ratio": round(out.items / base.items, 3),
        "tokens_ratio": round(out.tokens / base.tokens, 3),
        "cost_ratio": round(out.cost_usd / base.cost_usd, 3),
        "wall_ratio": round(out.wall_s / base.wall_s, 3),
        "writes_ratio": round(out.writes / base.writes, 2),
    }


def report(figures: dict[str, Any]) -> None:
    labels = {
        "ideal": "failure-free ideal",
        "plain_job": "restart from scratch (Job)",
        "indexed_job": "one pod per item (Indexed Job)",
        "ours_default": "this system, default policy",
        "ours_every_item": "durable write after every item",
    }
    print()
    print(
        f"{figures['items']} items, failures at items {figures['failures_at']} (half way "
        f"through each), time scale {figures['scale']:g}, pod start {figures['pod_start_s']:.3f} s"
    )
    header = ["strategy", "items", "tokens", "cost $", "wall s", "API writes", "pods"]
    rows = []
    for key, label in labels.items():
        f = figures[key]
        rows.append(
            [label, f["items"], f["tokens"], f["cost_usd"], f["wall_s"], f["api_writes"], f["pods"]]
        )
    print(table(header, rows))
    print()
    print("ratio to the failure-free ideal:")
    header = ["strategy", "items", "tokens", "cost", "wall", "API writes"]
    rows = []
    for key, label in labels.items():
        f = figures[key]
        rows.append(
            [
                label,
                f["items_ratio"],
                f["tokens_ratio"],
                f["cost_ratio"],
                f["wall_ratio"],
                f["writes_ratio"],
            ]
        )
    print(table(header, rows))
    print(json.dumps(figures))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=200, help="items (default 200)")
    parser.add_argument("--failures", type=int, default=3, help="failures (default 3)")
    parser.add_argument("--scale", type=float, default=0.02, help="time scale (default 0.02)")
    parser.add_argument("--seed", type=int, default=20, help="seed of costs and failures")
    parser.add_argument("--timeout", type=float, default=600.0, help="per batch of ours (s)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    args = parser.parse_args(argv)
    if not 0 < args.failures < args.items:
        parser.error("--failures must be between 1 and --items - 1")
    logs = "operator.log, ours-*.log, pods/, cp/*.log"
    with work_directory("rb-bench-wasted-", keep=args.keep, logs=logs) as workdir:
        figures = measure(args, workdir)
    report(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
