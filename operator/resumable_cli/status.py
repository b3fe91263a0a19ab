"""``resumable status NAME``: a batch's progress once, or with --watch until it settles.

Reads a cluster batch through :mod:`resumable_cli.kube`, or (``--local``,
``--state-dir``) the state ``resumable run`` keeps; the exit code tells succeeded,
failed and suspended apart (``STATUS_EXIT_HELP`` in :mod:`resumable_cli.app`).
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from resumable import LocalStore
from resumable import constants as names
from resumable.v1alpha1 import ResumableBatch, ResumableBatchStatus
from resumable_cli import kube, output
from resumable_cli.errors import CliError
from resumable_core import hints
from resumable_runner.runner import LocalRunError, read_local_status, runner_alive

#: `status --watch` says no operator seems to run the batch after this long without a status.
NOT_RECONCILED_HINT_AFTER = 10.0


#: `status` exit codes, as `resumable run`'s (see STATUS_EXIT_HELP in resumable_cli.app).
EXIT_SUSPENDED = 130


def _not_reconciled(status: ResumableBatchStatus) -> bool:
    """No operator has written this batch's status yet."""
    return not status.phase and status.observed_generation is None


def _no_operator_hint(name: str, ns: str) -> str:
    """What to check while no operator has written the batch's status."""
    return (
        f"no operator has picked up resumablebatch/{name} yet; if that lasts, check that one "
        "is running (`kubectl get pods -n <operator namespace>`, resumable-system in the "
        f"README's install) and that it watches namespace {ns}"
    )


def _status_exit(phase: str, *, stopped: bool, interrupted: bool) -> int:
    """The exit code for the phase the command ended on."""
    if phase == names.PHASE_SUCCEEDED:
        return 0
    if phase == names.PHASE_FAILED:
        return 1
    if phase == names.PHASE_SUSPENDED or stopped or interrupted:
        return EXIT_SUSPENDED
    return 0  # pending, backing off or running: fine so far


def _live_count(
    local: LocalStore | None, alive: Callable[[], bool] | None
) -> dict[str, Any] | None:
    """The running worker's live item count, while a `resumable run` works on the batch."""
    if local is None or alive is None or not alive():
        return None
    return local.read_live_progress()


def cmd_status(args: argparse.Namespace) -> int:
    """Progress of one batch; --watch keeps a live bar until it succeeds, fails or is suspended."""
    if not args.interval > 0:
        raise CliError(f"--interval must be more than 0 seconds, got {args.interval:g}")
    alive: Callable[[], bool] | None = None
    local: LocalStore | None = None  # a local run's store: its live item count
    hint = ""  # in a cluster: what to say while no operator has reconciled the batch
    if args.local or args.state_dir:
        directory = Path(args.state_dir or Path(".resumable") / args.name)

        def read() -> ResumableBatchStatus:
            try:
                return read_local_status(directory, args.name)
            except LocalRunError as exc:
                raise CliError(str(exc)) from exc

        total = None
        alive = functools.partial(runner_alive, directory)
        local = LocalStore(directory)
    else:
        api = kube.connect(args)
        ns = kube.namespace(args)
        hint = _no_operator_hint(args.name, ns)

        def read() -> ResumableBatchStatus:
            return ResumableBatch.model_validate(kube.get_batch(api, ns, args.name)).status

        total = ResumableBatch.model_validate(kube.get_batch(api, ns, args.name)).spec.total_items
    status = read()
    bar = output.ProgressBar(sys.stdout, total=total, interval=2.0)
    started = time.monotonic()
    hinted = False
    stopped = interrupted = False
    try:
        while True:
            bar.update(status, live=_live_count(local, alive))
            if not args.watch or status.phase in hints.SETTLED_PHASES:
                break
            if alive is not None and not alive():
                stopped = True  # killed: nothing will move it until it is run again
                break
            if (
                hint
                and not hinted
                and _not_reconciled(status)
                and time.monotonic() - started >= NOT_RECONCILED_HINT_AFTER
            ):
                bar.line(hint)  # once; go on waiting: an operator may yet start
                hinted = True
            time.sleep(args.interval)
            status = read()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    if not bar.tty and bar.printed != bar.text:
        output.write_line(sys.stdout, bar.text)
    print(f"phase: {status.phase or '(not reconciled yet)'}")
    if hint and not hinted and _not_reconciled(status):
        print(hint)
    if alive is not None and status.phase not in hints.SETTLED_PHASES and not alive():
        stopped = True
        print("no `resumable run` is working on it: run it again to resume")
    return _status_exit(status.phase, stopped=stopped, interrupted=interrupted)
