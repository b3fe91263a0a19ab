"""``resumable logs NAME``: the worker's output, of one attempt or (-f) attempt after attempt.

In a cluster, the log of the batch's current (or latest, or --attempt's) worker
pod as the API server streams it; with -f it reconnects while the pod runs and
moves on into each next attempt's pod until the batch settles. With --local (or
--state-dir), the output files ``resumable run`` kept of each attempt, followed
the same way. Bytes are copied as they come, so a worker's own formatting stays.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from resumable.constants import LABEL_ATTEMPT, LABEL_BATCH
from resumable_cli import kube
from resumable_cli.errors import CliError
from resumable_core import hints
from resumable_core.policy.pods import KEEP_ENDED_PODS
from resumable_runner.runner import (
    LOGS_DIR,
    LocalRunError,
    local_logs,
    read_local_status,
    runner_alive,
)


class _NoLogYetError(CliError):
    """The pod has no log to serve yet (not scheduled, or its container not started)."""


class _NoPodYetError(CliError):
    """The batch has not had a worker pod (yet)."""


def _worker_pods(api: Any, ns: str, name: str) -> list[dict[str, Any]]:
    """The batch's worker pods still kept, oldest attempt first."""
    pods: list[dict[str, Any]] = api.request(
        "GET", f"/api/v1/namespaces/{ns}/pods", query={"labelSelector": f"{LABEL_BATCH}={name}"}
    ).get("items", [])
    pods.sort(key=lambda p: int(p["metadata"].get("labels", {}).get(LABEL_ATTEMPT, "0")))
    return pods


def _pod_for_logs(api: Any, ns: str, name: str, attempt: int | None) -> str:
    """The pod whose log `logs` shows: the attempt's, else the current or latest one."""
    obj = kube.get_batch(api, ns, name)
    if attempt is None and (obj.get("status") or {}).get("activePod"):
        return str(obj["status"]["activePod"])
    pods = _worker_pods(api, ns, name)
    if attempt is not None:
        pods = [
            p for p in pods if p["metadata"].get("labels", {}).get(LABEL_ATTEMPT) == str(attempt)
        ]
        if not pods:
            raise CliError(
                f'resumablebatch "{name}" has no pod of attempt {attempt} (the operator '
                f"keeps the pods of the last {KEEP_ENDED_PODS} attempts that ended)"
            )
    if not pods:
        raise _NoPodYetError(f'resumablebatch "{name}" has no worker pods')
    return str(pods[-1]["metadata"]["name"])


def _first_pod_to_follow(api: Any, ns: str, name: str, poll: float) -> str:
    """The pod to start following: the current or latest, or the first one once created."""
    while True:
        try:
            return _pod_for_logs(api, ns, name, None)
        except _NoPodYetError:
            phase = (kube.get_batch(api, ns, name).get("status") or {}).get("phase")
            if phase in hints.SETTLED_PHASES:
                raise
        time.sleep(poll)


class _StreamBrokenError(CliError):
    """The log stream broke after it started (a reset, a truncated reply)."""

    def __init__(self, message: str, copied: int) -> None:
        super().__init__(message)
        self.copied = copied  # bytes written before it broke


def _stream_log(
    api: Any,
    ns: str,
    pod: str,
    *,
    follow: bool,
    tail: int | None,
    out: Any,
    before_output: Callable[[], None] | None = None,
) -> int:
    """Copy the pod's log to out (bytes) as the API server streams it; return the byte count.

    ``before_output`` is called once, before the first byte is written.
    """
    from resumable.kubeapi import ApiError, BadRequestError, NotFoundError, UnreachableError

    query: dict[str, str | int | bool] = {}
    if follow:
        query["follow"] = True
    if tail is not None:
        query["tailLines"] = tail
    try:
        # Following: a connect timeout, but no read timeout (a quiet worker is not a
        # dead connection).
        chunks = api.stream(
            f"/api/v1/namespaces/{ns}/pods/{pod}/log",
            query=query,
            read_timeout=None if follow else api.timeout,
        )
    except (BadRequestError, NotFoundError) as exc:  # not started yet, or not created yet
        reason = " ".join(exc.message.split())
        raise _NoLogYetError(f"cannot read logs of pod {pod}: {reason}") from None
    except UnreachableError as exc:
        raise CliError(f"cannot read logs of pod {pod}: {exc.message}") from None
    except ApiError as exc:
        raise CliError(f"cannot read logs of pod {pod}: {' '.join(exc.message.split())}") from None
    copied = 0
    while True:
        try:
            chunk = next(chunks, b"")
        except UnreachableError as exc:  # the connection broke mid-stream
            raise _StreamBrokenError(
                f"the log stream of pod {pod} broke: {exc.message}", copied
            ) from None
        if not chunk:
            return copied
        if not copied and before_output is not None:
            before_output()
        out.write(chunk)  # a closed pipe (| head) raises BrokenPipeError to main()
        out.flush()
        copied += len(chunk)


def _pod_phase(api: Any, ns: str, pod: str) -> str:
    """The pod's phase, or "" when it is gone."""
    from resumable.kubeapi import ApiError, NotFoundError

    try:
        obj = api.request("GET", f"/api/v1/namespaces/{ns}/pods/{pod}")
    except NotFoundError:
        return ""
    except ApiError as exc:
        raise CliError(f"cannot read pod {ns}/{pod}: {exc.message}") from None
    return str((obj.get("status") or {}).get("phase", ""))


def _pod_state(api: Any, ns: str, name: str, pod: str) -> str:
    """Where the pod is: "coming" (Pending, or named but not created yet), "running", "ended"."""
    phase = _pod_phase(api, ns, pod)
    if phase == "Running":
        return "running"
    if phase == "Pending":
        return "coming"
    if phase == "":  # the operator records the pod's name before it creates the pod
        active = (kube.get_batch(api, ns, name).get("status") or {}).get("activePod")
        return "coming" if active == pod else "ended"
    return "ended"


def _follow_pod(api: Any, ns: str, name: str, pod: str, tail: int | None, poll: float) -> None:
    """Stream one worker pod's log until the pod has ended or is gone.

    The stream can end early: the API server answers an empty log for a pod not
    yet on a node, and a long connection can drop. While the pod is still to
    start or running, connect again. After output was shown, a new connection
    asks only for new lines (byte offsets would not survive a log rotation), and
    says on stderr that lines written in between may be missing.
    """
    out = sys.stdout.buffer
    shown = 0
    while True:
        note = None
        if shown:
            tail = 0
            note = functools.partial(
                print,
                f"--- {pod}: reconnected; lines written meanwhile may be missing ---",
                file=sys.stderr,
                flush=True,
            )
        try:
            shown += _stream_log(api, ns, pod, follow=True, tail=tail, out=out, before_output=note)
        except _StreamBrokenError as exc:
            shown += exc.copied
        except _NoLogYetError:
            state = _pod_state(api, ns, name, pod)
            if state == "ended":  # deleted (suspended, evicted) before or while we looked
                if not shown:
                    print(f"--- {pod}: gone before its log could be read ---", file=sys.stderr)
                return
            if state == "running":
                raise
        else:
            if _pod_state(api, ns, name, pod) == "ended":
                return
        time.sleep(poll)


def _follow(api: Any, ns: str, name: str, pod: str, tail: int | None, poll: float) -> None:
    """Follow the batch's workers, attempt after attempt, until the batch settles."""
    followed: set[str] = set()
    while True:
        _follow_pod(api, ns, name, pod, tail, poll)
        followed.add(pod)
        tail = None  # a later attempt's log is shown whole
        # The pod ended: wait for the next attempt, or the end of the batch.
        while True:
            status = kube.get_batch(api, ns, name).get("status") or {}
            active = status.get("activePod") or ""
            if active and active not in followed:
                break
            if status.get("phase") in hints.SETTLED_PHASES and not active:
                return
            time.sleep(poll)
        print(f"--- {name}: next attempt, pod {active} ---", file=sys.stderr, flush=True)
        pod = active


def cmd_logs(args: argparse.Namespace) -> int:
    """Logs of the batch's current (or latest) worker pod; -f follows the batch to its end."""
    if args.tail is not None and args.tail < 0:
        raise CliError(f"--tail must be 0 or more, got {args.tail}")
    if not args.interval > 0:
        raise CliError(f"--interval must be more than 0 seconds, got {args.interval:g}")
    if args.local or args.state_dir:
        return _local_logs(args)
    api = kube.connect(args)
    ns = kube.namespace(args)
    try:
        if args.follow and args.attempt is None:
            pod = _first_pod_to_follow(api, ns, args.name, poll=args.interval)
            try:
                _follow(api, ns, args.name, pod, args.tail, poll=args.interval)
            except kube.BatchNotFoundError:
                raise CliError(
                    f'resumablebatch "{args.name}" was deleted while its logs were followed'
                ) from None
        else:
            pod = _pod_for_logs(api, ns, args.name, args.attempt)
            _stream_log(api, ns, pod, follow=args.follow, tail=args.tail, out=sys.stdout.buffer)
    except KeyboardInterrupt:
        return 130  # as a shell reports Ctrl-C
    return 0


def _local_logs(args: argparse.Namespace) -> int:
    """`logs --local`: the output a local run kept of each attempt (``logs/`` of its state)."""
    directory = Path(args.state_dir or Path(".resumable") / args.name)
    try:
        read_local_status(directory, args.name)  # names a missing or foreign state dir
    except LocalRunError as exc:
        raise CliError(str(exc)) from exc
    logs = local_logs(directory, args.name)
    if not logs:
        raise CliError(f"no attempt of {args.name} has run yet: {directory / LOGS_DIR} is empty")
    attempt = args.attempt if args.attempt is not None else max(logs)
    if attempt not in logs:
        kept = ", ".join(str(a) for a in logs)
        raise CliError(f"attempt {attempt} of {args.name} has no log here (attempts: {kept})")
    out = sys.stdout.buffer
    try:
        position = _print_tail(logs[attempt], args.tail, out)
        while args.follow:
            # As in a cluster: on into each next attempt's output until the batch
            # settles, or until no `resumable run` is working on it any more.
            position = _copy_from(logs[attempt], position, out)
            logs = local_logs(directory, args.name)
            newer = [a for a in logs if a > attempt]
            if newer and args.attempt is not None:
                break  # that attempt has ended: a later one runs now
            if newer:
                attempt, position = min(newer), 0
                print(f"--- {args.name}: next attempt ({attempt}) ---", file=sys.stderr, flush=True)
                continue
            status = read_local_status(directory, args.name)
            if status.phase in hints.SETTLED_PHASES or not runner_alive(directory):
                _copy_from(logs[attempt], position, out)
                break
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 130
    return 0


def _print_tail(path: Path, tail: int | None, out: Any) -> int:
    """Write path's last ``tail`` lines (all with None); return the offset read to."""
    data = path.read_bytes()
    if tail is not None:
        lines = data.splitlines(keepends=True)
        out.write(b"".join(lines[len(lines) - tail :] if tail else []))
    else:
        out.write(data)
    out.flush()
    return len(data)


def _copy_from(path: Path, position: int, out: Any) -> int:
    """Write what path holds past position; return the new position."""
    with open(path, "rb") as source:
        source.seek(position)
        data = source.read()
    out.write(data)
    out.flush()
    return position + len(data)
