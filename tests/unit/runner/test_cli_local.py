"""The `resumable` command's local side as a real subprocess: demo, run, bad input, Ctrl-C, --help.

Everything here runs the installed console script (the one the README tells
people to use) with real worker subprocesses; no cluster.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from resumable.ranges import IndexSet
from scenarios import SCENARIOS, Scenario, manifest

BIN = Path(sys.executable).parent
RESUMABLE = BIN / "resumable"
ROOT = Path(__file__).resolve().parents[3]


#: No kubeconfig reachable: a local command must not need one.
NO_CLUSTER = {"KUBECONFIG": "/nonexistent/kubeconfig"}


def resumable(
    *args: str, cwd: Path, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RESUMABLE), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def write_manifest(path: Path, body: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def read_status(state: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads((state / "status.json").read_text())
    except (OSError, ValueError):
        return {}
    return data


def items_done(status: dict[str, Any]) -> int:
    cp = status.get("checkpoint") or {}
    return len(IndexSet.parse(cp.get("completed", "")))


def output_indices(state: Path) -> list[int]:
    return sorted(json.loads(p.read_text())["index"] for p in (state / "outputs").glob("*.json"))


# ----------------------------------------------------------------------- demo


def test_demo_crashes_after_item_20_resumes_at_21_and_reports_what_resuming_saved(
    tmp_path: Path,
) -> None:
    # As the README runs it (no --state-dir); TMPDIR keeps its temporary state dir in tmp_path.
    result = resumable("demo", "--delay", "0.01", cwd=tmp_path, env={"TMPDIR": str(tmp_path)})
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Traceback" not in out + result.stderr
    assert "item 20 committed; injecting a crash" in out
    assert "Attempt 1 ended with exit 137" in out
    assert "Resumed at item 21/50 after exit 137 (attempt 2)" in out
    assert "attempt 2: resuming at item 21/50" in out  # the worker itself says so
    assert "Succeeded: 50/50 items, 0 skipped, 1 restart(s)" in out
    saved = re.search(r"^saved by resuming: (\d+) items not redone", out, re.MULTILINE)
    assert saved is not None
    assert saved.group(1) == "20"
    # In order: crash, then resume, then the final summary.
    assert (
        out.index("injecting a crash")
        < out.index("Resumed at item 21/50")
        < out.index("Succeeded: 50/50")
    )
    # Nothing leaked into the caller's directory, and the temporary state is gone.
    assert not (tmp_path / ".resumable").exists()
    assert "removed afterwards" in out
    assert not list(tmp_path.glob("resumable-demo-*"))


def test_demo_refuses_a_state_dir_it_did_not_make_and_deletes_nothing(tmp_path: Path) -> None:
    precious = tmp_path / "work"
    precious.mkdir()
    (precious / "thesis.txt").write_text("three years of it")
    result = resumable("demo", "--state-dir", str(precious), "--delay", "0", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: --state-dir {precious}: not empty and not made by `resumable demo`; "
        "the demo starts over by deleting its state dir, so give it a new or empty one"
    )
    assert [p.name for p in precious.iterdir()] == ["thesis.txt"]
    assert (precious / "thesis.txt").read_text() == "three years of it"


def test_demo_with_crash_after_the_last_item_runs_without_a_crash_as_it_says(
    tmp_path: Path,
) -> None:
    state = tmp_path / "demo"
    result = resumable(
        "demo", "--state-dir", str(state), "--items", "5", "--crash-after", "5", "--delay", "0",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no crash (--crash-after is not below --items)" in result.stdout
    assert "injecting a crash" not in result.stdout
    assert "Succeeded: 5/5 items, 0 skipped, 0 restart(s)" in result.stdout


def test_demo_run_again_in_its_own_state_dir_starts_over_and_keeps_it(tmp_path: Path) -> None:
    state = tmp_path / "demo-state"
    for _ in range(2):
        result = resumable(
            "demo", "--state-dir", str(state), "--items", "22", "--delay", "0", cwd=tmp_path
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Resumed at item 21/22 after exit 137 (attempt 2)" in result.stdout
        assert "kept afterwards" in result.stdout
    assert output_indices(state) == list(range(22))
    assert read_status(state)["checkpoint"]["itemsDone"] == 22


def processes_using(directory: Path) -> list[int]:
    """PIDs whose environment points RESUMABLE_DIR into ``directory`` (live workers)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if f"RESUMABLE_DIR={directory}".encode() in environ.read_bytes():
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


def test_demo_piped_into_head_stops_its_worker_and_ends_without_a_traceback(
    tmp_path: Path,
) -> None:
    # `| head` closes the pipe while the worker is mid-batch.
    result = subprocess.run(
        f"'{RESUMABLE}' demo --items 200 --delay 0.05 | head -n 2",
        shell=True,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert result.stdout.startswith("demo: summarising 200 documents")
    assert len(result.stdout.splitlines()) == 2
    assert "Traceback" not in result.stderr
    assert "Exception in thread" not in result.stderr
    assert processes_using(tmp_path) == []  # no orphaned worker
    assert not list(tmp_path.glob("resumable-demo-*"))


# ------------------------------------------------------------------------ run


def test_run_good_manifest_succeeds_and_leaves_every_output_once(tmp_path: Path) -> None:
    scenario = SCENARIOS[0]  # killed right after item 20, 50 items
    path = write_manifest(tmp_path / "batch.yaml", manifest(scenario, "summaries"))
    result = resumable("run", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Succeeded: 50/50 items, 0 skipped, 1 restart(s)" in result.stdout
    assert "Resumed at item 21/50 after exit 137 (attempt 2)" in result.stdout
    state = tmp_path / ".resumable" / "summaries"  # the default state directory
    assert output_indices(state) == list(range(50))
    status = read_status(state)
    assert status["phase"] == "Succeeded"
    assert status["checkpoint"]["finished"] is True
    assert status["checkpoint"]["nextIndex"] == 0  # cleared on completion


def test_status_local_reads_a_local_batch_and_names_what_is_missing_or_not_its_own(
    tmp_path: Path,
) -> None:
    path = write_manifest(tmp_path / "batch.yaml", manifest(SCENARIOS[0], "summaries"))
    assert resumable("run", str(path), "--quiet", cwd=tmp_path).returncode == 0
    shown = resumable("status", "summaries", "--local", "--watch", cwd=tmp_path, env=NO_CLUSTER)
    assert shown.returncode == 0, shown.stderr
    assert "50/50" in shown.stdout
    assert shown.stdout.splitlines()[-1] == "phase: Succeeded"

    for bad in ("0", "-1"):  # checked before anything is read
        refused = resumable("status", "summaries", "--local", "--watch", "--interval", bad,
                            cwd=tmp_path, env=NO_CLUSTER)  # fmt: skip
        assert refused.returncode == 1
        assert refused.stderr == f"error: --interval must be more than 0 seconds, got {bad}\n"

    missing = resumable("status", "other", "--local", cwd=tmp_path, env=NO_CLUSTER)
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: .resumable/other/status.json: no such file")
    state = str(tmp_path / ".resumable" / "summaries")
    foreign = resumable("status", "other", "--state-dir", state, cwd=tmp_path, env=NO_CLUSTER)
    assert foreign.returncode == 1
    assert "holds batch 'summaries', not 'other'" in foreign.stderr

    # Without --local, no cluster to ask: the error points to the local state instead.
    clustered = resumable("status", "summaries", cwd=tmp_path, env=NO_CLUSTER)
    assert clustered.returncode == 1
    assert clustered.stderr.startswith("error: cannot load kubeconfig")
    assert "`resumable status summaries --local` reads it" in clustered.stderr


def test_logs_local_shows_each_attempts_output_and_follows_the_run_to_its_end(
    tmp_path: Path,
) -> None:
    # Killed after item 20 of 50 (0.1 s items), then resumed: two attempts' logs.
    path = write_manifest(tmp_path / "b.yaml", manifest(SCENARIOS[0], "twice", delay=0.1))
    state = tmp_path / "st"
    runner = start_runner(path, state, tmp_path)
    first_log = state / "logs" / "twice-1.log"
    deadline = time.monotonic() + 30
    while not (first_log.exists() and first_log.read_text()):
        assert time.monotonic() < deadline, "attempt 1 wrote nothing in 30 s"
        time.sleep(0.05)
    follow = subprocess.run(
        [str(RESUMABLE), "logs", "twice", "--state-dir", str(state), "-f", "--interval", "0.2"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, env={**os.environ, **NO_CLUSTER},
    )  # fmt: skip
    ran = finish(runner, timeout=60)
    assert runner.returncode == 0, ran
    assert follow.returncode == 0, follow.stderr
    # From attempt 1, on into attempt 2, to the end of the batch.
    assert "item 20 committed; injecting a crash (kill)" in follow.stdout
    assert follow.stderr.splitlines() == ["--- twice: next attempt (2) ---"]
    assert follow.stdout.rstrip().endswith("attempt 2")  # the worker's last line
    assert "attempt 2: resuming at item 21/50" in follow.stdout

    local = ("--state-dir", str(state))
    latest = resumable("logs", "twice", *local, cwd=tmp_path, env=NO_CLUSTER)
    assert latest.stdout == (state / "logs" / "twice-2.log").read_text()
    first = resumable("logs", "twice", *local, "--attempt", "1", "--tail", "1", cwd=tmp_path)
    assert first.stdout == "item 20 committed; injecting a crash (kill)\n"
    missing = resumable("logs", "twice", *local, "--attempt", "7", cwd=tmp_path)
    assert missing.returncode == 1
    assert missing.stderr == "error: attempt 7 of twice has no log here (attempts: 1, 2)\n"


def test_run_failed_batch_exits_non_zero(tmp_path: Path) -> None:
    scenario = next(s for s in SCENARIOS if s.id == "never-retry-exit-code")
    path = write_manifest(tmp_path / "batch.yaml", manifest(scenario, "doomed"))
    result = resumable(
        "run", str(path), "--state-dir", str(tmp_path / "st"), "--quiet", cwd=tmp_path
    )
    assert result.returncode == 1
    assert "Failed:" in result.stdout
    assert "NeverRetryExitCode" in result.stdout
    # `status` exits as `run` did: 1 for a failed batch, watching or not.
    for watch in ([], ["--watch"]):
        status = resumable("status", "doomed", "--state-dir", str(tmp_path / "st"), *watch,
                           cwd=tmp_path, env=NO_CLUSTER)  # fmt: skip
        assert status.returncode == 1, status.stdout + status.stderr
        assert status.stdout.splitlines()[-1] == "phase: Failed"


GOOD = manifest(
    Scenario(id="ok", items=5, fault={}, retry={}, phase="Succeeded", restarts=0), "bad"
)


def broken(edit: Any) -> dict[str, Any]:
    body = json.loads(json.dumps(GOOD))
    edit(body)
    return body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (broken(lambda b: b["spec"]["retry"].update(maxRestarts=-1)), "spec.retry.maxRestarts"),
        (broken(lambda b: b["spec"]["retry"].update(maxRestart=3)), "spec.retry.maxRestart"),
        (broken(lambda b: b["spec"].update(totalItems="many")), "spec.totalItems"),
        (
            broken(lambda b: b["spec"]["template"]["spec"].update(containers=[])),
            "spec.template.spec.containers",
        ),
        (
            broken(
                lambda b: b["spec"]["retry"].update(backoff={"initialSeconds": 10, "maxSeconds": 1})
            ),
            "spec.retry.backoff",
        ),
        (
            broken(lambda b: b["spec"]["template"]["spec"]["containers"][0].pop("command")),
            "spec.template.spec.containers[0].command",
        ),
    ],
    ids=[
        "negative-maxRestarts",
        "unknown-field",
        "wrong-type",
        "no-containers",
        "backoff-rule",
        "no-command",
    ],
)
def test_invalid_manifest_is_refused_before_anything_runs(
    tmp_path: Path, body: dict[str, Any], field: str
) -> None:
    path = write_manifest(tmp_path / "bad.yaml", body)
    result = resumable("run", "bad.yaml", cwd=tmp_path)
    assert result.returncode != 0
    assert result.stdout == ""  # nothing started
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {path.name}: ")
    assert f"{field}:" in lines[0] or f"{field}." in lines[0], lines[0]
    assert not (tmp_path / ".resumable").exists()  # no state dir created


def test_invalid_yaml_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("spec: [\n  totalItems: 3\n")
    result = resumable("run", "bad.yaml", cwd=tmp_path)
    assert result.returncode != 0
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: bad.yaml: not valid YAML")
    assert not (tmp_path / ".resumable").exists()


def test_missing_manifest_is_a_one_line_error(tmp_path: Path) -> None:
    result = resumable("run", "nope.yaml", cwd=tmp_path)
    assert result.returncode != 0
    assert result.stderr.strip() == "error: nope.yaml: cannot read: No such file or directory"


def test_corrupt_state_is_a_one_line_error_not_a_restart_from_zero(tmp_path: Path) -> None:
    path = write_manifest(tmp_path / "batch.yaml", GOOD)
    state = tmp_path / "st"
    state.mkdir()
    (state / "status.json").write_text("{not json")
    result = resumable("run", str(path), "--state-dir", str(state), cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")
    assert "status.json" in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert (state / "status.json").read_text() == "{not json"  # left for the user to inspect


# --------------------------------------------------------------------- Ctrl-C


def test_ctrl_c_suspends_cleanly_and_running_again_resumes_without_losing_or_redoing(
    tmp_path: Path,
) -> None:
    items = 200
    long = Scenario(
        id="long", items=items, fault={}, retry={"maxRestarts": 3}, phase="Succeeded", restarts=0
    )
    path = write_manifest(tmp_path / "long.yaml", manifest(long, "long", delay=0.02))
    state = tmp_path / "state"
    cmd = [str(RESUMABLE), "run", str(path), "--state-dir", str(state)]

    # Its own process group, like a shell job: Ctrl-C goes to the group, i.e. to the runner;
    # the workers run in their own sessions, so only the runner's suspend reaches them.
    first = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while items_done(read_status(state)) < 20:
            assert first.poll() is None, first.communicate()[0]
            assert time.monotonic() < deadline, "no progress in 60s"
            time.sleep(0.05)
        seen_before = items_done(read_status(state))
        os.killpg(first.pid, signal.SIGINT)
        out, _ = first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    assert first.returncode == 130, out
    assert "interrupted: suspending" in out
    # The hint repeats --state-dir: without it, a run starts over at item 1 in .resumable/.
    assert f"suspended; run `resumable run {path} --state-dir {state}` again to resume" in out
    assert "Traceback" not in out
    suspended = read_status(state)
    assert suspended["phase"] == "Suspended"
    assert {c["type"]: c["status"] for c in suspended["conditions"]}["Suspended"] == "True"
    saved = items_done(suspended)
    assert seen_before <= saved < items, (seen_before, saved)  # the worker flushed on SIGTERM
    assert suspended["checkpoint"]["nextIndex"] == saved
    # `status` exits as `run` did: 130 for a suspended batch, watching or not.
    for watch in ([], ["--watch"]):
        status = resumable("status", "long", "--state-dir", str(state), *watch, cwd=tmp_path)
        assert status.returncode == 130, status.stdout + status.stderr
        assert status.stdout.splitlines()[-1] == "phase: Suspended"

    second = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"Succeeded: {items}/{items} items" in second.stdout
    resumed = re.search(
        r"attempt 2: resuming at item (\d+)/200", (state / "logs" / "long-2.log").read_text()
    )
    assert resumed is not None
    position = int(resumed.group(1)) - 1
    assert position >= seen_before  # nothing done before Ctrl-C was done again...
    assert position == saved  # ...and it went on exactly where the suspended worker saved
    assert "after suspend (attempt 2)" in second.stdout

    final = read_status(state)
    assert final["restarts"] == 0  # a suspend is not a failure
    assert output_indices(state) == list(range(items))  # nothing lost, each once
    outputs = [json.loads(p.read_text()) for p in (state / "outputs").glob("*.json")]
    # Usage is counted once per item: no item was committed twice.
    assert final["checkpoint"]["tokens"] == sum(o["output"]["tokens"] for o in outputs)
    assert final["checkpoint"]["context"]["redone"] <= 1  # at most the in-flight item


def start_runner(path: Path, state: Path, cwd: Path) -> subprocess.Popen[str]:
    """`resumable run` in its own process group, as a shell job."""
    return subprocess.Popen(
        [str(RESUMABLE), "run", str(path), "--state-dir", str(state)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def wait_for_items(runner: subprocess.Popen[str], state: Path, count: int) -> int:
    deadline = time.monotonic() + 60
    while items_done(read_status(state)) < count:
        assert runner.poll() is None, runner.communicate()[0]
        assert time.monotonic() < deadline, f"fewer than {count} items in 60s"
        time.sleep(0.05)
    return items_done(read_status(state))


def finish(runner: subprocess.Popen[str], timeout: float = 30) -> str:
    try:
        out, _ = runner.communicate(timeout=timeout)
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
    return out


LONG = Scenario(id="long", items=200, fault={}, retry={}, phase="Succeeded", restarts=0)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_kill_or_a_closed_terminal_suspends_like_ctrl_c_and_leaves_no_worker_running(
    tmp_path: Path, sig: signal.Signals
) -> None:
    path = write_manifest(tmp_path / "long.yaml", manifest(LONG, "long", delay=0.02))
    state = tmp_path / "state"
    runner = start_runner(path, state, tmp_path)
    wait_for_items(runner, state, 10)
    os.kill(runner.pid, sig)  # the runner alone, as `kill PID` or a hangup does
    out = finish(runner)
    assert runner.returncode == 130, out
    assert "interrupted: suspending" in out
    suspended = read_status(state)
    assert suspended["phase"] == "Suspended"
    saved = items_done(suspended)
    time.sleep(1.0)  # an orphaned worker (0.02 s items) would go on saving
    assert items_done(read_status(state)) == saved
    assert saved < 200


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_killed_runner_takes_its_worker_down_status_says_so_and_a_new_run_loses_nothing(
    tmp_path: Path,
) -> None:
    # A worker that prints nothing: no broken pipe would ever stop it.
    body = manifest(LONG, "long", delay=0.02)
    body["spec"]["template"]["spec"]["containers"][0]["command"].append("--quiet")
    path = write_manifest(tmp_path / "long.yaml", body)
    state = tmp_path / "state"
    runner = start_runner(path, state, tmp_path)
    wait_for_items(runner, state, 10)
    workers = processes_using(state)
    assert len(workers) == 1, workers
    os.kill(runner.pid, signal.SIGKILL)  # no suspend: only the kernel can tell the worker
    finish(runner)
    deadline = time.monotonic() + 20
    while processes_using(state):
        assert time.monotonic() < deadline, "the worker outlived its runner"
        time.sleep(0.05)
    saved = read_status(state)["checkpoint"]
    assert saved["nextIndex"] == saved["itemsDone"] < 200  # it saved on the way out
    assert not saved.get("lastError")  # stopped by a signal: no item blamed (a broken pipe)
    # The runner's pid, left in its lock file, is given to another live process:
    # only the lock tells whether a runner is there.
    (state / "runner.lock").write_text(f"{os.getpid()}\n")
    watched = resumable(
        "status", "long", "--state-dir", str(state), "--watch", cwd=tmp_path, timeout=20
    )  # returns at once: nothing will move this batch until it is run again
    assert watched.returncode == 130  # stopped before its end, like a suspended one
    assert watched.stdout.splitlines()[-2:] == [
        "phase: Running",
        "no `resumable run` is working on it: run it again to resume",
    ]

    again = subprocess.run(
        [str(RESUMABLE), "run", str(path), "--state-dir", str(state)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"Resumed at item {saved['nextIndex'] + 1}/200" in again.stdout
    assert output_indices(state) == list(range(200))
    assert read_status(state)["checkpoint"]["context"]["redone"] <= 1


def test_a_second_ctrl_c_stops_a_worker_that_does_not_stop_on_sigterm(tmp_path: Path) -> None:
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('working', flush=True); time.sleep(120)"
    )
    body = manifest(LONG, "stubborn")
    pod = body["spec"]["template"]["spec"]
    pod["terminationGracePeriodSeconds"] = 60
    pod["containers"][0]["command"] = [sys.executable, "-c", stubborn]
    path = write_manifest(tmp_path / "stubborn.yaml", body)
    runner = start_runner(path, tmp_path / "state", tmp_path)
    log = tmp_path / "state" / "logs" / "stubborn-1.log"
    deadline = time.monotonic() + 30
    while not (log.exists() and "working" in log.read_text()):
        assert time.monotonic() < deadline, "the worker did not start"
        time.sleep(0.05)
    os.killpg(runner.pid, signal.SIGINT)
    time.sleep(0.5)
    assert runner.poll() is None  # still waiting for the worker's grace period...
    started = time.monotonic()
    os.killpg(runner.pid, signal.SIGINT)  # ...until asked again
    out = finish(runner)
    assert time.monotonic() - started < 10, out
    assert "up to 60s, Ctrl-C again to stop it now" in out
    assert "interrupted again: stopping the worker now" in out
    assert runner.returncode == 130, out


def test_a_second_run_on_the_same_state_dir_is_refused_and_the_first_goes_on(
    tmp_path: Path,
) -> None:
    path = write_manifest(tmp_path / "long.yaml", manifest(LONG, "long", delay=0.03))
    state = tmp_path / "state"
    first = start_runner(path, state, tmp_path)
    try:
        wait_for_items(first, state, 5)
        second = resumable("run", str(path), "--state-dir", str(state), cwd=tmp_path)
        assert second.returncode == 1
        assert second.stdout.count("\n") <= 1  # at most the "running ..." line
        assert second.stderr == (
            f"error: state directory {state} is in use by another `resumable run` "
            f"(pid {first.pid}); wait for it to end or stop it (Ctrl-C) first\n"
        )
    finally:
        out = finish(first, timeout=120)
    assert first.returncode == 0, out
    final = read_status(state)
    assert final["restarts"] == 0  # never disturbed
    assert final["disruptions"] == 0
    assert output_indices(state) == list(range(200))


def test_a_missing_command_is_a_one_line_error_and_nothing_is_started(tmp_path: Path) -> None:
    body = broken(
        lambda b: b["spec"]["template"]["spec"]["containers"][0].update(
            command=["no-such-binary-xyz", "--foo"]
        )
    )
    write_manifest(tmp_path / "nocmd.yaml", body)
    result = resumable("run", "nocmd.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == (
        "error: nocmd.yaml: spec.template.spec.containers[0].command: "
        "'no-such-binary-xyz': command not found\n"
    )
    assert not (tmp_path / ".resumable").exists()


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("../escaped", "must be lowercase letters, digits, '-' and '.'"),
        ("/tmp/abs", "must be lowercase letters, digits, '-' and '.'"),
        ("Bad_Name", "must be lowercase letters, digits, '-' and '.'"),
        ("a" * 64, "64 characters, over 63"),
    ],
    ids=["parent-dir", "absolute", "uppercase", "too-long"],
)
def test_a_batch_name_the_api_server_would_refuse_is_refused_before_anything_runs(
    tmp_path: Path, name: str, problem: str
) -> None:
    body = broken(lambda b: b["metadata"].update(name=name))
    write_manifest(tmp_path / "named.yaml", body)
    result = resumable("run", "named.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("error: named.yaml: metadata.name: "), result.stderr
    assert problem in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["named.yaml"]  # nothing written


def test_the_cluster_example_runs_locally_with_its_volume_under_the_state_dir(
    tmp_path: Path,
) -> None:
    example = yaml.safe_load_all((ROOT / "examples" / "summarizer-batch.yaml").read_text())
    body = next(d for d in example if d.get("kind") == "ResumableBatch")
    container = body["spec"]["template"]["spec"]["containers"][0]
    for var in container["env"]:
        if var["name"] == "SUMMARIZER_DELAY":
            var["value"] = "0.005"  # the example as shipped, only faster
    body["spec"]["retry"]["backoff"] = {"initialSeconds": 0, "maxSeconds": 0, "factor": 1}
    path = write_manifest(tmp_path / "cluster.yaml", body)
    state = tmp_path / "state"
    result = resumable("run", str(path), "--state-dir", str(state), "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "note: spec.template.spec.containers[0].volumeMounts (/data) are directories" in (
        result.stdout
    )
    assert "Succeeded: 50/50 items" in result.stdout
    outputs = state / "volumes" / "outputs" / "summarizer" / "outputs"
    assert sorted(json.loads(p.read_text())["index"] for p in outputs.glob("*.json")) == list(
        range(50)
    )


def local_scenario(
    tmp_path: Path, scenario_id: str, name: str
) -> tuple[dict[str, Any], Path, Path, tuple[str, ...]]:
    """A scenario's manifest written out: (body, its file, the state dir, `run` args)."""
    body = manifest(next(s for s in SCENARIOS if s.id == scenario_id), name)
    path = write_manifest(tmp_path / f"{name}.yaml", body)
    state = tmp_path / "state"
    return body, path, state, ("run", str(path), "--state-dir", str(state), "--quiet")


def test_a_failed_batch_says_how_to_go_on_and_a_raised_max_restarts_resumes_it(
    tmp_path: Path,
) -> None:
    body, path, state, args = local_scenario(tmp_path, "max-restarts-exhausted", "stuck")
    failed = resumable(*args, cwd=tmp_path)
    assert failed.returncode == 1
    assert "Failed: 4/30 items" in failed.stdout
    saved = read_status(state)["checkpoint"]

    again = resumable(*args, cwd=tmp_path)
    assert again.returncode == 1
    assert again.stdout.splitlines()[-1] == (
        f"nothing to do: stuck already failed (state in {state}); to go on from its "
        "checkpoint (item 5), raise spec.retry.maxRestarts above 2; to start over from "
        "item 1, change spec.runId"
    )

    # The cause fixed (no more poison item) and more restarts allowed: it goes on at item 5.
    container = body["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [e for e in container["env"] if e["name"] != "SUMMARIZER_POISON"]
    body["spec"]["retry"]["maxRestarts"] = 4
    write_manifest(path, body)
    resumed = resumable(*args, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "MaxRestartsRaised: spec.retry.maxRestarts raised to 4 (2 used)" in resumed.stdout
    assert "Succeeded: 30/30 items" in resumed.stdout
    final = read_status(state)
    # 2 before the raise, plus stuck-4 started by it; the rest of the budget was not needed.
    assert final["restarts"] == 3
    assert output_indices(state) == list(range(30))
    assert saved["completed"] == "0-3"
    # Items 1-4 were not done again: the new attempt started at item 5.
    assert "attempt 4: resuming at item 5/30" in (state / "logs" / "stuck-4.log").read_text()


def test_restarts_spent_on_a_skipped_poison_item_say_to_go_on_from_the_item_after_it(
    tmp_path: Path,
) -> None:
    # Item 5 kills every worker: attempt 1 dies there unexplained, attempt 2 (careful)
    # pins it, so it is skipped, in the same pass that spends the last restart. The
    # worker's saved position is still item 5; the batch goes on at item 6.
    poison = Scenario(
        id="poison-skipped-on-the-last-restart",
        items=12,
        fault={"SUMMARIZER_POISON": "5"},
        retry={"maxRestarts": 1, "maxItemAttempts": 1, "onPoisonItem": "Skip"},
        phase="Failed",
        restarts=1,
    )
    body = manifest(poison, "spent")
    path = write_manifest(tmp_path / "spent.yaml", body)
    state = tmp_path / "state"
    args = ("run", str(path), "--state-dir", str(state), "--quiet")
    failed = resumable(*args, cwd=tmp_path)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    status = read_status(state)
    assert [s["index"] for s in status["skipped"]] == [4]
    assert status["checkpoint"]["nextIndex"] == 4

    again = resumable(*args, cwd=tmp_path)
    assert again.returncode == 1
    assert again.stdout.splitlines()[-1] == (
        f"nothing to do: spent already failed (state in {state}); to go on from its "
        "checkpoint (item 6), raise spec.retry.maxRestarts above 1; to start over from "
        "item 1, change spec.runId"
    )

    body["spec"]["retry"]["maxRestarts"] = 2
    write_manifest(path, body)
    resumed = resumable(*args, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "going on from item 6" in resumed.stdout
    assert output_indices(state) == [i for i in range(12) if i != 4]


def test_a_state_dir_holding_another_batch_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "st"
    first = write_manifest(tmp_path / "first.yaml", GOOD)
    assert resumable("run", str(first), "--state-dir", str(state), cwd=tmp_path).returncode == 0
    other = write_manifest(
        tmp_path / "other.yaml", broken(lambda b: b["metadata"].update(name="other"))
    )
    result = resumable("run", str(other), "--state-dir", str(state), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == (
        f"error: state directory {state} holds batch 'bad', not 'other': "
        "give this batch its own --state-dir\n"
    )


def test_a_never_retry_failure_says_to_fix_the_spec_and_an_edited_manifest_goes_on(
    tmp_path: Path,
) -> None:
    body, path, state, args = local_scenario(tmp_path, "never-retry-exit-code", "doomed")
    assert resumable(*args, cwd=tmp_path).returncode == 1
    again = resumable(*args, cwd=tmp_path)
    last = again.stdout.splitlines()[-1]
    assert last.startswith("nothing to do: doomed already failed (NeverRetryExitCode: "), last
    assert "to go on from its checkpoint (item 6), fix the cause in the manifest's spec" in last
    assert last.endswith("to start over from item 1, change spec.runId")
    assert "maxRestarts" not in last

    # The cause fixed in the manifest (exit 3 is retried now): the run goes on from
    # item 6, as the operator does after a spec edit.
    body["spec"]["retry"]["neverRetryExitCodes"] = []
    write_manifest(path, body)
    fixed = resumable(*args, cwd=tmp_path)
    assert "Resumed at item 6/30 after exit 3" in fixed.stdout, fixed.stdout
    assert read_status(state)["checkpoint"]["itemsDone"] > 5


def test_a_finished_batch_run_again_says_how_to_rerun_it(tmp_path: Path) -> None:
    path = write_manifest(tmp_path / "batch.yaml", GOOD)
    state = tmp_path / "st"
    assert resumable("run", str(path), "--state-dir", str(state), cwd=tmp_path).returncode == 0
    again = resumable("run", str(path), "--state-dir", str(state), cwd=tmp_path)
    assert again.returncode == 0
    assert again.stdout.splitlines()[-1] == (
        f"nothing to do: bad already succeeded (state in {state}); to run it again from "
        "item 1, change spec.runId in the manifest"
    )


# ----------------------------------------------------------------------- help

SUBCOMMANDS = ["run", "demo", "get", "describe", "logs", "suspend", "resume", "rerun", "status"]


def test_help_lists_every_subcommand(tmp_path: Path) -> None:
    result = resumable("--help", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("usage: resumable")
    for sub in SUBCOMMANDS:
        assert re.search(rf"^\s+{sub}\s", result.stdout, re.MULTILINE), sub


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_subcommand_help_works(tmp_path: Path, sub: str) -> None:
    result = resumable(sub, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: resumable {sub}")
    if sub not in ("run", "demo"):
        assert "--kubeconfig" in result.stdout
        assert "--namespace" in result.stdout


def test_status_help_says_when_the_watch_ends_and_what_the_exit_codes_mean(
    tmp_path: Path,
) -> None:
    result = resumable("status", "--help", cwd=tmp_path, env={"COLUMNS": "1000"})
    assert result.returncode == 0, result.stderr
    assert "keep watching until the batch succeeds, fails or is suspended" in result.stdout
    assert (
        "Exit status: 0 succeeded, or (without --watch) not ended yet; 1 failed, or an "
        "error; 130 suspended, or (--local) no `resumable run` is working on it any more, "
        "or --watch interrupted with Ctrl-C."
    ) in result.stdout


@pytest.mark.parametrize("argv", [["--help"], ["status", "--help"], ["bogus"]])
def test_help_and_usage_errors_import_no_command_and_neither_pydantic_nor_kubernetes(
    tmp_path: Path, argv: list[str]
) -> None:
    # A command's module is imported only when it runs, so --help stays fast.
    code = (
        "import sys\n"
        "from resumable_cli import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('pydantic', 'kubernetes', 'resumable', 'resumable_core', 'resumable_runner')\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "commands = sorted(m for m in sys.modules if m.startswith('resumable_cli.'))\n"
        "print(loaded, commands, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stderr.splitlines()[-1] == "[] ['resumable_cli.app', 'resumable_cli.errors']"


def test_no_subcommand_is_a_usage_error(tmp_path: Path) -> None:
    result = resumable(cwd=tmp_path)
    assert result.returncode == 2
    assert "usage: resumable" in result.stderr


def test_cluster_commands_without_the_kubernetes_client_say_what_to_install(
    tmp_path: Path,
) -> None:
    code = (
        "import sys; sys.modules['kubernetes'] = None; "
        "from resumable_cli import main; sys.exit(main(sys.argv[1:]))"
    )
    for command in (["get"], ["describe", "x"], ["status", "x"]):
        done = subprocess.run(
            [sys.executable, "-c", code, *command],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1, command
        assert done.stderr == (
            "error: cluster commands need the kubernetes client: "
            "pip install 'resumable-batch[operator]'\n"
        ), command
