"""The ``resumable`` command (also ``kubectl resumable`` when installed as kubectl-resumable).

Local: ``run FILE.yaml`` runs a batch with the local runner, ``demo`` runs the
bundled summariser with a crash after item 20. Against a cluster (current
kubeconfig context, or --context/--namespace): ``get``, ``describe``, ``logs``,
``suspend``, ``resume``, ``rerun``, ``status --watch``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from resumable._errors import ResumableError
from resumable._ranges import IndexSet
from resumable.v1alpha1 import ResumableBatch, ResumableBatchStatus
from resumable_core import hints
from resumable_core.reconcile import EventPlan, progress_text
from resumable_runner.runner import (
    LOGS_DIR,
    LocalRunError,
    LocalRunner,
    ManifestError,
    RunResult,
    check_runnable,
    load_manifest,
    local_logs,
    read_local_status,
    runner_alive,
    write_line,
)


class CliError(Exception):
    """A one-line error for the user (no traceback)."""


# ------------------------------------------------------------------ progress


class ProgressBar:
    """A one-line progress bar on a terminal; plain periodic lines otherwise."""

    def __init__(self, stream: TextIO, *, total: int | None, interval: float = 5.0) -> None:
        self.stream = stream
        self.total = total
        self.tty = stream.isatty()
        self.interval = interval
        self.started = time.monotonic()
        self.last_line = 0.0
        self.first_done: int | None = None
        self.shown = False
        self.text = ""
        self.printed = ""

    def update(self, status: ResumableBatchStatus) -> None:
        """Redraw from a status."""
        cp = status.checkpoint
        done = hints.done_count(cp)
        total = self.total if self.total is not None else cp.total_items
        now = time.monotonic()
        if self.first_done is None:
            self.first_done = done
        elapsed = max(now - self.started, 1e-6)
        rate = (done - self.first_done) / elapsed
        eta = ""
        if total is not None and rate > 0 and done < total:
            eta = f" eta {_duration((total - done) / rate)}"
        width = 24
        frac = (done / total) if total else 0.0
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        self.text = (
            f"[{bar}] {progress_text(done, total)} {rate:5.1f} items/s{eta} "
            f"restarts {status.restarts} ${cp.cost_usd:.4f}"
        )
        if self.tty:
            self.stream.write("\r\x1b[2K" + self.text)
            self.stream.flush()
            self.shown = True
        elif now - self.last_line >= self.interval:
            self.last_line = now
            self.printed = self.text
            write_line(self.stream, self.text)

    def line(self, text: str) -> None:
        """Print a line above the bar."""
        if self.tty and self.shown:
            self.stream.write("\r\x1b[2K")
        write_line(self.stream, text)
        if self.tty and self.shown:
            self.stream.write(self.text)
            self.stream.flush()

    def close(self) -> None:
        """Leave the bar's last state on its own line."""
        if self.tty and self.shown:
            self.stream.write("\n")
            self.stream.flush()


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


# ------------------------------------------------------------------ local


def run_local(
    batch: ResumableBatch,
    directory: Path,
    *,
    out: TextIO,
    show_worker_output: bool = True,
    extra_env: dict[str, str] | None = None,
) -> RunResult:
    """Run a batch locally with a progress bar; Ctrl-C suspends cleanly."""
    bar = ProgressBar(out, total=batch.spec.total_items)

    def on_event(plan: EventPlan) -> None:
        bar.line(f"{'!' if plan.type == 'Warning' else '*'} {plan.reason}: {plan.message}")

    def on_output(pod: str, line: str) -> None:
        if show_worker_output:
            bar.line(f"  [{pod}] {line}")

    runner = LocalRunner(
        batch,
        directory,
        on_event=on_event,
        on_output=on_output,
        on_tick=bar.update,
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
        batch = load_manifest(Path(args.file))
    except ManifestError as exc:
        raise CliError(str(exc)) from exc
    errors, notes = check_runnable(batch)
    if errors:
        raise CliError(f"{args.file}: " + "; ".join(errors))
    directory = Path(args.state_dir or Path(".resumable") / batch.metadata.name).absolute()
    out = sys.stdout
    write_line(out, f"running {batch.metadata.name} locally; state in {directory}")
    for note in notes:
        write_line(out, f"note: {note}")
    try:
        result = run_local(batch, directory, out=out, show_worker_output=not args.quiet)
    except (ResumableError, LocalRunError) as exc:  # a corrupt status.json, a busy directory
        raise CliError(str(exc)) from exc
    except OSError as exc:  # the state directory became unwritable, the disk filled up
        name = Path(exc.filename or "")
        where = name if name.is_absolute() else directory / name
        raise CliError(f"{where}: {exc.strerror or exc}") from exc
    for line in summary_lines(result):
        write_line(out, line)
    if result.phase == "Suspended":
        write_line(out, f"suspended; run `resumable run {args.file}` again to resume")
        return 130
    hint = hints.resume_hint(batch.spec, result.status)
    if result.attempts == 0 and hint is not None:  # it had ended already: nothing ran
        write_line(out, ended_hint(batch.metadata.name, hint, directory))
    return 0 if result.phase == "Succeeded" else 1


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
            f"{hint.restarts} restarts: run it again {at.removeprefix('to ')}; "
            "to start over from item 1, change spec.runId"
        )
    return (
        f"nothing to do: {name} already failed (state in {directory}); {at}, "
        f"raise spec.retry.maxRestarts above {hint.restarts}; to start over from item 1, "
        "change spec.runId"
    )


DEMO_ITEMS = 50
DEMO_CRASH_AFTER = 20
DEMO_MARKER = ".resumable-demo"  # marks a --state-dir the demo may empty


def demo_batch(
    *, items: int = DEMO_ITEMS, crash_after: int = DEMO_CRASH_AFTER, delay: float = 0.04
) -> ResumableBatch:
    """The demo: the summariser over 50 documents, SIGKILLed right after item 20.

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
    write_line(
        out, f"demo: summarising {args.items} documents; {crash} (state in {directory}, {kept})"
    )
    started = time.monotonic()
    result = run_local(batch, directory, out=out)
    elapsed = time.monotonic() - started
    for line in summary_lines(result):
        write_line(out, line)
    cp = result.status.checkpoint
    if result.phase == "Succeeded" and cp.items_done and result.status.restarts:
        per_item_cost = cp.cost_usd / cp.items_done
        per_item_time = args.delay
        saved_items = args.crash_after
        write_line(
            out,
            f"saved by resuming: {saved_items} items not redone "
            f"(~{saved_items * per_item_time:.1f}s of model time, "
            f"${saved_items * per_item_cost:.4f} of tokens); total wall time {elapsed:.1f}s",
        )
    return 0 if result.phase == "Succeeded" else 1


# ---------------------------------------------------------------- cluster


def _api(args: argparse.Namespace) -> Any:
    try:
        from resumable._kubeapi import KubeApi
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise CliError(
            "cluster commands need the kubernetes client: pip install 'resumable-batch[operator]'"
        ) from exc
    missing = _missing_kubeconfig(args.kubeconfig)
    try:
        if missing:
            raise CliError(missing)
        return KubeApi.from_environment(kubeconfig=args.kubeconfig, context=args.context)
    except Exception as exc:
        local = Path(".resumable") / str(getattr(args, "name", None) or "")
        name = getattr(args, "name", None)
        hint = (
            f" (a local batch of that name keeps its state in {local}/status.json and its "
            f"workers' output in {local}/logs/: `resumable status {name} --local` reads it)"
            if name and (local / "status.json").is_file()
            else ""
        )
        why = " ".join(str(exc).split())  # one line: a YAML error spans several
        raise CliError(f"cannot load kubeconfig: {why}{hint}") from exc


def _missing_kubeconfig(option: str | None) -> str:
    """Which kubeconfig file does not exist, when that is why none can be loaded; else "".

    The kubernetes client says only "Invalid kube-config file. No configuration
    found." for a file that is not there.
    """
    if option:
        return "" if Path(option).expanduser().exists() else f"{option} does not exist"
    env = os.environ.get("KUBECONFIG", "")
    paths = [p for p in env.split(os.pathsep) if p]
    if paths:
        if any(Path(p).expanduser().exists() for p in paths):
            return ""
        if len(paths) == 1:
            return f"{paths[0]} (from KUBECONFIG) does not exist"
        return f"none of the files in KUBECONFIG exists: {env}"
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return ""  # in a pod: the service account's credentials
    default = Path("~/.kube/config").expanduser()
    if default.exists():
        return ""
    return f"{default} does not exist (give --kubeconfig, or set KUBECONFIG)"


def _namespace(args: argparse.Namespace) -> str:
    if args.namespace:
        return str(args.namespace)
    try:
        from kubernetes import config

        _, active = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=args.kubeconfig
        )
        if args.context:
            contexts, _ = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
                config_file=args.kubeconfig
            )
            active = next((c for c in contexts if c["name"] == args.context), active)
        return str(active.get("context", {}).get("namespace") or "default")
    except Exception:
        return "default"


class _BatchNotFoundError(CliError):
    """The batch does not exist (404)."""


def _get_batch(api: Any, ns: str, name: str) -> dict[str, Any]:
    from resumable._kubeapi import ApiError, batch_path

    try:
        result: dict[str, Any] = api.request("GET", batch_path(ns, name))
    except ApiError as exc:
        if exc.status == 404:
            raise _BatchNotFoundError(
                f'resumablebatch "{name}" not found in namespace "{ns}"'
            ) from None
        raise CliError(f"cannot read resumablebatch {ns}/{name}: {exc.message}") from None
    return result


def _patch_spec(api: Any, ns: str, name: str, spec: dict[str, Any]) -> None:
    from resumable._kubeapi import MERGE_PATCH, ApiError, batch_path

    _get_batch(api, ns, name)
    try:
        api.request("PATCH", batch_path(ns, name), body={"spec": spec}, content_type=MERGE_PATCH)
    except ApiError as exc:
        raise CliError(f"cannot update resumablebatch {ns}/{name}: {exc.message}") from None


def _row(obj: dict[str, Any]) -> list[str]:
    st = obj.get("status") or {}
    return [
        obj["metadata"]["name"],
        str(st.get("progress", "")),
        str(st.get("restarts", 0)),
        str(st.get("phase", "")),
    ]


def cmd_get(args: argparse.Namespace) -> int:
    """List batches with their progress."""
    api = _api(args)  # first: without the kubernetes client it says what to install
    from resumable._kubeapi import batch_path

    ns = _namespace(args)
    if args.name:
        items = [_get_batch(api, ns, args.name)]
    else:
        items = api.request("GET", batch_path(ns)).get("items", [])
        if not items:  # as kubectl says it (on stderr: stdout stays empty), also for no namespace
            print(f"No resources found in {ns} namespace.", file=sys.stderr)
            return 0
    rows = [["NAME", "PROGRESS", "RESTARTS", "PHASE"]] + [_row(o) for o in items]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0


def _one_based(completed: str) -> str:
    """Stored 0-based index ranges ("0-46,48") as the item numbers users see ("1-47,49")."""
    try:
        ranges = str(IndexSet.parse(completed))
    except ValueError:
        return completed  # not ours to fix here: show it as stored
    if not ranges:
        return "(none)"
    shifted = []
    for part in ranges.split(","):
        lo, sep, hi = part.partition("-")
        shifted.append(f"{int(lo) + 1}-{int(hi) + 1}" if sep else str(int(lo) + 1))
    return ",".join(shifted)


def _print_table(rows: list[list[str]], indent: str = "  ") -> None:
    """Rows in aligned columns two spaces apart; the last column (a message) is not padded."""
    if not rows:
        return
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        cells = [c.ljust(w) for c, w in zip(r, widths, strict=False)] + [r[-1]]
        print((indent + "  ".join(cells)).rstrip())


def cmd_describe(args: argparse.Namespace) -> int:
    """Checkpoint, restarts, skipped items, conditions and recent events."""
    api = _api(args)
    ns = _namespace(args)
    obj = _get_batch(api, ns, args.name)
    batch = ResumableBatch.model_validate(obj)
    st, cp = batch.status, batch.status.checkpoint
    print(f"Name:        {args.name}\nNamespace:   {ns}\nPhase:       {st.phase}")
    print(f"Progress:    {st.progress}\nRestarts:    {st.restarts} (+{st.disruptions} disruptions)")
    print(f"Run ID:      {batch.spec.run_id or '(none)'}\nActive pod:  {st.active_pod or '(none)'}")
    print("Checkpoint:")
    if cp.finished:
        print(f"  Next item:   (finished)\n  Completed:   all ({cp.items_done} items)")
    else:
        print(f"  Next item:   {cp.next_index + 1}\n  Completed:   {_one_based(cp.completed)}")
    print(f"  Attempt:     {cp.attempt}\n  Usage:       {cp.tokens} tokens, ${cp.cost_usd:.4f}")
    print(f"  Updated:     {cp.updated_at or '-'}\n  Fingerprint: {cp.fingerprint or '-'}")
    if cp.last_error:
        print(f"  Last error:  item {(cp.last_error_index or 0) + 1}: {cp.last_error}")
    if cp.context:
        print(f"  Context:     {json.dumps(cp.context)}")
    print("Skipped items:" + ("" if st.skipped else " (none)"))
    for s in st.skipped:
        print(f"  item {s.index + 1} after {s.attempts} attempt(s): {s.error}")
    print("Conditions:")
    _print_table([[c.type, c.status, c.reason, c.message] for c in st.conditions])
    events = api.request(
        "GET",
        f"/api/v1/namespaces/{ns}/events",
        query={
            # By uid too: a deleted batch's events outlive it, under the same name.
            "fieldSelector": f"involvedObject.name={args.name},involvedObject.kind=ResumableBatch,"
            f"involvedObject.uid={obj['metadata']['uid']}"
        },
    ).get("items", [])
    events.sort(
        key=lambda e: (
            e.get("lastTimestamp") or e.get("eventTime") or "",
            int(e.get("metadata", {}).get("resourceVersion") or 0),
        )
    )
    print("Events:" + ("" if events else " (none)"))
    _print_table(
        [
            [
                str(e.get("lastTimestamp") or e.get("eventTime") or ""),
                str(e.get("type", "")),
                str(e.get("reason", "")),
                str(e.get("message", "")),
            ]
            for e in events[-15:]
        ]
    )
    return 0


class _NoLogYetError(CliError):
    """The pod has no log to serve yet (not scheduled, or its container not started)."""


class _NoPodYetError(CliError):
    """The batch has not had a worker pod (yet)."""


def _worker_pods(api: Any, ns: str, name: str) -> list[dict[str, Any]]:
    """The batch's worker pods still kept, oldest attempt first."""
    from resumable_core.reconcile import LABEL_ATTEMPT, LABEL_BATCH

    pods: list[dict[str, Any]] = api.request(
        "GET", f"/api/v1/namespaces/{ns}/pods", query={"labelSelector": f"{LABEL_BATCH}={name}"}
    ).get("items", [])
    pods.sort(key=lambda p: int(p["metadata"].get("labels", {}).get(LABEL_ATTEMPT, "0")))
    return pods


def _pod_for_logs(api: Any, ns: str, name: str, attempt: int | None) -> str:
    """The pod whose log `logs` shows: the attempt's, else the current or latest one."""
    from resumable_core.reconcile import KEEP_FINISHED_PODS, LABEL_ATTEMPT

    obj = _get_batch(api, ns, name)
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
                f"keeps the pods of the last {KEEP_FINISHED_PODS} attempts that ended)"
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
            phase = (_get_batch(api, ns, name).get("status") or {}).get("phase")
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
    from resumable._kubeapi import _server_message

    query: list[tuple[str, str]] = []
    if follow:
        query.append(("follow", "true"))
    if tail is not None:
        query.append(("tailLines", str(tail)))
    method, url, headers = api.api_client.param_serialize(
        method="GET",
        resource_path=f"/api/v1/namespaces/{ns}/pods/{pod}/log",
        query_params=query,
        header_params={"Accept": "*/*"},
        auth_settings=["BearerToken"],
    )[:3]
    try:
        # Following: a connect timeout, but no read timeout (a quiet worker is not a
        # dead connection).
        timeout = (api.timeout, None) if follow else api.timeout
        response = api.api_client.call_api(
            method, url, header_params=headers, _request_timeout=timeout
        )
    except Exception as exc:  # transport errors: refused, reset, timed out
        raise CliError(f"cannot read logs of pod {pod}: {exc}") from None
    if response.status >= 400:  # the client does not raise for these: the body is an error
        reason = _server_message(response.read()) or str(response.reason)
        error = _NoLogYetError if response.status in (400, 404) else CliError
        raise error(f"cannot read logs of pod {pod}: {' '.join(reason.split())}")
    copied = 0
    chunks = response.response.stream(64 * 1024, decode_content=True)
    while True:
        try:
            chunk = next(chunks, b"")
        except Exception as exc:  # the connection broke mid-stream
            raise _StreamBrokenError(f"the log stream of pod {pod} broke: {exc}", copied) from None
        if not chunk:
            return copied
        if not copied and before_output is not None:
            before_output()
        out.write(chunk)  # a closed pipe (| head) raises BrokenPipeError to main()
        out.flush()
        copied += len(chunk)


def _pod_phase(api: Any, ns: str, pod: str) -> str:
    """The pod's phase, or "" when it is gone."""
    from resumable._kubeapi import ApiError

    try:
        obj = api.request("GET", f"/api/v1/namespaces/{ns}/pods/{pod}")
    except ApiError as exc:
        if exc.status == 404:
            return ""
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
        active = (_get_batch(api, ns, name).get("status") or {}).get("activePod")
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
            status = _get_batch(api, ns, name).get("status") or {}
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
    api = _api(args)
    ns = _namespace(args)
    try:
        if args.follow and args.attempt is None:
            pod = _first_pod_to_follow(api, ns, args.name, poll=args.interval)
            try:
                _follow(api, ns, args.name, pod, args.tail, poll=args.interval)
            except _BatchNotFoundError:
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


def ended_error(name: str, namespace: str | None, hint: hints.ResumeHint, verb: str) -> str:
    """Why `suspend`/`resume` (verb) does nothing to an ended batch, and what to do instead.

    ``namespace`` is the one the user gave (-n), if any: the rerun command repeats it.
    """
    rerun = f"`resumable rerun {name}{f' -n {namespace}' if namespace else ''}`"
    if hint.way is hints.Way.RERUN:
        return (
            f"resumablebatch/{name} has succeeded, so there is nothing to {verb}: "
            f"{rerun} starts it again from item 1"
        )
    why = ""
    if hint.reason:
        message = " ".join(hint.message.split())
        why = f" ({hint.reason}{': ' + message if message else ''})"
    at = f"its checkpoint (item {hint.item})"
    if hint.way is hints.Way.RESTARTS_RAISED:  # the operator has not acted on it yet
        way = (
            f"spec.retry.maxRestarts is already {hint.max_restarts}, above its "
            f"{hint.restarts} restarts: the operator goes on from {at} once it sees that; "
            f"or {rerun} starts over from item 1"
        )
    elif hint.way is hints.Way.RAISE_MAX_RESTARTS:
        way = (
            f"raise spec.retry.maxRestarts above {hint.restarts} (its restarts) to go on from "
            f"{at}, or {rerun} to start over from item 1"
        )
    elif hint.way is hints.Way.EDIT_SPEC:
        way = (
            f"fix the cause and edit its spec (e.g. the template) to go on from {at}, "
            f"or {rerun} to start over from item 1"
        )
    else:
        way = f"no edit of its spec reopens it: {rerun} starts it over from item 1"
    return f"resumablebatch/{name} has failed{why}, so there is nothing to {verb}: {way}"


def cmd_suspend(args: argparse.Namespace) -> int:
    """Set spec.suspend=true: the worker stops gracefully and saves its checkpoint."""
    api = _api(args)
    ns = _namespace(args)
    batch = ResumableBatch.model_validate(_get_batch(api, ns, args.name))
    hint = hints.resume_hint(batch.spec, batch.status)
    if hint is not None:
        raise CliError(ended_error(args.name, args.namespace, hint, "suspend"))
    _patch_spec(api, ns, args.name, {"suspend": True})
    print(f"resumablebatch/{args.name} suspended")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    """Set spec.suspend=false: a new worker resumes from the checkpoint."""
    api = _api(args)
    ns = _namespace(args)
    batch = ResumableBatch.model_validate(_get_batch(api, ns, args.name))
    hint = hints.resume_hint(batch.spec, batch.status)
    if hint is not None:
        raise CliError(ended_error(args.name, args.namespace, hint, "resume"))
    if not batch.spec.suspend:  # nothing to change: say so rather than "resumed"
        if batch.status.phase == "Suspended":
            print(
                f"resumablebatch/{args.name} is resuming already (spec.suspend is false; "
                "the operator starts its next worker)"
            )
        else:
            phase = batch.status.phase or "not reconciled yet"
            print(f"resumablebatch/{args.name} is not suspended ({phase}): nothing to resume")
        return 0
    _patch_spec(api, ns, args.name, {"suspend": False})
    print(f"resumablebatch/{args.name} resumed")
    return 0


def cmd_rerun(args: argparse.Namespace) -> int:
    """Change spec.runId: a clean rerun from item 1."""
    api = _api(args)
    ns = _namespace(args)
    run_id = args.run_id or time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    current = (_get_batch(api, ns, args.name).get("spec") or {}).get("runId", "")
    if run_id == current:
        raise CliError(
            f"resumablebatch/{args.name} already has runId {run_id!r}, so nothing would rerun: "
            "give a new --run-id, or none for a generated one"
        )
    _patch_spec(api, ns, args.name, {"runId": run_id, "suspend": False})
    print(f"resumablebatch/{args.name} rerun with runId {run_id}")
    return 0


#: `status --watch` says no operator seems to run the batch after this long without a status.
NOT_RECONCILED_HINT_AFTER = 10.0

#: `status` exit codes, as `resumable run`'s (see STATUS_EXIT_HELP).
EXIT_SUSPENDED = 130
STATUS_EXIT_HELP = (
    "Exit status: 0 succeeded, or (without --watch) not ended yet; 1 failed, or an error; "
    "130 suspended, or (--local) no `resumable run` is working on it any more, or --watch "
    "interrupted with Ctrl-C."
)


def _not_reconciled(status: ResumableBatchStatus) -> bool:
    """No operator has written this batch's status yet."""
    return not status.phase and status.observed_generation is None


def _no_operator_hint(name: str, ns: str) -> str:
    return (
        f"no operator has picked up resumablebatch/{name} yet; if that lasts, check that one "
        "is running (`kubectl get pods -n <operator namespace>`, resumable-system in the "
        f"README's install) and that it watches namespace {ns}"
    )


def _status_exit(phase: str, *, stopped: bool, interrupted: bool) -> int:
    if phase == "Succeeded":
        return 0
    if phase == "Failed":
        return 1
    if phase == "Suspended" or stopped or interrupted:
        return EXIT_SUSPENDED
    return 0  # pending, backing off or running: fine so far


def cmd_status(args: argparse.Namespace) -> int:
    """Progress of one batch; --watch keeps a live bar until it succeeds, fails or is suspended."""
    if not args.interval > 0:
        raise CliError(f"--interval must be more than 0 seconds, got {args.interval:g}")
    alive: Callable[[], bool] | None = None
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
    else:
        api = _api(args)
        ns = _namespace(args)
        hint = _no_operator_hint(args.name, ns)

        def read() -> ResumableBatchStatus:
            return ResumableBatch.model_validate(_get_batch(api, ns, args.name)).status

        total = ResumableBatch.model_validate(_get_batch(api, ns, args.name)).spec.total_items
    status = read()
    bar = ProgressBar(sys.stdout, total=total, interval=2.0)
    started = time.monotonic()
    hinted = False
    stopped = interrupted = False
    try:
        while True:
            bar.update(status)
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
        write_line(sys.stdout, bar.text)
    print(f"phase: {status.phase or '(not reconciled yet)'}")
    if hint and not hinted and _not_reconciled(status):
        print(hint)
    if alive is not None and status.phase not in hints.SETTLED_PHASES and not alive():
        stopped = True
        print("no `resumable run` is working on it: run it again to resume")
    return _status_exit(status.phase, stopped=stopped, interrupted=interrupted)


# ------------------------------------------------------------------- main


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


def build_parser(prog: str = "resumable") -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run batches that resume where they stopped: locally, or on Kubernetes "
        "with the resumable-batch operator.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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
    p.set_defaults(func=cmd_run)

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
        default=0.04,
        help="fake model seconds per item (0.04)",
    )
    p.add_argument(
        "--state-dir",
        help="keep the state here; must be new, empty or an earlier demo's "
        "(default: a temporary one, removed afterwards)",
    )
    p.set_defaults(func=cmd_demo)

    def cluster(
        name: str, help_: str, func: Any, *, needs_name: bool = True
    ) -> argparse.ArgumentParser:
        q = sub.add_parser(name, help=help_)
        if needs_name:
            q.add_argument("name", help="the ResumableBatch")
        q.add_argument("-n", "--namespace", help="namespace (default: the context's)")
        q.add_argument("--context", help="kubeconfig context (default: current)")
        q.add_argument(
            "--kubeconfig", help="kubeconfig file (default: KUBECONFIG or ~/.kube/config)"
        )
        q.set_defaults(func=func)
        return q

    q = cluster("get", "list batches with progress, restarts and phase", cmd_get, needs_name=False)
    q.add_argument("name", nargs="?", help="one batch")
    cluster("describe", "checkpoint, restarts, skipped items and events of a batch", cmd_describe)
    q = cluster("logs", "logs of the batch's current (or latest) worker pod", cmd_logs)
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
    cluster("suspend", "stop the worker gracefully (spec.suspend=true)", cmd_suspend)
    cluster("resume", "resume from the checkpoint (spec.suspend=false)", cmd_resume)
    q = cluster("rerun", "start a clean rerun from item 1 (new spec.runId)", cmd_rerun)
    q.add_argument("--run-id", help="the new runId (default: a timestamp)")
    q = cluster("status", "progress of a batch; --watch for a live bar", cmd_status)
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


def main(argv: list[str] | None = None) -> int:
    """Entry point of `resumable` and `kubectl-resumable`."""
    prog = Path(sys.argv[0]).name
    prog = "kubectl resumable" if prog.startswith("kubectl-") else "resumable"
    args = build_parser(prog).parse_args(argv)
    try:
        code: int = args.func(args)
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
        kubeapi = sys.modules.get("resumable._kubeapi")
        if kubeapi is None or not isinstance(exc, kubeapi.ApiError):
            raise
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
