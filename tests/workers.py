"""A tiny worker for the SDK's subprocess tests, and the helpers the tests drive it with.

Run as a script (``python tests/workers.py``), it processes ``WORKER_ITEMS`` items
with the SDK and logs every execution to an append-only file, so a test can
count how often each item ran across restarts. Configured by environment:

- ``WORKER_ITEMS``: number of items (default 30).
- ``WORKER_DELAY``: seconds of work per item (default 0.005).
- ``WORKER_LOG``: the execution log (required); one line per event, written
  with a single unbuffered ``write`` so a SIGKILL never leaves half a line.
- ``WORKER_WINDOW``: seconds to pause inside every checkpoint write, after the
  outputs it covers are durable and before the position is written; the
  worker logs ``window`` first, so a test can kill it exactly there.
- ``WORKER_EXIT_AFTER``: call ``sys.exit(3)`` right after item N (1-based) commits.
- ``WORKER_STEPS``: comma-separated step names; each item runs them in order as
  named steps (``item.step``), each a ``WORKER_DELAY`` sleep, before its output is set.
- ``WORKER_BREAK_AFTER``: ``break`` out of the loop after item N and exit 4,
  with the loop's iterator still referenced from a module global (as in a
  script whose loop is at module level), so only the run's exit handler saves.
- ``RESUMABLE_*``: the SDK's own settings (directory, policy, attempt...). With
  ``RESUMABLE_STORE=kube`` the worker takes its stores from ``resumable.start()``
  as a pod would (``WORKER_WINDOW`` applies to the local store only).
- ``RESUMABLE_OUTPUTS``: spec.outputs (a bucket) as JSON: outputs go there, as
  ``resumable.start()`` would send them, with the local store's WORKER_WINDOW.
- ``WORKER_STORE=plain``: instead of LocalStore, a user's own CheckpointStore
  (``status.json`` in ``RESUMABLE_DIR``, plain open() and write) with
  DirectoryOutputs beside it.

Log lines: ``begin <pid> <resumed_from>``, ``start <index> <pid>``,
``commit <index> <pid>`` (the ``with item:`` block committed it, maybe not yet
saved), ``step <index> <name> <pid>`` (a step's function ran), ``stepdone <index>
<name> <pid>`` (``item.step`` returned: the step is stored), ``window <pid>``,
``end <pid>``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Self

ROOT = Path(__file__).resolve().parents[1]
SDK = ROOT / "sdk"


def expected_output(index: int) -> dict[str, Any]:
    """The output the worker stores for an item: a pure function of its index."""
    return {"index": index, "square": index * index, "text": f"item-{index:04d}"}


def item_values(count: int) -> list[str]:
    """The worker's item list."""
    return [f"value-{index}" for index in range(count)]


# ------------------------------------------------------------------ test-side helpers


def worker_env(store: Path, log: Path, **extra: str) -> dict[str, str]:
    """Environment for one worker process: the SDK importable, no inherited RESUMABLE_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESUMABLE_", "WORKER_"))}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    env.pop("KUBECONFIG", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SDK), env.get("PYTHONPATH", "")]))
    env["PYTHONUNBUFFERED"] = "1"
    env["RESUMABLE_DIR"] = str(store)
    env["RESUMABLE_BATCH_NAME"] = "trial"
    env["WORKER_LOG"] = str(log)
    env.update(extra)
    return env


def kube_worker_env(
    workdir: Path, kubeconfig: Path, namespace: str, name: str, **extra: str
) -> dict[str, str]:
    """Environment for a worker of attempt 1 of batch ``name``, as its pod gets it.

    The Kubernetes store through ``kubeconfig``; under ``workdir``: the log
    ``worker.log``, the outputs in ``out`` and ``state`` (which that store leaves unused).
    A write a second unless ``RESUMABLE_CHECKPOINT`` is given: the tests and benches
    built on it are timed for that, not for the 10 s cluster default.
    """
    extra.setdefault("RESUMABLE_CHECKPOINT", json.dumps({"everySeconds": 1}))
    return worker_env(
        workdir / "state",
        workdir / "worker.log",
        KUBECONFIG=str(kubeconfig),
        RESUMABLE_STORE="kube",
        RESUMABLE_NAMESPACE=namespace,
        RESUMABLE_BATCH_NAME=name,
        RESUMABLE_ATTEMPT="1",
        RESUMABLE_OUTPUT_DIR=str(workdir / "out"),
        **extra,
    )


def start_worker(env: Mapping[str, str], *, script: Path | None = None) -> subprocess.Popen[str]:
    """Start the worker script (this file, or ``script``) in its own process, output piped."""
    return subprocess.Popen(
        [sys.executable, str(script or Path(__file__).resolve())],
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def read_log(path: Path) -> list[list[str]]:
    """The execution log as split lines (empty when the file does not exist yet)."""
    if not path.exists():
        return []
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


@dataclass
class WorkerProcess:
    """A worker process a test started (env: :func:`kube_worker_env`), its log and outputs read."""

    proc: subprocess.Popen[str]
    log: Path
    outputs: Path

    @classmethod
    def start(cls, env: Mapping[str, str], *, script: Path | None = None) -> Self:
        """:func:`start_worker`, its log and outputs where ``env`` puts them."""
        outputs = Path(env["RESUMABLE_OUTPUT_DIR"]) / "outputs"
        return cls(start_worker(env, script=script), Path(env["WORKER_LOG"]), outputs)

    def events(self, kind: str) -> list[int]:
        """The item indices of every ``start`` or ``commit`` line, in order."""
        return [int(parts[1]) for parts in read_log(self.log) if parts[0] == kind]

    def times(self, kind: str) -> list[float]:
        """The time.monotonic() of each ``kind`` line (tests/reliability/script_worker.py only)."""
        return [float(parts[-1]) for parts in read_log(self.log) if parts[0] == kind]

    def output_indices(self) -> set[int]:
        """The indices of the items whose output was written."""
        return {int(p.stem) for p in self.outputs.glob("*.json")}

    def terminate(self) -> tuple[float, int, str]:
        """SIGTERM it; the time it was sent, the exit code and the output."""
        sent = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        output, _ = self.proc.communicate(timeout=60)
        return sent, self.proc.returncode, output


# ------------------------------------------------------------------------ the worker


_KEPT: list[Any] = []  # the item iterator, alive until the interpreter's teardown


def _main() -> int:
    sys.path.insert(0, str(SDK))
    import resumable
    from resumable.v1alpha1 import ResumableBatchStatus

    items = int(os.environ.get("WORKER_ITEMS", "30"))
    delay = float(os.environ.get("WORKER_DELAY", "0.005"))
    window = float(os.environ.get("WORKER_WINDOW", "0") or 0)
    exit_after = int(os.environ.get("WORKER_EXIT_AFTER", "0") or 0)
    break_after = int(os.environ.get("WORKER_BREAK_AFTER", "0") or 0)
    steps = [name for name in os.environ.get("WORKER_STEPS", "").split(",") if name]
    log_fd = os.open(os.environ["WORKER_LOG"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    pid = os.getpid()

    def log(line: str) -> None:
        os.write(log_fd, f"{line}\n".encode())

    class WindowStore(resumable.LocalStore):
        """A LocalStore that pauses between durable outputs and the position write."""

        def save_checkpoint(self, checkpoint: Any, **kwargs: Any) -> None:
            if window:
                log(f"window {pid}")
                time.sleep(window)
            super().save_checkpoint(checkpoint, **kwargs)

    class PlainStore:
        """A user's own CheckpointStore: the status as one JSON file, nothing more."""

        def __init__(self, directory: Path) -> None:
            self.path = directory / "status.json"
            directory.mkdir(parents=True, exist_ok=True)

        def describe(self) -> str:
            return str(self.path)

        def load(self) -> Any:
            if not self.path.exists():
                return None
            return ResumableBatchStatus.model_validate_json(self.path.read_text())

        def claim(self, attempt: int | None) -> tuple[Any, int]:
            status = self.load() or ResumableBatchStatus()
            attempt = status.checkpoint.attempt + 1 if attempt is None else attempt
            status.checkpoint.attempt = attempt
            self.path.write_text(status.model_dump_json(by_alias=True))
            return status, attempt

        def save_checkpoint(
            self, checkpoint: Any, *, progress: str, expect_attempt: int, expect_next: int,
            final: bool = False,
        ) -> None:  # fmt: skip
            status = self.load() or ResumableBatchStatus()
            if (status.checkpoint.attempt, status.checkpoint.next_index) != (
                expect_attempt,
                expect_next,
            ):
                raise resumable.FencedError(f"{self.path}: another attempt wrote")
            status.checkpoint, status.progress = checkpoint, progress
            self.path.write_text(status.model_dump_json(by_alias=True))

    settings = resumable.Settings.from_env()
    if os.environ.get("WORKER_STORE") == "plain":
        run = resumable.Run(
            settings,
            PlainStore(settings.directory),
            resumable.DirectoryOutputs(settings.directory / "outputs"),
            resumable.DirectoryOutputs(settings.directory / "steps"),
        )
    elif settings.store == "kube":
        run = resumable.start(settings=settings)
    else:
        store = WindowStore(settings.directory)
        outputs, step_store = store.outputs, store.steps
        if settings.outputs is not None:  # RESUMABLE_OUTPUTS: a bucket, as start() opens it
            outputs, step_store = resumable._chosen_outputs(settings, store, step_store)
        run = resumable.Run(settings, store, outputs, step_store)
    log(f"begin {pid} {run.resumed_from}")
    print(f"attempt {run.attempt}: resuming at item {run.resumed_from + 1}", flush=True)
    _KEPT.append(run.items(item_values(items)))
    for item in _KEPT[0]:
        with item:
            log(f"start {item.index} {pid}")
            if delay:
                time.sleep(delay)
            for name in steps:
                result = item.step(name, partial(_step, log, item.index, name, pid, delay))
                if result != f"{name}-{item.index}":
                    return 5  # a stored step came back with another item's result
                log(f"stepdone {item.index} {name} {pid}")
            item.output = expected_output(item.index)
        log(f"commit {item.index} {pid}")
        if break_after and item.number == break_after:
            return 4
        if exit_after and item.number == exit_after:
            sys.exit(3)
    log(f"end {pid}")
    return 0 if run.summary().finished else 1


def _step(log: Any, index: int, name: str, pid: int, delay: float) -> str:
    """One named step's work: logged, a sleep, a result only this item and step give."""
    log(f"step {index} {name} {pid}")
    if delay:
        time.sleep(delay)
    return f"{name}-{index}"


if __name__ == "__main__":
    sys.exit(_main())
