"""SIGKILL at random moments, again and again: never a lost item, never a duplicate output.

Each trial runs the test worker (tests/workers.py) on a fresh LocalStore, kills
it with SIGKILL one to three times (at a random moment, or exactly between an
output write and the position write that covers it), then lets a last attempt
finish. The worker logs every execution to an append-only file, and the test
reads the checkpoint after every kill, so it can check that

- no attempt starts an item the checkpoint already covered,
- what a killed attempt loses is only its tail: the items it started after its
  last checkpoint write (with a write after every item, at most the one in flight),
- every extra execution of an item is explained by such a loss,
- the batch ends finished, with exactly one output per item, each with the
  right content.

Set KILL_TRIALS_SEED to replay a failing run; the seed is in every failure message.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest
from workers import expected_output, read_log, start_worker, worker_env

from resumable import IndexSet
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(240)

SEED = int(os.environ.get("KILL_TRIALS_SEED", random.randrange(2**32)))
EVERY_ITEM = json.dumps({"everyItems": 1, "minIntervalSeconds": 0})
DEFAULT = ""  # the default policy: about one write per second
ITEMS = 40


@dataclass
class Attempt:
    """One worker process and what the checkpoint said before it started and after it died."""

    pid: int
    covered_before: IndexSet
    covered_after: IndexSet | None = None  # None: it finished
    outputs_after: set[int] = field(default_factory=set)
    returncode: int | None = None


@dataclass
class Trial:
    """One batch driven to the end through kills."""

    store: Path
    log: Path
    attempts: list[Attempt] = field(default_factory=list)

    def checkpoint(self) -> dict[str, object]:
        path = self.store / "status.json"
        if not path.exists():
            return {"completed": "", "finished": False}
        data: dict[str, object] = json.loads(path.read_text())["checkpoint"]
        return data

    def finished(self) -> bool:
        return self.checkpoint()["finished"] is True

    def covered(self) -> IndexSet:
        """The items the checkpoint covers (only called while the batch is unfinished)."""
        return IndexSet.parse(str(self.checkpoint()["completed"]))


def run_trial(
    tmp: Path,
    rng: random.Random,
    *,
    policy: str,
    kills: int,
    window: bool,
    delay: float,
    kill_within: float,
) -> Trial:
    """Drive one batch to the end, killing the worker ``kills`` times."""
    tmp.mkdir(parents=True)
    trial = Trial(store=tmp / "store", log=tmp / "exec.log")
    extra = {"WORKER_ITEMS": str(ITEMS), "WORKER_DELAY": str(delay)}
    if policy:
        extra["RESUMABLE_CHECKPOINT"] = policy
    env = worker_env(trial.store, trial.log, **extra)
    for number in range(kills + 1):
        covered = trial.covered()  # before the worker starts writing
        killed = number < kills
        # Only attempts that will be killed in the window pause in it; the last one runs free.
        proc = start_worker({**env, "WORKER_WINDOW": "0.15" if window and killed else "0"})
        attempt = Attempt(pid=proc.pid, covered_before=covered)
        trial.attempts.append(attempt)
        if killed:
            if window:
                # Kill while the worker sleeps between durable outputs and the position.
                target = rng.randint(1, 2 if policy == DEFAULT else 6)
                wait_for(
                    partial(in_window_or_exited, trial.log, proc, target),
                    timeout=60,
                    what=f"checkpoint write {target} of pid {proc.pid}",
                    every=0.002,
                )
            else:
                # A random item of this attempt, then a random moment inside it: a kill
                # timed from the start alone often came after a fast worker had finished.
                left = ITEMS - len(covered)
                target = rng.randint(1, max(1, left - 1))
                wait_for(
                    partial(started_or_exited, trial.log, proc, target),
                    timeout=60,
                    what=f"item {target} of pid {proc.pid} to start",
                    every=0.002,
                )
                time.sleep(rng.uniform(0.0, min(delay, kill_within)))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
        attempt.returncode = proc.returncode
        if proc.returncode == 0:
            return trial
        assert proc.returncode == -signal.SIGKILL, (
            f"seed {SEED}: worker exited {proc.returncode}:\n{out}"
        )
        if trial.finished():
            # Killed after its final write: the batch is done. (Restarting now would be a
            # clean rerun from item 0, by design; whoever restarts workers must not.)
            return trial
        attempt.covered_after = trial.covered()
        attempt.outputs_after = {int(p.stem) for p in (trial.store / "outputs").glob("*.json")}
    raise AssertionError(f"seed {SEED}: the last attempt of {trial.store} did not finish")


def in_window_or_exited(log: Path, proc: subprocess.Popen[str], target: int) -> bool:
    """True once the worker logged its ``target``-th checkpoint write, or ended."""
    return window_count(log, proc.pid) >= target or proc.poll() is not None


def started_or_exited(log: Path, proc: subprocess.Popen[str], target: int) -> bool:
    """True once the worker logged the start of its ``target``-th item, or ended."""
    started = sum(1 for line in read_log(log) if line[0] == "start" and int(line[2]) == proc.pid)
    return started >= target or proc.poll() is not None


def window_count(log: Path, pid: int) -> int:
    return sum(1 for line in read_log(log) if line[0] == "window" and int(line[1]) == pid)


def check(trial: Trial, *, max_lost: int | None) -> None:
    """The invariants of the module docstring, for one trial."""
    log = read_log(trial.log)
    where = f"seed {SEED}, store {trial.store}"
    started: dict[int, list[int]] = {a.pid: [] for a in trial.attempts}
    for line in log:
        if line[0] == "start":
            started[int(line[2])].append(int(line[1]))
    executions = Counter(i for items in started.values() for i in items)
    explained = Counter({i: 1 for i in range(ITEMS)})

    for attempt in trial.attempts:
        mine = started[attempt.pid]
        again = [i for i in mine if i in attempt.covered_before]
        assert not again, f"{where}: pid {attempt.pid} redid covered items {again}"
        if attempt.covered_after is None:
            continue  # the attempt that finished
        lost = [i for i in mine if i not in attempt.covered_after]
        assert lost == mine[len(mine) - len(lost) :], (
            f"{where}: pid {attempt.pid} lost {lost}, not the tail of what it started {mine}"
        )
        if max_lost is not None:
            assert len(lost) <= max_lost, f"{where}: pid {attempt.pid} lost {lost}"
        explained.update(lost)
    assert executions == explained, f"{where}: executions {executions} != explained {explained}"

    status = json.loads((trial.store / "status.json").read_text())["checkpoint"]
    assert (status["finished"], status["nextIndex"], status["completed"]) == (True, 0, ""), where
    assert status["itemsDone"] == ITEMS, where
    outputs = sorted((trial.store / "outputs").glob("*.json"))
    assert [p.name for p in outputs] == [f"{i:08d}.json" for i in range(ITEMS)], where
    for index, path in enumerate(outputs):
        record = json.loads(path.read_text())
        assert (record["index"], record["output"]) == (index, expected_output(index)), where


def trials(
    tmp_path: Path,
    count: int,
    budget: float,
    *,
    policy: str,
    window: bool,
    delay: float,
    kill_within: float = 0.0,
) -> list[Trial]:
    """Run up to ``count`` trials of one kind within ``budget`` seconds (at least 3)."""
    rng = random.Random(f"{SEED}-{policy}-{window}")
    deadline = time.monotonic() + budget
    done = []
    for number in range(count):
        if number >= 3 and time.monotonic() > deadline:
            break
        trial = run_trial(
            tmp_path / f"trial{number}",
            rng,
            policy=policy,
            kills=rng.randint(1, 3),
            window=window,
            delay=delay,
            kill_within=kill_within,
        )
        done.append(trial)
    return done


@pytest.mark.parametrize(
    ("policy", "max_lost", "count", "delay", "kill_within"),
    [(EVERY_ITEM, 1, 14, 0.01, 1.0), (DEFAULT, None, 6, 0.03, 1.6)],
    ids=["every-item-policy", "default-policy"],
)
def test_random_sigkills_never_lose_or_duplicate_an_item(
    tmp_path: Path, policy: str, max_lost: int | None, count: int, delay: float, kill_within: float
) -> None:
    done = trials(
        tmp_path, count, 45.0, policy=policy, window=False, delay=delay, kill_within=kill_within
    )
    for trial in done:
        check(trial, max_lost=max_lost)
    kills = sum(a.covered_after is not None for trial in done for a in trial.attempts)
    assert kills >= len(done) // 2, f"seed {SEED}: too few kills landed ({kills})"


@pytest.mark.parametrize(
    ("policy", "max_lost", "count", "delay"),
    [(EVERY_ITEM, 1, 6, 0.002), (DEFAULT, None, 4, 0.03)],
    ids=["every-item-policy", "default-policy"],
)
def test_sigkill_between_output_write_and_position_write_redoes_the_item_once(
    tmp_path: Path, policy: str, max_lost: int | None, count: int, delay: float
) -> None:
    done = trials(tmp_path, count, 40.0, policy=policy, window=True, delay=delay)
    windows_hit = 0
    for trial in done:
        check(trial, max_lost=max_lost)
        for attempt in trial.attempts:
            if attempt.covered_after is None:
                continue
            # Killed in the window: the item being saved has its output on disk, not its position.
            last = [
                int(line[1])
                for line in read_log(trial.log)
                if line[0] == "start" and int(line[2]) == attempt.pid
            ][-1]
            assert last not in attempt.covered_after, f"seed {SEED}: the kill missed the window"
            assert last in attempt.outputs_after, f"seed {SEED}: item {last} has no output"
            windows_hit += 1
    assert windows_hit >= len(done), f"seed {SEED}: only {windows_hit} kills in the window"
