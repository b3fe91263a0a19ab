"""Starting and finishing: a missing store starts fresh; a finished run clears its position."""

from __future__ import annotations

from pathlib import Path

import pytest
from runkit import MakeRun, abandon, read_status


def process(make_run: MakeRun, values: list[int], **kwargs: object) -> list[int]:
    """Run one attempt to the end; return the indices it yielded."""
    run = make_run(**kwargs)
    seen = []
    for item in run.items(values):
        with item:
            item.output = item.value * 10
            item.add_usage(tokens=100, cost_usd=0.5)
        seen.append(item.index)
    return seen


def test_a_missing_store_directory_starts_fresh_at_item_zero(
    make_run: MakeRun, store_dir: Path
) -> None:
    assert not store_dir.exists()
    run = make_run()
    assert (run.attempt, run.resumed_from, run.next_index) == (1, 0, 0)
    assert read_status(store_dir)["checkpoint"]["attempt"] == 1  # the claim is on disk


def test_a_finished_run_clears_the_position_and_keeps_the_counts(
    make_run: MakeRun, store_dir: Path
) -> None:
    assert process(make_run, list(range(8))) == list(range(8))
    checkpoint = read_status(store_dir)["checkpoint"]
    assert checkpoint["finished"] is True
    assert (checkpoint["nextIndex"], checkpoint["completed"]) == (0, "")
    assert (checkpoint["itemsDone"], checkpoint["tokens"]) == (8, 800)
    assert checkpoint["costUsd"] == pytest.approx(4.0)
    assert read_status(store_dir)["progress"] == "8/8"


def test_the_next_clean_run_after_a_finished_one_starts_at_item_zero(
    make_run: MakeRun, store_dir: Path
) -> None:
    process(make_run, list(range(8)))
    run = make_run()
    assert (run.attempt, run.resumed_from) == (2, 0)
    assert [item.index for item in run.items(range(8))] == list(range(8))
    checkpoint = read_status(store_dir)["checkpoint"]
    assert (checkpoint["finished"], checkpoint["itemsDone"]) == (True, 8)


def test_a_rerun_after_a_finished_run_checkpoints_and_resumes_like_a_first_run(
    make_run: MakeRun, store_dir: Path
) -> None:
    process(make_run, list(range(8)))
    rerun = make_run()
    for item in rerun.items(range(8)):
        with item:
            item.add_usage(tokens=1, cost_usd=0.0)
        if item.index == 2:
            rerun.checkpoint()
            abandon(rerun)
            break
    checkpoint = read_status(store_dir)["checkpoint"]
    assert (checkpoint["finished"], checkpoint["nextIndex"], checkpoint["completed"]) == (
        False,
        3,
        "0-2",
    )
    assert (checkpoint["itemsDone"], checkpoint["tokens"]) == (3, 3)  # counts start afresh
    assert make_run().resumed_from == 3


def test_a_finished_run_accepts_a_different_item_list_next_time(make_run: MakeRun) -> None:
    process(make_run, list(range(8)))
    assert process(make_run, list(range(100, 103))) == [0, 1, 2]


def test_an_unfinished_run_resumes_after_the_last_saved_item(
    make_run: MakeRun, store_dir: Path
) -> None:
    run = make_run()
    for item in run.items(range(10)):
        with item:
            pass
        if item.index == 3:
            run.checkpoint()
            abandon(run)  # crash: nothing after the explicit checkpoint is saved
            break
    again = make_run()
    assert (again.attempt, again.resumed_from) == (2, 4)
    assert [item.index for item in again.items(range(10))] == list(range(4, 10))
    assert read_status(store_dir)["checkpoint"]["itemsDone"] == 10


def test_the_summary_reports_counts_usage_and_where_the_run_resumed(make_run: MakeRun) -> None:
    run = make_run()
    for item in run.items(range(6)):
        with item:
            item.add_usage(tokens=10, cost_usd=0.25)
        if item.index == 2:
            break
    again = make_run()
    for item in again.items(range(6)):
        with item:
            item.add_usage(tokens=10, cost_usd=0.25)
    summary = again.summary()
    assert (summary.total, summary.done, summary.failed, summary.skipped) == (6, 6, 0, 0)
    assert summary.tokens == 60
    assert summary.cost_usd == pytest.approx(1.5)
    assert (summary.attempt, summary.resumed_from, summary.finished) == (2, 3, True)
