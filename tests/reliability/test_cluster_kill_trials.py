"""Random kills on the real control plane: nothing lost, nothing duplicated, no stored step redone.

The operator (a process) runs batches whose pods the process kubelet runs:
tests/workers.py with three named steps per item and a checkpoint write after
every item. Each trial kills the batch's worker two to four times, each time at a
random item of the running attempt and a random moment inside it, either with
SIGKILL (exit 137, a counted restart) or by force-deleting its pod (``kubectl
delete pod --force --grace-period=0``, a disruption), and then lets the batch
finish. Several trials run at once. Across all attempts (tallied from the shared
execution log, tests/reliability/podworker.py) each batch must end Succeeded with

- every output present once with the right content (lost outputs 0),
- no item run by an attempt that resumed past it, none twice in one attempt
  (duplicates 0),
- no named step run again once an earlier run of it was stored (finished steps
  redone 0), and at most the one step in flight redone per kill.

CI runs 30 trials; ``RELIABILITY_KILL_TRIALS=300`` runs 300 by hand.
``RELIABILITY_SEED`` replays a run; the seed is in every failure message.
"""

from __future__ import annotations

import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import Batches, OperatorProcess
from tests.kube.controlplane import ControlPlane
from tests.kube.kubelet import ProcessKubelet
from tests.reliability.podworker import Tally, started_by, tally, worker_batch
from tests.waiting import wait_for
from tests.workers import read_log

TRIALS = int(os.environ.get("RELIABILITY_KILL_TRIALS") or 30)
SEED = int(os.environ.get("RELIABILITY_SEED") or random.randrange(2**32))
#: Trials running at once (one operator, one kubelet, on a 2-core machine).
AT_ONCE = 5
ITEMS = 12
DELAY = 0.01
STEPS = ("fetch", "call", "save")

pytestmark = pytest.mark.timeout(120 + TRIALS * 12)


@dataclass
class Trial:
    """One batch driven to its end through kills."""

    name: str
    workdir: Path
    kills: list[str] = field(default_factory=list)  # "sigkill" or "force-delete", in order
    tally: Tally | None = None


class Driver:
    """Runs trials: creates each batch, kills its workers, waits for its end."""

    def __init__(
        self,
        batches: Batches,
        kubelet: ProcessKubelet,
        controlplane: ControlPlane,
        namespace: str,
        root: Path,
    ) -> None:
        self.batches = batches
        self.kubelet = kubelet
        self.controlplane = controlplane
        self.namespace = namespace
        self.root = root

    def run(self, number: int) -> Trial:
        rng = random.Random(f"{SEED}-{number}")
        trial = Trial(name=f"trial-{number}", workdir=self.root / f"trial-{number}")
        trial.workdir.mkdir()
        body = worker_batch(trial.name, trial.workdir, items=ITEMS, delay=DELAY, steps=STEPS)
        self.batches.create(body)
        attempt = 1
        for _ in range(rng.randint(2, 4)):
            pod = f"{trial.name}-{attempt}"
            if not self.next_pod_runs(trial.name, pod):
                break  # the batch ended before this attempt was needed
            if not self.kill_inside_an_item(trial, pod, rng):
                break
            attempt += 1
        obj = self.batches.wait_ended(trial.name, timeout=120)
        where = f"seed {SEED}, {trial.name} killed by {trial.kills}"
        assert obj["status"]["phase"] == "Succeeded", f"{where}: {obj['status']}"
        assert obj["status"]["checkpoint"]["itemsDone"] == ITEMS, where
        trial.tally = tally(trial.workdir, ITEMS)
        return trial

    def next_pod_runs(self, batch: str, pod: str) -> bool:
        """Wait for the attempt's pod to run; False if the batch ended without it."""

        def running_or_ended() -> str:
            for run in self.kubelet.runs(self.namespace):
                if run.name == pod and run.running.is_set():
                    return "running"
            phase = (self.batches.get(batch).get("status") or {}).get("phase")
            return "ended" if phase in ("Succeeded", "Failed") else ""

        found = wait_for(running_or_ended, what=f"pod {pod} to run", timeout=60, every=0.05)
        return found == "running"

    def kill_inside_an_item(self, trial: Trial, pod: str, rng: random.Random) -> bool:
        """Kill the pod's worker at a random item it runs; False if it ended first."""
        run = self.kubelet.run_of(self.namespace, pod)
        proc = run.proc
        assert proc is not None
        log = trial.workdir / "exec.log"
        done = {int(line[1]) for line in _commits(log)}
        target = rng.randint(1, max(1, ITEMS - len(done) - 1))
        wait_for(
            lambda: started_by(log, proc.pid) >= target or proc.poll() is not None,
            what=f"item {target} of {pod} (pid {proc.pid}) to start",
            timeout=60,
            every=0.005,
        )
        time.sleep(rng.uniform(0, DELAY * (1 + len(STEPS))))
        if proc.poll() is not None:
            return False
        if rng.random() < 0.5:
            trial.kills.append("sigkill")
            self.kubelet.kill(self.namespace, pod)
        else:
            trial.kills.append("force-delete")
            self.controlplane.kubectl(
                "delete", "pod", pod, "-n", self.namespace, "--force", "--grace-period=0",
                "--wait=false", check=True,
            )  # fmt: skip
        wait_for(lambda: proc.poll() is not None, what=f"pid {proc.pid} to die", timeout=30)
        return True


def _commits(log: Path) -> list[list[str]]:
    return [line for line in read_log(log) if line[0] == "commit"]


def test_random_sigkills_and_force_deletions_lose_nothing_and_redo_no_stored_step(
    operator: OperatorProcess,
    batches: Batches,
    kubelet: ProcessKubelet,
    controlplane: ControlPlane,
    namespace: str,
    tmp_path: Path,
    figure: Any,
) -> None:
    driver = Driver(batches, kubelet, controlplane, namespace, tmp_path)
    started = time.monotonic()
    with ThreadPoolExecutor(AT_ONCE) as pool:
        trials = list(pool.map(driver.run, range(TRIALS)))
    elapsed = time.monotonic() - started
    tallies = [t.tally for t in trials if t.tally is not None]
    kills = sum(len(t.kills) for t in trials)
    sigkills = sum(t.kills.count("sigkill") for t in trials)
    lost = sum(t.lost_outputs for t in tallies)
    duplicates = sum(t.duplicates for t in tallies)
    finished_redone = sum(t.finished_steps_redone for t in tallies)
    redone_steps = sum(t.redone_steps for t in tallies)
    redone_items = sum(t.redone_items for t in tallies)
    figure(
        "kill-trials",
        f"{len(trials)} trials, {kills} kills ({sigkills} SIGKILL, {kills - sigkills} "
        f"force-deletions), lost outputs {lost}, duplicates {duplicates}, finished steps "
        f"redone {finished_redone}, redone steps per kill {redone_steps / max(kills, 1):.2f}, "
        f"redone items per kill {redone_items / max(kills, 1):.2f} ({elapsed:.0f} s)",
        trials=len(trials),
        kills=kills,
        sigkills=sigkills,
        lost_outputs=lost,
        duplicates=duplicates,
        finished_steps_redone=finished_redone,
        redone_steps=redone_steps,
        redone_items=redone_items,
        seed=SEED,
    )
    assert (lost, duplicates, finished_redone) == (0, 0, 0), f"seed {SEED}: {tallies}"
    for trial in trials:
        assert trial.tally is not None
        # Each kill interrupts at most one step; what a kill loses besides is stored.
        assert trial.tally.redone_steps <= len(trial.kills), f"seed {SEED}: {trial}"
    assert kills >= 2 * TRIALS, f"seed {SEED}: only {kills} kills landed"
