"""``resumable run FILE.yaml``: a batch run on this machine by the local runner.

The runner (:mod:`resumable_runner`) does the work; this module shows it: a
progress bar with the worker's output and events above it, Ctrl-C (or SIGTERM,
SIGHUP) as a clean suspend, the summary, and, when the batch had ended already,
how to go on (:func:`ended_hint`, the local wording of
:func:`resumable_core.hints.resume_hint`). ``resumable demo`` runs through
:func:`run_local` too.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from resumable import constants as names
from resumable.errors import ResumableError
from resumable.v1alpha1 import ResumableBatch, ResumableBatchStatus
from resumable_cli import output
from resumable_cli.errors import CliError
from resumable_core import hints
from resumable_core.decision import EventPlan
from resumable_core.progress import progress_text
from resumable_core.times import format_time
from resumable_core.windows import next_opening
from resumable_runner.runner import (
    LocalRunError,
    LocalRunner,
    ManifestError,
    RunResult,
    check_runnable,
    load_manifest,
)


def run_local(
    batch: ResumableBatch,
    directory: Path,
    *,
    out: TextIO,
    show_worker_output: bool = True,
    extra_env: dict[str, str] | None = None,
) -> RunResult:
    """Run a batch locally with a progress bar; Ctrl-C suspends cleanly."""
    bar = output.ProgressBar(out, total=batch.spec.total_items)

    def on_event(plan: EventPlan) -> None:
        bar.line(f"{'!' if plan.type == 'Warning' else '*'} {plan.reason}: {plan.message}")

    def on_output(pod: str, line: str) -> None:
        if show_worker_output:
            bar.line(f"  [{pod}] {line}")

    def on_tick(status: ResumableBatchStatus) -> None:
        # The worker's count since its last checkpoint, so the bar does not lag it.
        bar.update(status, live=runner.store.read_live_progress())

    runner = LocalRunner(
        batch,
        directory,
        on_event=on_event,
        on_output=on_output,
        on_tick=on_tick,
        extra_env=extra_env,
    )

    interrupts = 0

    def on_signal(signum: int, frame: Any) -> None:
        # Ctrl-C, `kill`, a closed terminal: suspend, as `resumable suspend` does in a
        # cluster; a second one stops the worker at once (its last checkpoint stays).
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            grace = batch.spec.template.spec.termination_grace_period_seconds
            if grace is None:
                grace = 30  # the pod default, which the runner applies too
            message = (
                f"interrupted: suspending (the worker saves its checkpoint; up to {grace}s, "
                "Ctrl-C again to stop it now); run again to resume"
            )
            runner.request_suspend()
        else:
            message = "interrupted again: stopping the worker now; its last checkpoint is kept"
            runner.stop_now()
        with contextlib.suppress(OSError, ValueError):  # SIGHUP: the terminal may be gone
            bar.line(message)

    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {signum: signal.signal(signum, on_signal) for signum in handled}
    try:
        result = runner.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        bar.close()
    return result


def summary_lines(result: RunResult) -> list[str]:
    """The final summary of a local run."""
    st = result.status
    cp = st.checkpoint
    total = cp.total_items
    lines = [
        f"{result.phase}: {progress_text(cp.items_done, total)} items, {len(st.skipped)} skipped, "
        f"{st.restarts} restart(s), {st.disruptions} disruption(s)",
        f"usage: {cp.tokens} tokens, ${cp.cost_usd:.4f}",
    ]
    lines.extend(f"skipped item {s.index + 1}: {s.error}" for s in st.skipped)
    return lines


def cmd_run(args: argparse.Namespace) -> int:
    """resumable run FILE.yaml."""
    try:
        batch = load_manifest(
            Path(args.file), warn=lambda line: print(f"warning: {line}", file=sys.stderr)
        )
    except ManifestError as exc:
        raise CliError(str(exc)) from exc
    errors, notes = check_runnable(batch)
    if errors:
        raise CliError(f"{args.file}: " + "; ".join(errors))
    directory = Path(args.state_dir or Path(".resumable") / batch.metadata.name).absolute()
    out = sys.stdout
    output.write_line(out, f"running {batch.metadata.name} locally; state in {directory}")
    for note in notes:
        output.write_line(out, f"note: {note}")
    try:
        result = run_local(batch, directory, out=out, show_worker_output=not args.quiet)
    except (ResumableError, LocalRunError) as exc:  # a corrupt status.json, a busy directory
        raise CliError(str(exc)) from exc
    except OSError as exc:  # the state directory became unwritable, the disk filled up
        name = Path(exc.filename or "")
        where = name if name.is_absolute() else directory / name
        raise CliError(f"{where}: {exc.strerror or exc}") from exc
    for line in summary_lines(result):
        output.write_line(out, line)
    if result.phase == names.PHASE_SUSPENDED:
        again = run_again_command(args.file, args.state_dir)
        output.write_line(out, f"suspended; run `{again}` again to resume")
        return 130
    hint = hints.resume_hint(batch.spec, result.status)
    if result.attempts == 0 and hint is not None:  # it had ended already: nothing ran
        recurring = next_run_hint(batch, result, datetime.now(UTC))
        output.write_line(out, recurring or ended_hint(batch.metadata.name, hint, directory))
    return 0 if result.phase == names.PHASE_SUCCEEDED else 1


def next_run_hint(batch: ResumableBatch, result: RunResult, now: datetime) -> str:
    """For a recurring batch whose run had ended: when the next run starts ("" otherwise)."""
    window = batch.spec.window
    if window is None or window.recurrence is None:
        return ""
    upcoming = next_opening(window, now)
    when = f"when its window opens at {format_time(upcoming.start)}" if upcoming else "never"
    return (
        f"nothing to do: run {result.status.run_id} of {batch.metadata.name} already "
        f"{result.phase.lower()}; the next run starts {when}: run this again then"
    )


def run_again_command(file: str, state_dir: str | None) -> str:
    """The `resumable run` that finds this run's state again: the file and --state-dir.

    Without --state-dir the state is ``.resumable/<name>`` under the current
    directory, found again by the same command run from there.
    """
    argv = ["resumable", "run", file]
    if state_dir:
        argv += ["--state-dir", state_dir]
    return shlex.join(argv)


def ended_hint(name: str, hint: hints.ResumeHint, directory: Path) -> str:
    """What to do when `resumable run` finds the batch already ended (nothing ran)."""
    if hint.way is hints.Way.RERUN:
        return (
            f"nothing to do: {name} already succeeded (state in {directory}); "
            "to run it again from item 1, change spec.runId in the manifest"
        )
    at = f"to go on from its checkpoint (item {hint.item})"
    if hint.way is hints.Way.EDIT_SPEC:
        return (
            f"nothing to do: {name} already failed ({hint.reason}: "
            f"{hint.message}) (state in {directory}); {at}, fix the cause in the manifest's "
            "spec and run it again; to start over from item 1, change spec.runId"
        )
    if hint.way is hints.Way.START_OVER:
        why = f" ({hint.reason}: {hint.message})" if hint.reason else ""
        return (
            f"nothing to do: {name} already failed{why} (state in {directory}); "
            "to start over from item 1, change spec.runId"
        )
    if hint.way is hints.Way.RESTARTS_RAISED:  # the runner acts on a raise when it runs
        return (
            f"nothing to do: {name} already failed (state in {directory}); "
            f"spec.retry.maxRestarts is already {hint.max_restarts}, above its "
            f"{hint.restarts} restarts: run it again {at}; "
            "to start over from item 1, change spec.runId"
        )
    return (
        f"nothing to do: {name} already failed (state in {directory}); {at}, "
        f"raise spec.retry.maxRestarts above {hint.restarts}; to start over from item 1, "
        "change spec.runId"
    )
