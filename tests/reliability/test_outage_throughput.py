"""Items keep flowing while the API server is away, and the unsaved work stays bounded (issue 23).

A real worker process (``script_worker.py``: the SDK, the official client,
items of a fixed 50 ms sleep so its rate does not hang on the CPU it gets)
saves into a ResumableBatch on the test suite's real kube-apiserver, through
:class:`FaultProxy`, which drops the API server on demand: every connection
reset (a server that is down) or held without an answer (a partition, an etcd
that is away). The test reads the batch directly, not through the proxy,
every 50 ms.

Before the fix a worker stalled ``BOUNDARY_DEADLINE`` (5 s) at every due write
while the server was away: about a fifth of its rate. Now a boundary write is one
quick try, retried after growing gaps while the items go on; only once writes
have failed for ``UNSAVED_GRACE_SECONDS`` (shortened here by ``WORKER_GRACE``)
does the worker stop and wait for a write to land.
"""

from __future__ import annotations

import collections
import itertools
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from resumable.kubeapi import KubeApi, batch_path
from tests.integration.harness import create_at_first_attempt
from tests.kube.controlplane import ControlPlane
from tests.reliability.faults import FaultProxy
from tests.waiting import wait_for
from tests.workers import WorkerProcess, kube_worker_env

pytestmark = pytest.mark.timeout(180)

WORKER = Path(__file__).with_name("script_worker.py")
NAME = "outage"
#: Seconds of work per item: 20 items/s at most.
DELAY = 0.05
#: Seconds of each measured window: without an outage, then during one.
WINDOW = 10.0
#: Issue 23's target: items/s during the outage over items/s without one.
TARGET = 0.8
#: SIGTERM to exit, inside the pod's default 30 s grace period (FINAL_DEADLINE 20 s).
EXIT_BUDGET = 25.0


@dataclass
class Batch:
    """The batch on the real API server, read directly every 50 ms by a thread."""

    api: KubeApi
    namespace: str
    #: (time.monotonic(), status.checkpoint) each time the checkpoint changed.
    seen: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def checkpoint(self) -> dict[str, Any]:
        obj = self.api.request("GET", batch_path(self.namespace, NAME))
        return dict((obj.get("status") or {}).get("checkpoint") or {})

    def watch(self) -> None:
        def loop() -> None:
            while not self._stop.wait(0.05):
                try:
                    cp = self.checkpoint()
                except Exception:  # a slow answer: read again
                    continue
                if not self.seen or self.seen[-1][1] != cp:
                    self.seen.append((time.monotonic(), cp))

        threading.Thread(target=loop, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def saved(self, at: float) -> int:
        """The nextIndex saved as seen at ``at`` (0 before the first write)."""
        before = [cp.get("nextIndex", 0) for t, cp in self.seen if t <= at]
        return int(before[-1]) if before else 0

    def writes_between(self, since: float, until: float) -> list[tuple[float, int]]:
        return [(t, int(cp.get("nextIndex", 0))) for t, cp in self.seen if since <= t < until]


class Worker(WorkerProcess):
    """A script_worker.py process (every event timed)."""

    def commits_between(self, since: float, until: float) -> list[float]:
        return [t for t in self.times("commit") if since <= t < until]


@pytest.fixture
def proxy(controlplane: ControlPlane) -> Iterator[FaultProxy]:
    fault_proxy = FaultProxy(controlplane.secure_port)
    yield fault_proxy
    fault_proxy.close()


@pytest.fixture
def batch(controlplane: ControlPlane, namespace: str) -> Iterator[Batch]:
    """A ResumableBatch with the operator's first status write (attempt 1), watched."""
    api = KubeApi.from_environment(kubeconfig=str(controlplane.kubeconfig))
    create_at_first_attempt(api, namespace, NAME)
    watched = Batch(api, namespace)
    watched.watch()
    yield watched
    watched.stop()
    api.api_client.close()


@pytest.fixture
def start_worker(
    controlplane: ControlPlane,
    proxy: FaultProxy,
    batch: Batch,
    tmp_path: Path,
    workers: list[WorkerProcess],
) -> Callable[..., Worker]:
    """Start attempt 1 of the batch as its pod would run it, talking to the API server by proxy.

    Keywords are more ``WORKER_*`` settings; it returns once two checkpoint writes landed.
    """

    def start(**extra: str) -> Worker:
        kubeconfig = proxy.kubeconfig(controlplane.kubeconfig, tmp_path / "via-proxy.kubeconfig")
        env = kube_worker_env(
            tmp_path, kubeconfig, batch.namespace, NAME, WORKER_DELAY=str(DELAY), **extra
        )
        worker = Worker.start(env, script=WORKER)
        workers.append(worker)
        wait_for(lambda: len(batch.seen) >= 3, timeout=60, what="two checkpoint writes")
        return worker

    return start


def end_outage(proxy: FaultProxy, batch: Batch, worker: Worker, what: str) -> tuple[float, int]:
    """Bring the API server back; wait for a write that saves every item done so far.

    Returns when it came back (time.monotonic()) and how many items were done by then.
    """
    back = time.monotonic()
    proxy.set("pass")
    done = len(worker.commits_between(0.0, back))
    wait_for(lambda: batch.saved(time.monotonic()) >= done, timeout=30, what=what)
    return back, done


def assert_every_item_saved_once(batch: Batch, worker: Worker) -> int:
    """Each item ran once; the saved position covers exactly the items done; never backwards."""
    starts = collections.Counter(worker.events("start"))
    assert not [i for i, n in starts.items() if n > 1], "an item ran twice"
    positions = [cp for _, cp in batch.seen if "nextIndex" in cp]
    for before, after in itertools.pairwise(positions):
        assert after["nextIndex"] >= before["nextIndex"], "the position moved backwards"
    for cp in positions:
        assert cp["itemsDone"] == cp["nextIndex"]  # nothing counted twice
    final = batch.checkpoint()
    done = final["nextIndex"]
    commits = worker.events("commit")
    # Every committed item is saved; the one in flight at SIGTERM too if its block ended.
    assert done in (commits[-1] + 1, max(starts) + 1), (done, commits[-3:])
    assert final["completed"] == f"0-{done - 1}"
    assert final["itemsDone"] == done
    assert {int(p.stem) for p in worker.outputs.glob("*.json")} >= set(range(done))
    return int(done)


def longest_gap(times: list[float]) -> float:
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


@pytest.mark.parametrize("fault", ["refuse", "blackhole"])
def test_items_keep_flowing_while_the_api_server_is_away(
    proxy: FaultProxy, batch: Batch, start_worker: Callable[..., Worker], fault: str
) -> None:
    worker = start_worker()
    t0 = time.monotonic()
    time.sleep(WINDOW)
    t1 = time.monotonic()
    proxy.set(fault)
    time.sleep(WINDOW)
    t2, done_while_away = end_outage(
        proxy, batch, worker, "a write after the outage that saves what was done during it"
    )
    sent, code, output = worker.terminate()

    assert code == 143, output
    base = len(worker.commits_between(t0, t1)) / (t1 - t0)
    away = len(worker.commits_between(t1, t2)) / (t2 - t1)
    ratio = away / base
    print(f"{fault}: {base:.1f} items/s, {away:.1f} during the outage: ratio {ratio:.2f}")
    assert base > 0.7 / DELAY, f"only {base:.1f} items/s without an outage"
    assert ratio >= TARGET, f"{away:.1f} items/s during the outage, {base:.1f} without"
    # Never a stall of BOUNDARY_DEADLINE (5 s): at most one quick try (1 s) at a time.
    stall = longest_gap(worker.commits_between(t1, t2))
    assert stall < 1.0 + 10 * DELAY, f"items stalled {stall:.2f}s during the outage"
    # Nothing saved while away (after any write already sent), the first write
    # after it saved everything done meanwhile, within the retry gap's cap.
    assert batch.writes_between(t1 + 1.5, t2) == []
    back = batch.writes_between(t2, sent)
    assert back, "no write after the outage"
    assert back[0][1] >= done_while_away, back
    assert back[0][0] - t2 < 12.0, f"the first write after the outage came {back[0][0] - t2:.1f}s"
    assert "no new item" not in output, output  # 10 s is within the grace: it never waited
    assert_every_item_saved_once(batch, worker)


def test_past_the_limit_the_worker_takes_no_new_item_until_a_write_lands(
    proxy: FaultProxy, batch: Batch, start_worker: Callable[..., Worker]
) -> None:
    grace = 3.0
    worker = start_worker(WORKER_GRACE=str(grace))
    t1 = time.monotonic()
    saved = batch.saved(t1)
    proxy.set("refuse")
    time.sleep(WINDOW)
    t2, done_while_away = end_outage(proxy, batch, worker, "the write the worker waits for")
    wait_for(
        lambda: worker.commits_between(t2, float("inf")), timeout=15, what="an item after the write"
    )
    sent, code, output = worker.terminate()

    assert code == 143, output
    # Items went on for the grace after the first failed write (due within the
    # policy's second), then stopped until a write landed after the outage.
    away = worker.commits_between(t1, t2)
    limit = 1.0 + grace + 2 * DELAY
    assert len(away) >= 0.5 * grace / DELAY, "the items did not go on during the grace"
    assert away[-1] - t1 < limit + 0.5, f"items went on {away[-1] - t1:.1f}s into the outage"
    resumed = worker.commits_between(t2, sent)
    assert resumed, "items did not resume once the server was back"
    assert resumed[0] - t2 < 7.0, f"items resumed {resumed[0] - t2:.1f}s after the outage"
    # The work at risk (done, not saved) never went past the limit.
    unsaved = done_while_away - saved
    assert unsaved <= (limit + 0.5) / DELAY, f"{unsaved} items unsaved at the limit"
    waits = [line for line in output.splitlines() if "no new item until one lands" in line]
    assert len(waits) == 1, output
    assert "checkpoint saved after waiting" in output, output
    assert_every_item_saved_once(batch, worker)


def test_sigterm_while_the_worker_waits_at_the_limit_starts_the_final_write_at_once(
    proxy: FaultProxy, batch: Batch, start_worker: Callable[..., Worker]
) -> None:
    grace = 2.0
    worker = start_worker(WORKER_GRACE=str(grace))
    t1 = time.monotonic()
    proxy.set("refuse")

    def waiting() -> bool:
        last = worker.times("commit")[-1]
        return last > t1 and time.monotonic() - last > 1.5

    wait_for(waiting, timeout=20, what="the worker waiting at the limit", every=0.05)
    stopped = worker.times("commit")[-1]
    sent = time.monotonic()
    worker.proc.send_signal(signal.SIGTERM)
    time.sleep(4.0)
    proxy.set("pass")  # back within the final write's deadline
    output, _ = worker.proc.communicate(timeout=60)
    exited = time.monotonic() - sent

    assert worker.proc.returncode == 143, output
    assert exited < EXIT_BUDGET, f"exited {exited:.1f}s after SIGTERM"
    assert stopped - t1 < 1.0 + grace + 0.5  # it was waiting at the limit
    # The wait ended at once: the final write's first try came right after the signal.
    tried = [t - sent for t, _ in proxy.accepted if t >= sent]
    assert tried, "no write after SIGTERM"
    assert tried[0] < 1.0, tried[:3]
    # The final write (its FINAL_DEADLINE from the signal) landed once the server was back.
    landed = batch.writes_between(sent, time.monotonic())
    assert landed, "the final write did not land"
    assert 4.0 <= landed[0][0] - sent < 20.0, landed
    assert worker.times("commit")[-1] == stopped  # no new item after SIGTERM
    assert_every_item_saved_once(batch, worker)
