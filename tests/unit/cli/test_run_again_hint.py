"""The suspend hint of `resumable run` names the command that finds the same state (issue 21).

Without the run's --state-dir, `resumable run FILE` starts a new batch at item 1 in
.resumable/<name>; the hint must repeat it, quoted for the shell.
"""

from __future__ import annotations

from resumable_cli.run import run_again_command


def test_hint_repeats_state_dir_quoted_for_the_shell() -> None:
    assert (
        run_again_command("my batch.yaml", "/tmp/run state")
        == "resumable run 'my batch.yaml' --state-dir '/tmp/run state'"
    )


def test_hint_without_state_dir_is_the_same_command() -> None:
    assert run_again_command("batch.yaml", None) == "resumable run batch.yaml"
