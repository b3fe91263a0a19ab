"""Leaving the loop early saves what is done and leaves the run usable."""

from __future__ import annotations

from pathlib import Path

from runkit import MakeRun, read_status


def test_break_saves_progress_and_a_second_loop_is_still_flushed_at_close(
    make_run: MakeRun, store_dir: Path
) -> None:
    run = make_run()
    for item in run.items(range(10)):
        with item:
            pass
        if item.index == 3:
            break
    assert read_status(store_dir)["checkpoint"]["completed"] == "0-3"
    for item in run.items(range(10)):
        with item:
            pass
        if item.index == 6:
            break
    # The second loop's break saved items 4-6 too; nothing waits for an exit hook.
    assert read_status(store_dir)["checkpoint"]["completed"] == "0-6"
    assert read_status(store_dir)["checkpoint"]["nextIndex"] == 7
