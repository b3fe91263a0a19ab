"""``resumable demo``: the bundled summariser, killed after item 20 and resumed at 21.

Builds the demo's batch (:func:`demo_batch`), runs it with :func:`resumable_cli.run.run_local`
in a temporary state directory (or a ``--state-dir`` only an earlier demo made),
and says what resuming saved. Its defaults are the command line's
(:mod:`resumable_cli.app`).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TextIO

from resumable import constants as names
from resumable.v1alpha1 import ResumableBatch
from resumable_cli import output
from resumable_cli.errors import CliError
from resumable_cli.run import run_local, summary_lines

DEMO_MARKER = ".resumable-demo"  # marks a --state-dir the demo may empty


def demo_batch(*, items: int, crash_after: int, delay: float) -> ResumableBatch:
    """The demo's batch: the summariser over ``items`` documents, SIGKILLed after one.

    The worker is killed right after item ``crash_after`` (50 and 20 by default:
    see :mod:`resumable_cli.app`).

    A crash_after of at least items means no crash (the worker would otherwise
    be killed after its last item, with nothing left to resume).
    """
    env = [
        {"name": "SUMMARIZER_ITEMS", "value": str(items)},
        {"name": "SUMMARIZER_DELAY", "value": str(delay)},
    ]
    if crash_after < items:
        env += [
            {"name": "SUMMARIZER_CRASH_AFTER", "value": str(crash_after)},
            {"name": "SUMMARIZER_CRASH_MODE", "value": "kill"},
        ]
    return ResumableBatch.model_validate(
        {
            "metadata": {"name": "demo-summarizer"},
            "spec": {
                "totalItems": items,
                "retry": {"maxRestarts": 3, "backoff": {"initialSeconds": 1, "maxSeconds": 5}},
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "worker",
                                "command": [sys.executable, "-m", "resumable.examples.summarizer"],
                                "env": env,
                            }
                        ]
                    }
                },
            },
        }
    )


def cmd_demo(args: argparse.Namespace) -> int:
    """resumable demo: crash after item 20, resume at 21, show what resuming saved."""
    out = sys.stdout
    if args.state_dir:
        directory = Path(args.state_dir)
        _clear_demo_state(directory)
        kept = "kept afterwards"
    else:
        directory = Path(tempfile.mkdtemp(prefix="resumable-demo-"))
        kept = "removed afterwards; pass --state-dir to keep it"
    try:
        return _demo(args, directory, kept, out)
    finally:
        if not args.state_dir:
            shutil.rmtree(directory, ignore_errors=True)


def _clear_demo_state(directory: Path) -> None:
    """Empty a --state-dir an earlier demo left; refuse any other non-empty directory.

    The demo starts from item 0 every time, so it deletes its old state; it must
    never delete a directory that holds anything else.
    """
    if not directory.exists():
        return
    if not directory.is_dir():
        raise CliError(f"--state-dir {directory}: exists and is not a directory")
    if not any(directory.iterdir()):
        return
    if not (directory / DEMO_MARKER).is_file():
        raise CliError(
            f"--state-dir {directory}: not empty and not made by `resumable demo`; "
            "the demo starts over by deleting its state dir, so give it a new or empty one"
        )
    shutil.rmtree(directory)  # an earlier demo's state only; _demo makes it again


def _demo(args: argparse.Namespace, directory: Path, kept: str, out: TextIO) -> int:
    """Run the demo in directory; say what resuming saved."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / DEMO_MARKER).write_text(
        "state of `resumable demo`; it deletes this directory's contents\n"
    )
    batch = demo_batch(items=args.items, crash_after=args.crash_after, delay=args.delay)
    crash = (
        f"the worker is killed right after item {args.crash_after}, and the local runner resumes it"
        if args.crash_after < args.items
        else "no crash (--crash-after is not below --items)"
    )
    output.write_line(
        out, f"demo: summarising {args.items} documents; {crash} (state in {directory}, {kept})"
    )
    started = time.monotonic()
    result = run_local(batch, directory, out=out)
    elapsed = time.monotonic() - started
    for line in summary_lines(result):
        output.write_line(out, line)
    cp = result.status.checkpoint
    if result.phase == names.PHASE_SUCCEEDED and cp.items_done and result.status.restarts:
        per_item_cost = cp.cost_usd / cp.items_done
        per_item_time = args.delay
        saved_items = args.crash_after
        output.write_line(
            out,
            f"saved by resuming: {saved_items} items not redone "
            f"(~{saved_items * per_item_time:.1f}s of model time, "
            f"${saved_items * per_item_cost:.4f} of tokens); total wall time {elapsed:.1f}s",
        )
    return 0 if result.phase == names.PHASE_SUCCEEDED else 1
