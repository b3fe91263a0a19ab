"""Leaving the loop early saves what is done and leaves the run usable, or says in one line
why it could not save."""

from __future__ import annotations

import subprocess
import sys
import textwrap
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


def test_a_loop_left_by_break_that_cannot_save_says_so_in_one_line(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        from resumable import CheckpointPolicy, LocalStore, Run, Settings
        from resumable.errors import StoreUnavailableError

        class Down(LocalStore):
            def save_checkpoint(self, checkpoint, **kwargs):
                raise StoreUnavailableError("resumablebatch ns/b: 503: unavailable")

        store = Down(sys.argv[1])
        settings = Settings(
            batch_name="b", directory=store.root, handle_signals=False,
            policy=CheckpointPolicy(every_seconds=3600),
        )
        run = Run(settings, store, store.outputs, store.steps)
        for item in run.items(range(5)):
            with item:
                pass
            if item.index == 2:
                break  # leaves pending progress for the exit hooks
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "store")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stderr == (
        "resumable: progress not saved as the loop ended: StoreUnavailableError: "
        "resumablebatch ns/b: 503: unavailable\n"
    )
