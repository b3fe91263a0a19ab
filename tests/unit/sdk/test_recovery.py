"""The article's recovery test: kill a real worker right after item 20 of 50, restart, resume at 21.

The worker is the example summariser (``python -m resumable.examples.summarizer``)
in its own process; the crash is a real SIGKILL, so nothing in the worker gets a
chance to flush: whatever survives is what the SDK wrote before the kill.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from workers import SDK

from resumable.examples.summarizer import PRICE_PER_TOKEN_USD, fake_llm, make_documents

pytestmark = pytest.mark.timeout(120)

ITEMS = 50


def summarizer(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the example worker on ``store`` to its end (or its death)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESUMABLE_", "SUMMARIZER_"))}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    env.pop("KUBECONFIG", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SDK), env.get("PYTHONPATH", "")]))
    env["RESUMABLE_DIR"] = str(store)
    command = [sys.executable, "-m", "resumable.examples.summarizer", "--items", str(ITEMS)]
    return subprocess.run(
        [*command, "--delay", "0.002", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def outputs(store: Path) -> dict[int, dict[str, object]]:
    """Every stored output by item index; fails on two files for one index."""
    found: dict[int, dict[str, object]] = {}
    for path in sorted((store / "outputs").glob("*.json")):
        record = json.loads(path.read_text())
        assert record["index"] not in found, f"two outputs for item {record['index']}"
        found[record["index"]] = record
    return found


def file_identity(store: Path, index: int) -> tuple[int, int]:
    """Inode and mtime of an output file: both change when a redo rewrites it."""
    st = os.stat(store / "outputs" / f"{index:08d}.json")
    return st.st_ino, st.st_mtime_ns


def test_killed_after_item_20_the_worker_resumes_at_21_with_every_output_exactly_once(
    tmp_path: Path,
) -> None:
    store = tmp_path / "state"
    crashed = summarizer(store, "--crash-after", "20", "--crash-mode", "kill")
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr
    assert "item 20 committed; injecting a crash (kill)" in crashed.stdout
    first = outputs(store)
    assert sorted(first) == list(range(20))
    written = {i: file_identity(store, i) for i in first}
    saved = json.loads((store / "status.json").read_text())["checkpoint"]
    assert (saved["nextIndex"], saved["completed"]) == (20, "0-19")

    resumed = summarizer(store)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "attempt 2: resuming at item 21/50" in resumed.stdout
    assert f"done: {ITEMS}/{ITEMS} items" in resumed.stdout

    final = outputs(store)
    assert sorted(final) == list(range(ITEMS))
    assert len(list((store / "outputs").glob("*.json"))) == ITEMS
    # Items 1-20 were not redone: their files are the ones the first process wrote.
    assert {i: file_identity(store, i) for i in first} == written
    documents = make_documents(ITEMS)
    total_tokens = 0
    for index, record in final.items():
        summary, tokens = fake_llm(documents[index]["text"], delay=0)
        total_tokens += tokens
        assert record["output"] == {
            "id": documents[index]["id"],
            "summary": summary,
            "tokens": tokens,
        }
        assert record["key"] == f"local/default/{index}"

    checkpoint = json.loads((store / "status.json").read_text())["checkpoint"]
    assert (checkpoint["finished"], checkpoint["nextIndex"], checkpoint["completed"]) == (
        True,
        0,
        "",
    )
    assert (checkpoint["itemsDone"], checkpoint["attempt"]) == (ITEMS, 2)
    assert checkpoint["tokens"] == total_tokens
    assert checkpoint["costUsd"] == pytest.approx(total_tokens * PRICE_PER_TOKEN_USD, abs=1e-5)


def test_a_timeout_after_item_20_also_resumes_at_21(tmp_path: Path) -> None:
    store = tmp_path / "state"
    crashed = summarizer(store, "--crash-after", "20")
    assert crashed.returncode == 1
    assert "SimulatedTimeoutError: model API timed out after item 20" in crashed.stderr
    resumed = summarizer(store)
    assert "resuming at item 21/50" in resumed.stdout
    assert sorted(outputs(store)) == list(range(ITEMS))


def test_a_clean_rerun_after_the_batch_finished_starts_again_at_item_1(tmp_path: Path) -> None:
    store = tmp_path / "state"
    assert summarizer(store).returncode == 0
    again = summarizer(store)
    assert "attempt 2: starting at item 1/50" in again.stdout
    assert again.returncode == 0
