"""The hints of `resumable run`: after a suspend, the command that finds the same state
(issue 21); for a recurring batch whose run had ended, when the next run starts.

Without the run's --state-dir, `resumable run FILE` starts a new batch at item 1 in
.resumable/<name>; the hint must repeat it, quoted for the shell.
"""

from __future__ import annotations

from datetime import UTC, datetime

from resumable.v1alpha1 import ResumableBatch, ResumableBatchStatus
from resumable_cli.run import next_run_hint, run_again_command
from resumable_runner.runner import RunResult


def test_hint_repeats_state_dir_quoted_for_the_shell() -> None:
    assert (
        run_again_command("my batch.yaml", "/tmp/run state")
        == "resumable run 'my batch.yaml' --state-dir '/tmp/run state'"
    )


def test_hint_without_state_dir_is_the_same_command() -> None:
    assert run_again_command("batch.yaml", None) == "resumable run batch.yaml"


def test_a_recurring_batch_that_had_ended_says_when_its_next_run_starts() -> None:
    batch = ResumableBatch.model_validate(
        {
            "metadata": {"name": "nightly"},
            "spec": {
                "template": {"spec": {"containers": [{"name": "worker"}]}},
                "window": {"schedule": "0 1 * * *", "duration": "5h", "recurrence": {}},
            },
        }
    )
    status = ResumableBatchStatus(run_id="20261204-0100")
    hint = next_run_hint(
        batch, RunResult("Succeeded", status), datetime(2026, 12, 4, 3, 0, tzinfo=UTC)
    )
    assert hint == (
        "nothing to do: run 20261204-0100 of nightly already succeeded; the next run starts "
        "when its window opens at 2026-12-05T01:00:00Z: run this again then"
    )
