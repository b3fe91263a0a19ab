"""Batches whose pods run tests/workers.py, and what the workers' shared log says.

Used by the reliability tests on the real control plane (the operator as a process,
pods run by the process kubelet): every pod of a batch appends to one execution log
(``exec.log``) and writes its outputs under ``out/``, both in the test's directory,
so a test can count, across all attempts, how often each item and each named step
ran, and whether every output is there once with the right content.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scenarios import NO_BACKOFF
from tests.workers import expected_output, read_log

WORKER = Path(__file__).resolve().parents[1] / "workers.py"
#: A checkpoint write after every item: a kill loses at most the item in flight.
EVERY_ITEM = {"everyItems": 1, "minIntervalSeconds": 0}


def worker_batch(
    name: str,
    workdir: Path,
    *,
    items: int,
    delay: float,
    steps: tuple[str, ...] = (),
    max_restarts: int = 10,
    checkpoint: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ResumableBatch running tests/workers.py, logging to ``workdir/exec.log``."""
    env = {
        "WORKER_LOG": str(workdir / "exec.log"),
        "WORKER_ITEMS": str(items),
        "WORKER_DELAY": str(delay),
        "WORKER_STEPS": ",".join(steps),
        "RESUMABLE_OUTPUT_DIR": str(workdir / "out"),
    }
    return {
        "apiVersion": "resumable.dev/v1alpha1",
        "kind": "ResumableBatch",
        "metadata": {"name": name},
        "spec": {
            "totalItems": items,
            "checkpoint": EVERY_ITEM if checkpoint is None else checkpoint,
            "retry": {
                "maxRestarts": max_restarts,
                "maxItemAttempts": max_restarts + 1,  # a kill is not the item's fault
                "backoff": NO_BACKOFF,
            },
            "template": {
                "spec": {
                    "terminationGracePeriodSeconds": 10,
                    "containers": [
                        {
                            "name": "worker",
                            "image": "resumable-batch/worker:dev",
                            "command": [sys.executable, str(WORKER)],
                            "env": [{"name": k, "value": v} for k, v in env.items()],
                        }
                    ],
                }
            },
        },
    }


def started_by(log: Path, pid: int) -> int:
    """How many items the worker process ``pid`` started."""
    return sum(1 for line in read_log(log) if line[0] == "start" and int(line[2]) == pid)


@dataclass(frozen=True)
class Tally:
    """What a batch's execution log and outputs say, across all its attempts."""

    items: int
    attempts: int  # worker processes that began
    executions: int  # item starts
    duplicates: int  # items an attempt ran although it resumed past them, or ran twice
    committed_redone: int  # item runs after an earlier run of it had committed
    steps_run: int
    steps_needed: int  # distinct (item, step) pairs run
    finished_steps_redone: int  # a step run again after an earlier run of it was stored
    lost_outputs: int  # items without their output, or with a wrong one

    @property
    def redone_items(self) -> int:
        return self.executions - self.items

    @property
    def redone_steps(self) -> int:
        return self.steps_run - self.steps_needed


def tally(workdir: Path, items: int) -> Tally:
    """Read ``workdir/exec.log`` and ``workdir/out``; see :class:`Tally`."""
    resumed_from: dict[int, int] = {}
    ran: dict[int, list[int]] = {}
    stored: set[tuple[int, str]] = set()
    steps: Counter[tuple[int, str]] = Counter()
    finished_redone = 0
    committed: set[int] = set()
    committed_redone = 0
    for line in read_log(workdir / "exec.log"):
        kind = line[0]
        if kind == "begin":
            resumed_from[int(line[1])] = int(line[2])
        elif kind == "start":
            ran.setdefault(int(line[2]), []).append(int(line[1]))
            committed_redone += int(line[1]) in committed
        elif kind == "commit":
            committed.add(int(line[1]))
        elif kind == "step":
            key = (int(line[1]), line[2])
            steps[key] += 1
            finished_redone += key in stored
        elif kind == "stepdone":
            stored.add((int(line[1]), line[2]))
    duplicates = 0
    for pid, indices in ran.items():
        duplicates += sum(1 for i in indices if i < resumed_from.get(pid, 0))
        duplicates += len(indices) - len(set(indices))
    return Tally(
        items=items,
        attempts=len(resumed_from),
        executions=sum(len(v) for v in ran.values()),
        duplicates=duplicates,
        committed_redone=committed_redone,
        steps_run=sum(steps.values()),
        steps_needed=len(steps),
        finished_steps_redone=finished_redone,
        lost_outputs=lost_outputs(workdir / "out", items),
    )


def lost_outputs(out: Path, items: int) -> int:
    """Items 0..items-1 whose output file is missing or holds another value."""
    lost = 0
    for index in range(items):
        path = out / "outputs" / f"{index:08d}.json"
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            lost += 1
            continue
        lost += (record.get("index"), record.get("output")) != (index, expected_output(index))
    return lost
