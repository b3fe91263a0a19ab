"""Run a command that gets SIGTERM if the `resumable run` that started it dies.

    python -I -S _lifeline.py RUNNER_PID REPORT_FD COMMAND [ARG...]

The local runner starts each worker through this file, on Linux. It asks the
kernel to send SIGTERM when the parent dies (prctl PR_SET_PDEATHSIG, which
outlives execve), checks that the parent is still RUNNER_PID (it may have died
before the request), and then replaces itself with the command. When that exec
fails, why is written to REPORT_FD, a pipe the runner reads until it closes: it
is closed on exec, so nothing there means the command started. A runner killed
with SIGKILL, which cannot suspend its worker, so still stops it: the SDK saves
on SIGTERM and the worker exits, instead of running on unseen with no one to
read its output.

Run by path, without site packages: it imports only the standard library and
must cost little more than the interpreter's start.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
#: What a shell returns for a command it cannot run.
CANNOT_RUN = 127


def main(argv: list[str]) -> int:
    """Arm the parent-death signal and exec the command; only returns on failure."""
    if len(argv) < 3:
        print("usage: _lifeline.py RUNNER_PID REPORT_FD COMMAND [ARG...]", file=sys.stderr)
        return 2
    runner, report, command = int(argv[0]), int(argv[1]), argv[2:]
    os.set_inheritable(report, False)  # closed by a successful exec
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        print(f"resumable: cannot watch the runner: {os.strerror(err)}", file=sys.stderr)
    elif os.getppid() != runner:
        return 128 + signal.SIGTERM  # the runner died before we asked: as if signalled
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        why = f"cannot run {command[0]!r}: {exc.strerror or exc}"
        print(f"resumable: {why}", file=sys.stderr)
        os.write(report, why.encode())
    return CANNOT_RUN


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
