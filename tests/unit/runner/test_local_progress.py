"""`resumable run`'s bar and `resumable status --local` show the worker's progress as it is.

The bar used to read only the checkpoint, so it lagged the worker by up to a
checkpoint interval and, piped, its last line could say "180/200 eta 1s" after
the last item; `status --local` always said 0.0 items/s; a finished run left its
outputs/.inflight marker behind. A real `resumable run` of a real worker whose
checkpoint policy writes only at the end (everySeconds 3600), so every count
shown before the end comes from the worker's live count, not from a checkpoint.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml
from waiting import wait_for

from resumable import LocalStore

RESUMABLE = Path(sys.executable).parent / "resumable"
ITEMS = 20

WORKER = f"""\
import time, resumable
run = resumable.start()
for item in run.items(range({ITEMS})):
    with item:
        time.sleep(0.3)
"""

#: A bar line: "[#####---] 8/20 (saved 0)   3.3 items/s eta 3s restarts 0 $0.0000".
BAR = re.compile(r"^\[[#-]+\] (\d+)/(\d+)(?: \(saved (\d+)\))? +([\d.?]+) items/s")


def setup(tmp_path: Path) -> None:
    (tmp_path / "worker.py").write_text(WORKER)
    manifest = {
        "apiVersion": "resumable.dev/v1alpha1",
        "kind": "ResumableBatch",
        "metadata": {"name": "slow"},
        "spec": {
            "checkpoint": {"everySeconds": 3600, "everyItems": 1000},
            "template": {
                "spec": {"containers": [{"name": "w", "command": ["python", "worker.py"]}]}
            },
        },
    }
    (tmp_path / "batch.yaml").write_text(yaml.safe_dump(manifest))


def bar_lines(text: str) -> list[tuple[int, int, int | None, str]]:
    found = []
    for line in text.splitlines():
        match = BAR.match(line)
        if match:
            done, total, saved, rate = match.groups()
            found.append((int(done), int(total), int(saved) if saved else None, rate))
    return found


def status(tmp_path: Path) -> str:
    result = subprocess.run(
        [str(RESUMABLE), "status", "slow", "--state-dir", "state"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return result.stdout


def test_piped_bar_follows_the_worker_between_checkpoints_and_ends_on_the_final_count(
    tmp_path: Path,
) -> None:
    setup(tmp_path)
    runner = subprocess.Popen(
        [str(RESUMABLE), "run", "batch.yaml", "--state-dir", "state"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    store = LocalStore(tmp_path / "state")
    # While it runs: `status --local` shows the live count and its rate, not 0 and 0.0.
    wait_for(
        lambda: (store.read_live_progress() or {}).get("done", 0) >= 5,
        what="the worker's live count at 5",
        timeout=60,
    )
    assert (tmp_path / "state" / "outputs" / ".inflight").exists()
    (done, total, saved, rate), *_ = bar_lines(status(tmp_path))
    assert done >= 5
    assert saved == 0  # nothing checkpointed yet: the count is the worker's own
    assert total == ITEMS
    assert 0.5 < float(rate) < 20  # ~3.3 items/s
    output, _ = runner.communicate(timeout=60)
    assert runner.returncode == 0, output
    lines = bar_lines(output)
    assert any(d > 0 and s == 0 for d, _, s, _ in lines), output  # a mid-run line, live
    *_, last = [line for line in output.splitlines() if BAR.match(line)]
    assert last.startswith(f"[{'#' * 24}] {ITEMS}/{ITEMS} "), output
    assert "eta" not in last, output
    assert "saved" not in last, output
    # After success: no in-flight marker or live count left behind.
    assert not (tmp_path / "state" / "outputs" / ".inflight").exists()
    assert store.read_live_progress() is None


def test_status_local_of_a_finished_run_shows_its_rate_not_zero(tmp_path: Path) -> None:
    setup(tmp_path)
    subprocess.run(
        [str(RESUMABLE), "run", "batch.yaml", "--state-dir", "state", "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
        check=True,
    )
    (done, total, saved, rate), *_ = bar_lines(status(tmp_path))
    assert (done, total, saved) == (ITEMS, ITEMS, None)
    assert 0.5 < float(rate) < 20  # from the checkpoint: when the attempt began, what it did
