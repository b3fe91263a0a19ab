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

from resumable._ranges import IndexSet
from scenarios import SCENARIOS, Scenario, manifest

pytestmark = pytest.mark.unit

BIN = Path(sys.executable).parent
RESUMABLE = BIN / "resumable"


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


def test_run_failed_batch_exits_non_zero(tmp_path: Path) -> None:
    scenario = next(s for s in SCENARIOS if s.id == "never-retry-exit-code")
    path = write_manifest(tmp_path / "batch.yaml", manifest(scenario, "doomed"))
    result = resumable(
        "run", str(path), "--state-dir", str(tmp_path / "st"), "--quiet", cwd=tmp_path
    )
    assert result.returncode == 1
    assert "Failed:" in result.stdout
    assert "NeverRetryExitCode" in result.stdout


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
    assert "suspended; run `resumable run" in out
    assert "Traceback" not in out
    suspended = read_status(state)
    assert suspended["phase"] == "Suspended"
    assert {c["type"]: c["status"] for c in suspended["conditions"]}["Suspended"] == "True"
    saved = items_done(suspended)
    assert seen_before <= saved < items, (seen_before, saved)  # the worker flushed on SIGTERM
    assert suspended["checkpoint"]["nextIndex"] == saved

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


def test_no_subcommand_is_a_usage_error(tmp_path: Path) -> None:
    result = resumable(cwd=tmp_path)
    assert result.returncode == 2
    assert "usage: resumable" in result.stderr
