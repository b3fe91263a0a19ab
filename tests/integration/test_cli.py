"""The `resumable` cluster commands against the real control plane, run as subprocesses.

get, describe, status (and --watch), logs, suspend, resume and rerun, each as a
user would type it (`resumable CMD ... --kubeconfig PATH -n NS`), plus the kubectl
plugin name. The operator runs (as a subprocess) only where a batch must really
progress; the spec-changing commands are checked by reading the object back.
"""

from __future__ import annotations

import hashlib
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from resumable.kubeapi import KubeApi, batch_path
from scenarios import SCENARIOS, Scenario, manifest
from tests.integration.harness import Batches, OperatorProcess, free_port
from tests.waiting import wait_for

BIN = Path(sys.executable).parent
RESUMABLE = BIN / "resumable"


def run_cli(
    *args: str, kubeconfig: Path | None, namespace: str | None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    cmd = [str(RESUMABLE), *args]
    if kubeconfig is not None:
        cmd += ["--kubeconfig", str(kubeconfig)]
    if namespace is not None:
        cmd += ["-n", namespace]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(result: subprocess.CompletedProcess[str], text: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr  # exactly one line
    assert result.stderr.startswith("error: "), result.stderr
    assert text in result.stderr, result.stderr


def simple_batch(name: str, **spec: Any) -> dict[str, Any]:
    """A batch nobody runs (no operator): for commands that only read or change the object."""
    scenario = Scenario(id="plain", items=10, fault={}, retry={}, phase="Succeeded", restarts=0)
    body = manifest(scenario, name)
    body["spec"].update(spec)
    return body


def set_status(batches: Batches, name: str, status: dict[str, Any]) -> None:
    """Write a batch's status as an operator would (no operator runs)."""
    batches.patch_status(name, [{"op": "add", "path": "/status", "value": status}])


def condition(type_: str, reason: str, message: str) -> dict[str, str]:
    return {"type": type_, "status": "True", "reason": reason, "message": message}


# ------------------------------------------------ a batch the operator ran to the end


class Finished:
    """The recovery scenario (killed after item 20) run by the operator in its own namespace."""

    def __init__(
        self, namespace: str, batches: Batches, watch: subprocess.CompletedProcess[str]
    ) -> None:
        self.namespace = namespace
        self.batches = batches
        self.watch = watch
        self.name = "recovery"


@pytest.fixture(scope="module")
def finished(
    controlplane: Any, kubeconfig: Path, kubelet: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Finished]:
    tmp = tmp_path_factory.mktemp("cli")
    ns = "t-cli-" + hashlib.sha1(str(time.time_ns()).encode()).hexdigest()[:6]
    controlplane.create_namespace(ns, labels={"resumable.dev/test": "true"})
    batches = Batches(KubeApi.from_environment(kubeconfig=str(kubeconfig)), ns)
    operator = OperatorProcess(kubeconfig, ns, tmp / "operator.log").start()
    try:
        body = manifest(SCENARIOS[0], "recovery", env={"RESUMABLE_OUTPUT_DIR": str(tmp / "out")})
        batches.create(body)
        # `status --watch` follows the batch live, from before its first pod to the end.
        watch = run_cli(
            "status",
            "recovery",
            "--watch",
            "--interval",
            "0.2",
            kubeconfig=kubeconfig,
            namespace=ns,
            timeout=120,
        )
        batches.wait_ended("recovery")
        # The operator posts the end's event just after the status write that ends it.
        wait_for(
            lambda: any(e["reason"] == "Completed" for e in batches.events("recovery")),
            what="the Completed event on recovery",
            timeout=15,
        )
        yield Finished(ns, batches, watch)
    finally:
        operator.stop()
        print("---- operator log (tail) ----\n" + "\n".join(operator.log().splitlines()[-40:]))
        kubelet.forget_namespace(ns)
        controlplane.delete_namespace(ns)


def test_status_watch_follows_the_batch_until_it_succeeds(finished: Finished) -> None:
    out = finished.watch.stdout
    assert finished.watch.returncode == 0, out + finished.watch.stderr
    assert out.splitlines()[-1] == "phase: Succeeded"
    assert re.search(r"\] 50/50 .*restarts 1 \$0\.\d{4}$", out.splitlines()[-2]), out


def test_get_lists_the_batch_with_progress_restarts_and_phase(
    finished: Finished, kubeconfig: Path
) -> None:
    result = run_cli("get", kubeconfig=kubeconfig, namespace=finished.namespace)
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["NAME", "PROGRESS", "RESTARTS", "PHASE"]
    assert [r.split() for r in rows] == [["recovery", "50/50", "1", "Succeeded"]]
    one = run_cli("get", "recovery", kubeconfig=kubeconfig, namespace=finished.namespace)
    assert one.stdout == result.stdout


def test_describe_shows_the_checkpoint_restarts_and_events(
    finished: Finished, kubeconfig: Path
) -> None:
    result = run_cli("describe", "recovery", kubeconfig=kubeconfig, namespace=finished.namespace)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    cp = finished.batches.get("recovery")["status"]["checkpoint"]
    assert re.search(r"^Phase:\s+Succeeded$", out, re.MULTILINE)
    assert re.search(r"^Progress:\s+50/50$", out, re.MULTILINE)
    assert re.search(r"^Restarts:\s+1 \(\+0 disruptions\)$", out, re.MULTILINE)
    assert re.search(r"^\s+Attempt:\s+2$", out, re.MULTILINE)
    assert re.search(r"^\s+Next item:\s+\(finished\)$", out, re.MULTILINE)
    assert f"{cp['tokens']} tokens, ${cp['costUsd']:.4f}" in out
    assert cp["fingerprint"] in out
    assert re.search(r"^\s+Succeeded\s+True\s+Completed\s", out, re.MULTILINE)
    events = out[out.index("Events:") :]
    assert "Resumed at item 21/50 after exit 137 (attempt 2)" in events
    order = [events.index(r) for r in ("Accepted", "Started", "Resumed", "Completed")]
    assert order == sorted(order), events  # oldest first, also within one second


def test_status_prints_the_progress_once(finished: Finished, kubeconfig: Path) -> None:
    result = run_cli("status", "recovery", kubeconfig=kubeconfig, namespace=finished.namespace)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stdout
    assert "50/50" in lines[0]
    assert "restarts 1" in lines[0]
    assert lines[1] == "phase: Succeeded"


STATUS_EXITS = {
    # name: (status, --watch?, exit code); Succeeded is the `finished` batch's (0)
    "failed": (
        {"phase": "Failed", "conditions": [condition("Failed", "PoisonItem", "Item 3.")]},
        False,
        1,
    ),
    "failed-watch": (
        {"phase": "Failed", "conditions": [condition("Failed", "PoisonItem", "Item 3.")]},
        True,
        1,
    ),
    "suspended": ({"phase": "Suspended"}, False, 130),
    "suspended-watch": ({"phase": "Suspended"}, True, 130),
    "running": ({"phase": "Running", "activePod": "told-1", "observedGeneration": 1}, False, 0),
}


@pytest.mark.parametrize("case", list(STATUS_EXITS))
def test_status_exit_code_tells_succeeded_failed_and_suspended_apart(
    batches: Batches, kubeconfig: Path, namespace: str, case: str
) -> None:
    status, watch, code = STATUS_EXITS[case]
    batches.create(simple_batch("told"))
    set_status(batches, "told", status)
    args = ["status", "told", *(["--watch", "--interval", "0.2"] if watch else [])]
    result = run_cli(*args, kubeconfig=kubeconfig, namespace=namespace)
    assert result.returncode == code, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == f"phase: {status['phase']}"


def test_status_of_a_batch_no_operator_has_picked_up_says_so(
    batches: Batches, kubeconfig: Path, namespace: str
) -> None:
    batches.create(simple_batch("orphan"))
    result = run_cli("status", "orphan", kubeconfig=kubeconfig, namespace=namespace)
    assert result.returncode == 0, result.stderr  # not ended: maybe an operator comes
    assert result.stdout.splitlines()[1:] == [
        "phase: (not reconciled yet)",
        "no operator has picked up resumablebatch/orphan yet; if that lasts, check that one is "
        "running (`kubectl get pods -n <operator namespace>`, resumable-system in the README's "
        f"install) and that it watches namespace {namespace}",
    ]


def test_status_watch_of_a_batch_no_operator_picked_up_hints_once_and_goes_on_waiting(
    batches: Batches, kubeconfig: Path, namespace: str
) -> None:
    batches.create(simple_batch("late"))
    cmd = [str(RESUMABLE), "status", "late", "--watch", "--interval", "0.2"]
    started = time.monotonic()
    process = subprocess.Popen(
        [*cmd, "--kubeconfig", str(kubeconfig), "-n", namespace],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[tuple[float, str]] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append((time.monotonic() - started, line.rstrip("\n")))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while not any("no operator has picked up" in text for _, text in lines):
            assert process.poll() is None, (lines, process.stderr)
            assert time.monotonic() < deadline, f"no hint within 30s: {lines}"
            time.sleep(0.1)
        hinted_at = next(t for t, text in lines if "no operator has picked up" in text)
        assert hinted_at >= 10, lines  # not at once: an operator may just be slow
        time.sleep(1.0)
        assert process.poll() is None, lines  # still waiting for an operator
        # An operator comes and the batch ends: the watch ends with it, the hint said once.
        set_status(
            batches,
            "late",
            {"phase": "Succeeded", "conditions": [condition("Succeeded", "Completed", "Done.")]},
        )
        assert process.wait(timeout=30) == 0, lines
        reader.join(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    texts = [text for _, text in lines]
    assert sum("no operator has picked up" in text for text in texts) == 1, texts
    assert texts[-1] == "phase: Succeeded", texts


ATTEMPT_1 = [
    "attempt 1: starting at item 1/50",
    "item 10/50 done",
    "item 20/50 done",
    "item 20 committed; injecting a crash (kill)",
]
ATTEMPT_2_START = ["attempt 2: resuming at item 21/50", "item 30/50 done", "item 40/50 done"]
ATTEMPT_2_END = ["item 50/50 done"]


def assert_attempt_2(lines: list[str]) -> None:
    assert lines[:3] == ATTEMPT_2_START, lines
    assert lines[3] == ATTEMPT_2_END[0], lines
    assert re.fullmatch(
        r"done: 50/50 items, 0 skipped, \d+ tokens, \$0\.\d{4}, attempt 2", lines[4]
    )
    assert len(lines) == 5, lines


def test_logs_prints_the_latest_worker_pods_output(finished: Finished, kubeconfig: Path) -> None:
    # Through the API server's pods/log, which calls the kubelet over mutual TLS.
    result = run_cli("logs", "recovery", kubeconfig=kubeconfig, namespace=finished.namespace)
    assert result.returncode == 0, result.stderr
    assert_attempt_2(result.stdout.splitlines())


def test_logs_of_an_earlier_attempt_show_where_it_crashed(
    finished: Finished, kubeconfig: Path
) -> None:
    result = run_cli(
        "logs", "recovery", "--attempt", "1", kubeconfig=kubeconfig, namespace=finished.namespace
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ATTEMPT_1


def test_logs_tail_prints_only_the_last_lines(finished: Finished, kubeconfig: Path) -> None:
    result = run_cli(
        "logs", "recovery", "--tail", "2", kubeconfig=kubeconfig, namespace=finished.namespace
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "item 50/50 done"
    assert lines[1].startswith("done: 50/50 items")
    assert len(lines) == 2, lines


class Follower:
    """`resumable logs NAME -f` on a slow batch (30 items, 0.1 s each) with an operator."""

    def __init__(
        self, batches: Batches, kubeconfig: Path, namespace: str, tmp_path: Path, name: str
    ) -> None:
        scenario = Scenario(
            id="slow", items=30, fault={}, retry=SCENARIOS[0].retry, phase="Succeeded", restarts=1
        )
        env = {"RESUMABLE_OUTPUT_DIR": str(tmp_path)}
        self.batches = batches
        self.name = name
        self.operator = OperatorProcess(kubeconfig, namespace, tmp_path / "operator.log").start()
        batches.create(manifest(scenario, name, env=env, delay=0.1))
        cmd = [str(RESUMABLE), "logs", name, "-f", "--interval", "0.2"]
        self.process = subprocess.Popen(
            [*cmd, "--kubeconfig", str(kubeconfig), "-n", namespace],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)  # end of output

    def readline(self, timeout: float = 30) -> str:
        """The next line it printed, waiting at most ``timeout`` seconds."""
        try:
            line = self._queue.get(timeout=timeout)
        except queue.Empty:
            self.process.kill()
            _, err = self.process.communicate()
            pytest.fail(f"no output within {timeout}s; lines so far {self.lines}; stderr: {err}")
        if line is None:
            _, err = self.process.communicate(timeout=10)
            pytest.fail(f"it ended early; lines so far {self.lines}; stderr: {err}")
        self.lines.append(line)
        return line

    def finish(self, timeout: float = 60) -> tuple[int, list[str], str]:
        """Wait for it to end by itself: exit code, every stdout line, stderr."""
        assert self.process.stderr is not None
        self.process.wait(timeout=timeout)
        self._reader.join(timeout)
        while (line := self._queue.get_nowait()) is not None:
            self.lines.append(line)
        return self.process.returncode, self.lines, self.process.stderr.read()

    def close(self) -> None:
        self.process.kill()
        self.operator.stop()


@pytest.fixture
def follower(
    batches: Batches, kubeconfig: Path, namespace: str, tmp_path: Path, kubelet: Any
) -> Iterator[Follower]:
    follower = Follower(batches, kubeconfig, namespace, tmp_path, "followed")
    try:
        yield follower
    finally:
        follower.close()


def test_logs_follow_streams_every_attempt_until_the_batch_succeeds(
    follower: Follower, kubelet: Any, namespace: str
) -> None:
    # Both lines come from attempt 1 while it runs; then it is killed mid-batch.
    assert follower.readline() == "attempt 1: starting at item 1/30"
    assert follower.readline() == "item 10/30 done"
    kubelet.kill(namespace, "followed-1")
    code, lines, err = follower.finish()
    assert code == 0, (lines, err)
    resumed = next((i for i, line in enumerate(lines) if line.startswith("attempt 2:")), -1)
    assert resumed > 1, (lines, err)
    assert re.fullmatch(r"attempt 2: resuming at item \d+/30", lines[resumed]), lines
    assert lines[-1].startswith("done: 30/30 items"), lines
    assert lines[-1].endswith("attempt 2"), lines
    # Where one attempt's log ends and the next begins: on stderr, so stdout stays the log.
    assert err == "--- followed: next attempt, pod followed-2 ---\n"
    assert follower.batches.get("followed")["status"]["phase"] == "Succeeded"


def test_logs_follow_ends_cleanly_when_the_batch_is_suspended(
    follower: Follower, kubeconfig: Path, namespace: str
) -> None:
    assert follower.readline() == "attempt 1: starting at item 1/30"
    suspended = run_cli("suspend", "followed", kubeconfig=kubeconfig, namespace=namespace)
    assert suspended.returncode == 0, suspended.stderr
    # The worker stops (its pod is deleted and removed); -f ends with it, no error.
    code, lines, err = follower.finish()
    assert code == 0, (lines, err)
    assert err == "", err
    assert not any(line.startswith("attempt 2") for line in lines), lines
    assert follower.batches.get("followed")["status"]["phase"] == "Suspended"


def test_logs_follow_moves_on_when_the_worker_pod_is_evicted(
    follower: Follower, kubelet: Any, namespace: str
) -> None:
    assert follower.readline() == "attempt 1: starting at item 1/30"
    kubelet.evict(namespace, "followed-1")  # the pod is deleted: a disruption, not a failure
    code, lines, err = follower.finish()
    assert code == 0, (lines, err)
    assert err == "--- followed: next attempt, pod followed-2 ---\n"
    assert lines[-1].startswith("done: 30/30 items"), lines


def test_logs_follow_says_so_when_the_batch_is_deleted(
    follower: Follower, kubeconfig: Path, namespace: str
) -> None:
    assert follower.readline() == "attempt 1: starting at item 1/30"
    follower.batches.api.request("DELETE", batch_path(namespace, "followed"))
    code, lines, err = follower.finish()
    assert code == 1, (lines, err)
    assert err == 'error: resumablebatch "followed" was deleted while its logs were followed\n'


def test_logs_of_an_attempt_not_kept_is_a_one_line_error(
    finished: Finished, kubeconfig: Path
) -> None:
    result = run_cli(
        "logs", "recovery", "--attempt", "7", kubeconfig=kubeconfig, namespace=finished.namespace
    )
    assert_one_line_error(result, 'resumablebatch "recovery" has no pod of attempt 7')
    assert result.stdout == ""


def test_logs_failure_is_a_one_line_error_naming_the_pod(
    finished: Finished, kubeconfig: Path, kubelet: Any
) -> None:
    # The node lost the pod's log (as after a log cleanup): the kubelet answers 404 and
    # the API server passes that on. The CLI must say so, not print the error body as if
    # it were the log.
    log = kubelet.log_path(finished.namespace, "recovery-2")
    moved = log.with_name("moved.log")
    log.rename(moved)
    try:
        result = run_cli("logs", "recovery", kubeconfig=kubeconfig, namespace=finished.namespace)
    finally:
        moved.rename(log)
    assert_one_line_error(result, "cannot read logs of pod recovery-2")
    assert result.stdout == ""


def test_logs_rejects_a_negative_tail(kubeconfig: Path, namespace: str) -> None:
    result = run_cli("logs", "any", "--tail", "-1", kubeconfig=kubeconfig, namespace=namespace)
    assert_one_line_error(result, "--tail must be 0 or more, got -1")


def test_logs_of_a_batch_without_pods_says_so(
    batches: Batches, kubeconfig: Path, namespace: str
) -> None:
    batches.create(simple_batch("idle"))
    result = run_cli("logs", "idle", kubeconfig=kubeconfig, namespace=namespace)
    assert_one_line_error(result, 'resumablebatch "idle" has no worker pods')


# -------------------------------------------------- describe of a batch mid-run


def test_describe_shows_position_last_error_skipped_items_and_only_this_batchs_events(
    batches: Batches, api: KubeApi, kubeconfig: Path, namespace: str
) -> None:
    created = batches.create(simple_batch("midway", totalItems=200))
    status = {
        "checkpoint": {
            "nextIndex": 47,
            "completed": "0-46,48",
            "attempt": 3,
            "itemsDone": 48,
            "tokens": 1234,
            "costUsd": 0.0123,
            "lastError": "ValueError: bad document",
            "lastErrorIndex": 47,
        },
        "progress": "48/200",
        "restarts": 2,
        "disruptions": 1,
        "skipped": [{"index": 12, "attempts": 3, "error": "worker died: exit 137"}],
        "phase": "Running",
        "activePod": "midway-3",
    }
    batches.patch_status("midway", [{"op": "add", "path": "/status", "value": status}])

    def post_event(uid: str, reason: str, message: str, type_: str = "Normal") -> None:
        api.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/events",
            body={
                "metadata": {"generateName": "midway.", "namespace": namespace},
                "involvedObject": {
                    "apiVersion": "resumable.dev/v1alpha1",
                    "kind": "ResumableBatch",
                    "name": "midway",
                    "namespace": namespace,
                    "uid": uid,
                },
                "type": type_,
                "reason": reason,
                "message": message,
                "firstTimestamp": "2025-03-01T12:00:00Z",
                "lastTimestamp": "2025-03-01T12:00:00Z",
                "count": 1,
            },
        )

    post_event(
        created["metadata"]["uid"], "Resumed", "Resumed at item 48/200 after exit 137 (attempt 3)"
    )
    # A reason longer than the others: the messages still start in one column.
    post_event(
        created["metadata"]["uid"],
        "MaxRestartsExceeded",
        "Restarts exhausted: 2 of 2 used",
        type_="Warning",
    )
    # An event of an earlier batch of the same name, deleted since: not this one's.
    post_event("5e1d0d5e-0000-4000-8000-000000000000", "PodCreateFailed", "an older batch's event")
    result = run_cli("describe", "midway", kubeconfig=kubeconfig, namespace=namespace)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"^Restarts:\s+2 \(\+1 disruptions\)$", out, re.MULTILINE)
    assert re.search(r"^Active pod:\s+midway-3$", out, re.MULTILINE)
    assert re.search(r"^\s+Next item:\s+48$", out, re.MULTILINE)
    # Item numbers as everywhere else in the CLI (1-based), not the stored indices "0-46,48".
    assert re.search(r"^\s+Completed:\s+1-47,49$", out, re.MULTILINE)
    assert re.search(r"^\s+Attempt:\s+3$", out, re.MULTILINE)
    assert "1234 tokens, $0.0123" in out
    assert re.search(r"^\s+Last error:\s+item 48: ValueError: bad document$", out, re.MULTILINE)
    assert re.search(r"^\s+item 13 after 3 attempt\(s\): worker died: exit 137$", out, re.MULTILINE)
    assert "an older batch's event" not in out
    events = out[out.index("Events:") :].splitlines()[1:]
    assert len(events) == 2, events
    assert re.fullmatch(
        r"  2025-03-01T12:00:00Z  Normal   Resumed {14}"
        r"Resumed at item 48/200 after exit 137 \(attempt 3\)",
        events[0],
    ), events
    assert events[1] == (
        "  2025-03-01T12:00:00Z  Warning  MaxRestartsExceeded  Restarts exhausted: 2 of 2 used"
    ), events


def test_describe_shows_each_parallel_worker_and_the_batchs_last_failure(
    batches: Batches, kubeconfig: Path, namespace: str
) -> None:
    batches.create(simple_batch("wide", totalItems=200, parallelism=3))
    status = {
        "checkpoint": {"completed": "0-19", "attempt": 0, "itemsDone": 20},
        "progress": "26/200",
        "restarts": 1,
        "phase": "Running",
        "failedAt": "2025-03-01T12:00:00Z",
        "lastFailure": "worker 1: exit 137",
        "workers": [
            {"slot": 0, "attempt": 1, "started": True, "claim": "20-29", "done": "20-25"},
            {
                "slot": 1,
                "attempt": 2,
                "done": "",
                "restarts": 1,
                "retryAfter": "2025-03-01T12:00:10Z",
            },
            {"slot": 2, "attempt": 1, "done": "", "idle": True},
        ],
    }
    batches.patch_status("wide", [{"op": "add", "path": "/status", "value": status}])
    result = run_cli("describe", "wide", kubeconfig=kubeconfig, namespace=namespace)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(
        r"^Last end:\s+worker 1: exit 137 at 2025-03-01T12:00:00Z$", out, re.MULTILINE
    ), out
    assert re.search(r"^Workers:\s+3 \(spec.parallelism 3\)$", out, re.MULTILINE), out
    table = out[out.index("Workers:") : out.index("Skipped items:")].splitlines()[2:]
    rows = {line.split()[0]: line.split() for line in table}
    # The pod name is derived from the batch, slot and attempt; items are 1-based.
    assert rows["0"] == ["0", "1", "wide-w0-1", "21-30", "21-26", "0", "-"], out
    assert rows["1"] == ["1", "2", "(waiting)", "-", "-", "1", "2025-03-01T12:00:10Z"], out
    assert rows["2"] == ["2", "1", "(done)", "-", "-", "0", "-"], out


def test_describe_of_a_batch_with_nothing_done_shows_no_completed_items(
    batches: Batches, kubeconfig: Path, namespace: str
) -> None:
    batches.create(simple_batch("fresh"))
    result = run_cli("describe", "fresh", kubeconfig=kubeconfig, namespace=namespace)
    assert result.returncode == 0, result.stderr
    assert re.search(r"^\s+Next item:\s+1$", result.stdout, re.MULTILINE), result.stdout
    assert re.search(r"^\s+Completed:\s+\(none\)$", result.stdout, re.MULTILINE), result.stdout


# ------------------------------------------------------- spec-changing commands


def test_suspend_sets_spec_suspend_and_resume_clears_it(
    batches: Batches, kubeconfig: Path, namespace: str
) -> None:
    batches.create(simple_batch("pausable"))
    result = run_cli("suspend", "pausable", kubeconfig=kubeconfig, namespace=namespace)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "resumablebatch/pausable suspended"
    assert batches.get("pausable")["spec"]["suspend"] is True

    result = run_cli("resume", "pausable", kubeconfig=kubeconfig, namespace=namespace)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "resumablebatch/pausable resumed"
    obj = batches.get("pausable")
    assert obj["spec"]["suspend"] is False
    assert obj["spec"]["totalItems"] == 10  # the rest of the spec is untouched


#: A batch stopped at item 5 of 10 after 2 restarts (items 1-4 done).
STOPPED_AT_5 = {
    "checkpoint": {"nextIndex": 4, "completed": "0-3", "itemsDone": 4, "attempt": 3},
    "progress": "4/10",
    "restarts": 2,
    "observedGeneration": 1,
}

ENDED = {
    "succeeded": (
        {"phase": "Succeeded", "conditions": [condition("Succeeded", "Completed", "All done.")]},
        "resumablebatch/ended has succeeded, so there is nothing to {verb}: "
        "`resumable rerun ended -n {ns}` starts it again from item 1",
    ),
    "max-restarts": (
        {
            **STOPPED_AT_5,
            "phase": "Failed",
            "conditions": [condition("Failed", "MaxRestartsExceeded", "2 of 2 restarts used.")],
        },
        "resumablebatch/ended has failed (MaxRestartsExceeded: 2 of 2 restarts used.), so there "
        "is nothing to {verb}: raise spec.retry.maxRestarts above 2 (its restarts) to go on "
        "from its checkpoint (item 5), or `resumable rerun ended -n {ns}` to start over from "
        "item 1",
    ),
    "max-restarts-on-a-skipped-item": (
        {
            # Item 5 was skipped in the pass that spent the last restart: it goes on at 6.
            **STOPPED_AT_5,
            "skipped": [{"index": 4, "attempts": 1, "error": "worker died: exit 137"}],
            "phase": "Failed",
            "conditions": [condition("Failed", "MaxRestartsExceeded", "2 of 2 restarts used.")],
        },
        "resumablebatch/ended has failed (MaxRestartsExceeded: 2 of 2 restarts used.), so there "
        "is nothing to {verb}: raise spec.retry.maxRestarts above 2 (its restarts) to go on "
        "from its checkpoint (item 6), or `resumable rerun ended -n {ns}` to start over from "
        "item 1",
    ),
    "never-retry": (
        {
            **STOPPED_AT_5,
            "phase": "Failed",
            "conditions": [condition("Failed", "NeverRetryExitCode", "Exit 3 is never retried.")],
        },
        "resumablebatch/ended has failed (NeverRetryExitCode: Exit 3 is never retried.), so "
        "there is nothing to {verb}: fix the cause and edit its spec (e.g. the template) to go "
        "on from its checkpoint (item 5), or `resumable rerun ended -n {ns}` to start over "
        "from item 1",
    ),
}


@pytest.mark.parametrize("verb", ["suspend", "resume"])
@pytest.mark.parametrize("ended", sorted(ENDED))
def test_suspend_and_resume_of_an_ended_batch_say_what_to_do_instead_and_change_nothing(
    batches: Batches, kubeconfig: Path, namespace: str, ended: str, verb: str
) -> None:
    status, message = ENDED[ended]
    batches.create(simple_batch("ended", retry={"maxRestarts": 2}, suspend=verb == "resume"))
    set_status(batches, "ended", status)
    before = batches.get("ended")
    result = run_cli(verb, "ended", kubeconfig=kubeconfig, namespace=namespace)
    assert_one_line_error(result, message.format(verb=verb, ns=namespace))
    assert result.stdout == ""
    after = batches.get("ended")
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"] == before["spec"]


def test_resume_of_a_batch_that_is_not_suspended_says_so_and_changes_nothing(
    batches: Batches, kubeconfig: Path, namespace: str
) -> None:
    batches.create(simple_batch("busy"))
    set_status(batches, "busy", {**STOPPED_AT_5, "phase": "Running", "activePod": "busy-3"})
    generation = batches.get("busy")["metadata"]["generation"]
    result = run_cli("resume", "busy", kubeconfig=kubeconfig, namespace=namespace)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "resumablebatch/busy is not suspended (Running): nothing to resume\n"
    assert result.stderr == ""
    assert batches.get("busy")["metadata"]["generation"] == generation


def test_rerun_changes_the_run_id_and_unsuspends_and_refuses_the_same_run_id(
    batches: Batches, kubeconfig: Path, namespace: str
) -> None:
    batches.create(simple_batch("again", suspend=True))
    before = batches.get("again")
    result = run_cli("rerun", "again", kubeconfig=kubeconfig, namespace=namespace)
    assert result.returncode == 0, result.stderr
    first = batches.get("again")
    run_id = first["spec"]["runId"]
    assert run_id
    assert run_id != before["spec"].get("runId", "")
    assert first["spec"]["suspend"] is False
    assert result.stdout.strip() == f"resumablebatch/again rerun with runId {run_id}"
    assert first["metadata"]["generation"] > before["metadata"]["generation"]

    result = run_cli(
        "rerun", "again", "--run-id", "second", kubeconfig=kubeconfig, namespace=namespace
    )
    assert result.returncode == 0, result.stderr
    assert batches.get("again")["spec"]["runId"] == "second"

    # The same runId again would change nothing: the operator reruns on a change only.
    generation = batches.get("again")["metadata"]["generation"]
    result = run_cli(
        "rerun", "again", "--run-id", "second", kubeconfig=kubeconfig, namespace=namespace
    )
    assert result.returncode == 1
    assert result.stderr.startswith(
        "error: resumablebatch/again already has runId 'second', so nothing would rerun"
    )
    assert batches.get("again")["metadata"]["generation"] == generation


def test_invalid_run_id_is_refused_by_the_api_server_in_one_line(
    batches: Batches, kubeconfig: Path, namespace: str
) -> None:
    batches.create(simple_batch("strict"))
    result = run_cli(
        "rerun", "strict", "--run-id", "x" * 64, kubeconfig=kubeconfig, namespace=namespace
    )
    assert_one_line_error(result, "cannot update resumablebatch")
    assert "runId" in result.stderr
    assert batches.get("strict")["spec"].get("runId", "") == ""


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "command",
    [["describe"], ["get"], ["status"], ["suspend"], ["resume"], ["rerun"], ["logs"]],
    ids=lambda c: c[0],
)
def test_unknown_batch_is_a_one_line_error(
    command: list[str], kubeconfig: Path, namespace: str
) -> None:
    result = run_cli(*command, "nope", kubeconfig=kubeconfig, namespace=namespace)
    assert_one_line_error(result, f'resumablebatch "nope" not found in namespace "{namespace}"')
    assert result.stdout == ""


def test_get_of_a_namespace_without_batches_says_so_like_kubectl(
    kubeconfig: Path, namespace: str
) -> None:
    # An empty namespace, and one that does not exist: the same answer, as kubectl gives.
    for ns in (namespace, f"{namespace}-absent"):
        result = run_cli("get", kubeconfig=kubeconfig, namespace=ns)
        assert result.returncode == 0, result.stderr
        assert result.stdout == ""  # no header over nothing
        assert result.stderr == f"No resources found in {ns} namespace.\n"


def test_a_kubeconfig_that_does_not_exist_is_named(tmp_path: Path, namespace: str) -> None:
    missing = tmp_path / "missing.kubeconfig"
    result = run_cli("get", kubeconfig=missing, namespace=namespace)
    assert_one_line_error(result, f"error: cannot load kubeconfig: {missing} does not exist")
    from_env = subprocess.run(
        [str(RESUMABLE), "get"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KUBECONFIG": str(missing)},
    )
    assert_one_line_error(
        from_env, f"error: cannot load kubeconfig: {missing} (from KUBECONFIG) does not exist"
    )
    broken = tmp_path / "broken.kubeconfig"
    broken.write_text("clusters: [\n")  # the YAML error spans lines: still one line
    result = run_cli("get", kubeconfig=broken, namespace=namespace)
    assert_one_line_error(result, "error: cannot load kubeconfig: ")


def test_unreachable_api_server_is_a_one_line_error(
    kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    config = yaml.safe_load(kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    dead = tmp_path / "dead.kubeconfig"
    dead.write_text(yaml.safe_dump(config))
    for command in (["get"], ["describe", "x"]):
        result = run_cli(*command, kubeconfig=dead, namespace=namespace)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith("error: "), result.stderr
        assert result.stderr.count("\n") == 1, result.stderr


def test_namespace_defaults_to_the_kubeconfig_context(
    batches: Batches, kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    batches.create(simple_batch("here"))
    config = yaml.safe_load(kubeconfig.read_text())
    config["contexts"][0]["context"]["namespace"] = namespace
    scoped = tmp_path / "scoped.kubeconfig"
    scoped.write_text(yaml.safe_dump(config))
    result = run_cli("get", kubeconfig=scoped, namespace=None)
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()[1:]] == ["here"]


# ---------------------------------------------------------------- kubectl plugin


def test_kubectl_discovers_the_plugin_and_runs_our_cli(
    batches: Batches, kubeconfig: Path, namespace: str
) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not on PATH")
    assert (BIN / "kubectl-resumable").exists()
    batches.create(simple_batch("plugged"))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [kubectl, "resumable", "get", "-n", namespace, "--kubeconfig", str(kubeconfig)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["NAME", "PROGRESS", "RESTARTS", "PHASE"]
    assert [r.split()[0] for r in rows] == ["plugged"]

    usage = subprocess.run(
        [kubectl, "resumable", "--help"], capture_output=True, text=True, timeout=60, env=env
    )
    assert usage.returncode == 0
    assert usage.stdout.startswith("usage: kubectl resumable")

    missing = subprocess.run(
        [
            kubectl,
            "resumable",
            "describe",
            "nope",
            "-n",
            namespace,
            "--kubeconfig",
            str(kubeconfig),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert missing.returncode == 1
    assert f'error: resumablebatch "nope" not found in namespace "{namespace}"' in missing.stderr
    assert "Traceback" not in missing.stderr
