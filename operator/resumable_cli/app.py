"""The command line's surface and its entry point: every command, flag, help text, exit.

:func:`main` (the ``resumable`` and ``kubectl-resumable`` console scripts, through
``resumable_cli.main``) parses the arguments with :func:`build_parser` and calls
the command, which lives in a module of its own: ``run`` and ``demo`` (local),
``get``, ``describe``, ``logs``, ``status``, ``outputs`` (read a batch) and ``control``
(``suspend``, ``resume``, ``rerun``). A command's module is imported only when that
command runs, so ``--help`` and a mistyped flag need neither pydantic nor the
kubernetes client; this module imports nothing heavier than argparse.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from resumable_cli.errors import CliError

#: `resumable demo`'s defaults: documents, and the item after which the worker is killed.
DEMO_ITEMS = 50
DEMO_CRASH_AFTER = 20
DEMO_DELAY = 0.04

#: `status` exit codes (resumable_cli.status), as `resumable run`'s.
STATUS_EXIT_HELP = (
    "Exit status: 0 succeeded, or (without --watch) not ended yet; 1 failed, or an error; "
    "130 suspended, or (--local) no `resumable run` is working on it any more, or --watch "
    "interrupted with Ctrl-C."
)

Command = Callable[[argparse.Namespace], int]


def local_flags(parser: argparse.ArgumentParser, what: str) -> None:
    """--local and --state-dir: a command reads a local run's state instead of a cluster."""
    parser.add_argument("--local", action="store_true", help=f"{what} (no cluster)")
    parser.add_argument("--state-dir", help="like --local, with the run's --state-dir")


def _at_least(low: float, kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type: ``kind(text)``, refused below ``low`` with a usage error."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, not {text}")
        return value

    return parse


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("resumable-batch")
    except PackageNotFoundError:  # a checkout on sys.path, not installed
        return "unknown"


class _VersionAction(argparse._VersionAction):
    """--version, looked up only when asked for (importlib.metadata is slow to import)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        self.version = f"%(prog)s {_version()}"
        super().__call__(parser, namespace, values, option_string)


def build_parser(prog: str = "resumable") -> argparse.ArgumentParser:
    """The command-line interface; each command's ``command`` default names its function."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run batches that resume where they stopped: locally, or on Kubernetes "
        "with the resumable-batch operator.",
    )
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command_name", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "run",
        help="run a ResumableBatch manifest locally (no cluster)",
        description="Run a ResumableBatch manifest on this machine: the first container's "
        "command runs as a local process, restarted from its checkpoint as the operator "
        "would. Ctrl-C (or SIGTERM) suspends cleanly; run again to resume. Exit status: "
        "0 succeeded, 1 failed or error, 130 suspended.",
    )
    p.add_argument("file", help="the manifest (YAML)")
    p.add_argument("--state-dir", help="where state is kept (default .resumable/<name>)")
    p.add_argument("--quiet", action="store_true", help="do not show the worker's output")
    p.set_defaults(command="run:cmd_run")

    p = sub.add_parser("demo", help="the example agent: killed after item 20, resumed at 21")
    p.add_argument(
        "--items", type=_at_least(1, int), default=DEMO_ITEMS, help="documents (default 50)"
    )
    p.add_argument(
        "--crash-after",
        type=_at_least(1, int),
        default=DEMO_CRASH_AFTER,
        help="kill after item N (20; at least --items for no crash)",
    )
    p.add_argument(
        "--delay",
        type=_at_least(0, float),
        default=DEMO_DELAY,
        help="fake model seconds per item (0.04)",
    )
    p.add_argument(
        "--state-dir",
        help="keep the state here; must be new, empty or an earlier demo's "
        "(default: a temporary one, removed afterwards)",
    )
    p.set_defaults(command="demo:cmd_demo")

    def cluster(
        name: str, help_: str, command: str, *, needs_name: bool = True
    ) -> argparse.ArgumentParser:
        q = sub.add_parser(name, help=help_)
        if needs_name:
            q.add_argument("name", help="the ResumableBatch")
        q.add_argument("-n", "--namespace", help="namespace (default: the context's)")
        q.add_argument("--context", help="kubeconfig context (default: current)")
        q.add_argument(
            "--kubeconfig", help="kubeconfig file (default: KUBECONFIG or ~/.kube/config)"
        )
        q.set_defaults(command=command)
        return q

    q = cluster(
        "get", "list batches with progress, restarts and phase", "get:cmd_get", needs_name=False
    )
    q.add_argument("name", nargs="?", help="one batch")
    cluster(
        "describe",
        "checkpoint, restarts, skipped items and events of a batch",
        "describe:cmd_describe",
    )
    q = cluster("logs", "logs of the batch's current (or latest) worker pod", "logs:cmd_logs")
    q.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="keep streaming, into each next attempt's pod, until the batch ends or is "
        "suspended (with --attempt: until that pod ends)",
    )
    q.add_argument("--tail", type=int, metavar="N", help="only the last N lines")
    q.add_argument(
        "--attempt", type=int, metavar="N", help="the pod of attempt N (a finished one, if kept)"
    )
    q.add_argument(
        "--interval",
        type=float,
        default=1.0,
        help="with -f: seconds between looks for the next attempt's pod (1)",
    )
    local_flags(q, "the output `resumable run` kept of each attempt, in .resumable/<name>/logs/")
    cluster("suspend", "stop the worker gracefully (spec.suspend=true)", "control:cmd_suspend")
    cluster("resume", "resume from the checkpoint (spec.suspend=false)", "control:cmd_resume")
    q = cluster("rerun", "start a clean rerun from item 1 (new spec.runId)", "control:cmd_rerun")
    q.add_argument("--run-id", help="the new runId (default: a timestamp)")
    cluster(
        "retry-skipped",
        "retry the skipped (poison) items without redoing the rest (new spec.retrySkipped)",
        "control:cmd_retry_skipped",
    )
    q = cluster(
        "outputs",
        "the item outputs the batch's status covers, in item order (JSON lines, or --to DIR)",
        "outputs:cmd_outputs",
    )
    q.add_argument("--to", metavar="DIR", help="write one <index>.json per item into DIR")
    local_flags(q, "a batch `resumable run` runs or ran here: read .resumable/<name>/")
    q = cluster("status", "progress of a batch; --watch for a live bar", "status:cmd_status")
    q.description = (
        "Progress of a batch: items done, rate, restarts, cost, and its phase. " + STATUS_EXIT_HELP
    )
    q.add_argument(
        "-w",
        "--watch",
        action="store_true",
        help="keep watching until the batch succeeds, fails or is suspended",
    )
    q.add_argument("--interval", type=float, default=1.0, help="seconds between reads (1)")
    local_flags(q, "a batch `resumable run` runs here: read .resumable/<name>/")
    return parser


def load_command(name: str) -> Command:
    """The command function ``"module:function"`` names, its module imported now."""
    module, _, function = name.partition(":")
    command: Command = getattr(importlib.import_module(f"resumable_cli.{module}"), function)
    return command


def main(argv: list[str] | None = None) -> int:
    """Entry point of `resumable` and `kubectl-resumable`."""
    prog = Path(sys.argv[0]).name
    prog = "kubectl resumable" if prog.startswith("kubectl-") else "resumable"
    args = build_parser(prog).parse_args(argv)
    command = load_command(args.command)
    try:
        code = command(args)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # Output piped into something that stopped reading (| head): the runner
        # has already stopped its worker; end quietly, as other CLIs do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except Exception as exc:
        kubeapi = sys.modules.get("resumable.kubeapi")
        if kubeapi is None or not isinstance(exc, kubeapi.ApiError):
            raise
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    return code
