"""Failure scenarios shared by the local runner's tests and the operator's integration tests.

Each scenario is a ResumableBatch running the example summariser with a fault
injected through its SUMMARIZER_* variables, and what must be true at the end.
The two harnesses build the manifest with :func:`manifest` and check the same
expectations, so `resumable run` and the operator are held to one definition.
"""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Scenario:
    """A batch with a fault, and its expected end."""

    id: str
    items: int
    fault: dict[str, str]
    retry: dict[str, Any]
    phase: str
    restarts: int
    skipped: tuple[int, ...] = ()  # 1-based item numbers
    reason: str = ""  # reason of the Failed condition
    log_line: str = ""  # a line some worker must print
    outputs: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: With 4 parallel workers: the restarts expected, lowest to highest. A death at a
    #: poison item is placed exactly sooner than with one worker (a chunk of one item),
    #: so it can take fewer restarts.
    parallel_restarts: tuple[int, int] | None = None

    def restarts_with(self, parallelism: int) -> tuple[int, int]:
        """The restarts expected with this many workers, as (lowest, highest)."""
        if parallelism > 1 and self.parallel_restarts is not None:
            return self.parallel_restarts
        return self.restarts, self.restarts


#: The worker counts every scenario runs with, on the runner and on the operator.
PARALLELISM = (1, 4)


NO_BACKOFF = {"initialSeconds": 0, "maxSeconds": 0, "factor": 1}

SCENARIOS = [
    Scenario(
        id="recovery-kill-after-20",
        items=50,
        fault={"SUMMARIZER_CRASH_AFTER": "20", "SUMMARIZER_CRASH_MODE": "kill"},
        retry={"maxRestarts": 3, "backoff": NO_BACKOFF},
        phase="Succeeded",
        restarts=1,
        log_line="resuming at item 21/50",
        outputs=50,
    ),
    Scenario(
        id="poison-item-skipped",
        items=30,
        fault={"SUMMARIZER_POISON": "10"},
        retry={
            "maxRestarts": 6,
            "maxItemAttempts": 2,
            "onPoisonItem": "Skip",
            "backoff": NO_BACKOFF,
        },
        phase="Succeeded",
        restarts=3,
        skipped=(10,),
        outputs=29,
        parallel_restarts=(2, 3),
    ),
    Scenario(
        id="poison-item-fails-batch",
        items=30,
        fault={"SUMMARIZER_POISON": "10"},
        retry={
            "maxRestarts": 6,
            "maxItemAttempts": 1,
            "onPoisonItem": "Fail",
            "backoff": NO_BACKOFF,
        },
        phase="Failed",
        restarts=1,
        reason="PoisonItem",
        parallel_restarts=(0, 1),
    ),
    Scenario(
        id="max-restarts-exhausted",
        items=30,
        fault={"SUMMARIZER_POISON": "5"},
        retry={"maxRestarts": 2, "maxItemAttempts": 10, "backoff": NO_BACKOFF},
        phase="Failed",
        restarts=2,
        reason="MaxRestartsExceeded",
    ),
    Scenario(
        id="never-retry-exit-code",
        items=30,
        fault={
            "SUMMARIZER_CRASH_AFTER": "5",
            "SUMMARIZER_CRASH_MODE": "exit",
            "SUMMARIZER_EXIT_CODE": "3",
        },
        retry={"maxRestarts": 5, "neverRetryExitCodes": [3], "backoff": NO_BACKOFF},
        phase="Failed",
        restarts=0,
        reason="NeverRetryExitCode",
    ),
]


def manifest(
    scenario: Scenario,
    name: str,
    *,
    python: str = sys.executable,
    env: dict[str, str] | None = None,
    delay: float = 0.005,
    parallelism: int = 1,
) -> dict[str, Any]:
    """The ResumableBatch manifest of a scenario (with ``parallelism`` workers)."""
    variables = {"SUMMARIZER_ITEMS": str(scenario.items), "SUMMARIZER_DELAY": str(delay)}
    variables.update(scenario.fault)
    variables.update(env or {})
    return {
        "apiVersion": "resumable.dev/v1alpha1",
        "kind": "ResumableBatch",
        "metadata": {"name": name},
        "spec": {
            "totalItems": scenario.items,
            "parallelism": parallelism,
            # A write a second, as the scenarios are timed for (the cluster default,
            # 10 s, is resolved and tested in tests/unit/sdk/test_checkpoint_policy.py).
            "checkpoint": {"everySeconds": 1},
            "retry": copy.deepcopy(scenario.retry),  # callers may edit their manifest
            "template": {
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [
                        {
                            "name": "worker",
                            "image": "resumable-batch/worker:dev",
                            "command": [python, "-m", "resumable.examples.summarizer"],
                            "env": [{"name": k, "value": v} for k, v in variables.items()],
                        }
                    ],
                }
            },
        },
    }
