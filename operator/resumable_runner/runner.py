"""The local runner behind ``resumable run``: a ResumableBatch on a laptop, no cluster.

The operator's own :func:`reconcile.decide` drives worker *subprocesses* instead
of pods: the first container's command and args run with its env plus the same
``RESUMABLE_*`` variables the operator injects (pointing the SDK at a local
store), so restarts, backoff, poison items, fencing, suspend, time windows
(spec.window: it waits outside them, and its events say until when) and
clear-on-completion behave exactly as in a cluster. The status lives in the
store directory's ``status.json`` beside the worker's checkpoint, written with
the same fenced JSON patches the operator sends to the API server. Reading the
manifest is :mod:`resumable_runner.manifest`'s (``load_manifest`` is re-exported).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TextIO

from resumable import LocalStore, atomic_write
from resumable import constants as names
from resumable.errors import ResumableError
from resumable.v1alpha1 import MAX_EXEC_STRING_BYTES, ResumableBatch, ResumableBatchStatus
from resumable_core import objects, patches
from resumable_core.jsonpatch import PatchTestFailedError, apply_patch
from resumable_core.policy.reopen import spec_digest
from resumable_core.reconcile import Decision, EventPlan, PodView, decide
from resumable_runner import outputs as local_outputs
from resumable_runner.manifest import ManifestError, check_name, load_manifest

#: How often the runner looks at its worker and the store.
POLL_SECONDS = 0.1
#: Held (flock) by the one `resumable run` that owns a state directory.
RUNNER_LOCK = "runner.lock"
#: The name of the batch whose state a directory holds.
BATCH_FILE = "batch-name"
#: Waits between tries of a busy runner lock (a status probe holds it for microseconds).
LOCK_RETRIES = (0.01, 0.02, 0.05, None)
#: Each attempt's output, as <name>-<attempt>.log.
LOGS_DIR = "logs"
#: The spec's digest and the generation it was given (see LocalRunner._generation).
GENERATION_FILE = "generation.json"
#: Where a container's volumeMounts live locally, under the state directory.
VOLUMES_DIR = "volumes"
#: The termination reason of a worker whose command could not be run (containerd's).
START_ERROR = "StartError"
#: Its exit code: what a shell returns for a command it cannot run.
CANNOT_RUN = 127


class LocalRunError(Exception):
    """A local run that cannot start or go on; the message says why, in one line."""


@dataclass
class LocalPod:
    """A worker subprocess standing in for a pod."""

    name: str
    attempt: int
    #: None when not even the process could be started (its exec failed).
    process: subprocess.Popen[str] | None
    grace: float
    deleting: bool = False
    kill_at: float | None = None
    slot: int | None = None
    #: Why the command could not be started: the exec's error (a pod's StartError).
    start_error: str = ""

    @property
    def live(self) -> bool:
        """True while the worker process runs."""
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: int) -> None:
        """Send a signal to the worker's process group (gone already is fine)."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)

    def view(self) -> PodView:
        """The pod as the decision sees it."""
        if self.start_error:
            # As the kubelet reports a container whose command could not be run.
            if self.live:
                return PodView(
                    self.name, self.attempt, "Running", deleting=self.deleting, slot=self.slot
                )
            return PodView(
                self.name,
                self.attempt,
                "Failed",
                exit_code=CANNOT_RUN,
                reason=START_ERROR,
                message=self.start_error,
                deleting=self.deleting,
                slot=self.slot,
            )
        assert self.process is not None
        code = self.process.poll()
        if code is None:
            return PodView(
                self.name, self.attempt, "Running", deleting=self.deleting, slot=self.slot
            )
        exit_code = 128 - code if code < 0 else code
        return PodView(
            self.name,
            self.attempt,
            "Succeeded" if exit_code == 0 else "Failed",
            exit_code=exit_code,
            reason="Completed" if exit_code == 0 else "Error",
            deleting=self.deleting,
            slot=self.slot,
        )


@dataclass
class RunResult:
    """How a local run ended."""

    phase: str
    status: ResumableBatchStatus
    events: list[EventPlan] = field(default_factory=list)
    attempts: int = 0


class LocalRunner:
    """Runs one batch to an end (Succeeded, Failed or Suspended) with subprocess workers."""

    def __init__(
        self,
        batch: ResumableBatch,
        directory: Path,
        *,
        on_event: Callable[[EventPlan], None] | None = None,
        on_output: Callable[[str, str], None] | None = None,
        on_tick: Callable[[ResumableBatchStatus], None] | None = None,
        extra_env: dict[str, str] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.batch = batch
        #: ``now`` for the decisions (a test may set the time of day).
        self.clock = clock or (lambda: datetime.now(UTC))
        self.store = LocalStore(directory)
        self.directory = directory
        self.on_event = on_event or (lambda e: None)
        self.on_output = on_output or (lambda pod, line: None)
        self.on_tick = on_tick or (lambda s: None)
        self.extra_env = extra_env or {}
        self.pods: dict[str, LocalPod] = {}
        self.events: list[EventPlan] = []
        self._suspend_requested = threading.Event()
        self._threads: list[threading.Thread] = []

    def request_suspend(self) -> None:
        """Stop gracefully at the next step (what Ctrl-C does); running again resumes."""
        self._suspend_requested.set()

    # ------------------------------------------------------------------ loop

    def run(self) -> RunResult:
        """Reconcile until the batch ends or is suspended.

        Raises LocalRunError when another runner owns the state directory or the
        directory cannot be used.
        """
        self.batch.metadata.uid = self.batch.metadata.uid or f"local-{self.batch.metadata.name}"
        self.batch.metadata.generation = self.batch.metadata.generation or 1
        self.batch.metadata.namespace = self.batch.metadata.namespace or "local"
        lock_fd = self._lock_directory()
        try:
            self.batch.metadata.generation = self._generation()
            container = self.batch.spec.template.spec.containers[0]
            local_outputs.record(
                self.batch,
                self.directory,
                self.local_paths(container.model_dump(by_alias=True, exclude_none=True)),
            )
            return self._loop()
        except BaseException:
            # Never leave a worker running behind a runner that is going away.
            self._stop_all()
            raise
        finally:
            os.close(lock_fd)  # releases the flock

    def _lock_directory(self) -> int:
        """Own the state directory for this run (flock), or say who does.

        Two runners on one directory would each take the other's worker for a
        lost pod and start a new attempt that fences it, redoing items forever.
        """
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.directory / RUNNER_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise LocalRunError(f"state directory {self.directory}: {exc.strerror or exc}") from exc
        try:
            for wait in LOCK_RETRIES:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if wait is None:
                        raise
                    time.sleep(wait)  # maybe only `resumable status` looking: try again
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise LocalRunError(
                f"state directory {self.directory} is in use by another `resumable run` "
                f"(pid {holder}); wait for it to end or stop it (Ctrl-C) first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            self._check_owner()
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _generation(self) -> int:
        """The batch's generation: one more each time the manifest's spec changed (lock held).

        The API server bumps metadata.generation on every spec change, and the
        decisions rely on it (a failed batch goes on from its checkpoint after a
        spec edit). Here the state directory keeps the spec's digest and the
        generation it was given.
        """
        digest = spec_digest(self.batch.spec, whole=True)
        path = self.directory / GENERATION_FILE
        try:
            recorded = json.loads(path.read_text())
            generation, seen = int(recorded["generation"]), str(recorded["spec"])
        except FileNotFoundError:
            # A state directory from before this file: the generation it last saw.
            status = self.store.load()
            observed = status.observed_generation if status is not None else None
            generation, seen = observed or 1, digest
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise LocalRunError(f"{path}: cannot read: {exc}") from exc
        if seen[: len(digest)] != digest:  # 0.2 kept the digest's 64 hex digits
            generation += 1
        atomic_write(path, json.dumps({"generation": generation, "spec": digest}).encode())
        return generation

    def _check_owner(self) -> None:
        """Refuse a state directory another batch's state is in (lock held)."""
        name = self.batch.metadata.name
        owner = self.directory / BATCH_FILE
        try:
            recorded = owner.read_text().strip()
        except FileNotFoundError:
            recorded = ""
        if recorded and recorded != name:
            raise LocalRunError(
                f"state directory {self.directory} holds batch {recorded!r}, not {name!r}: "
                "give this batch its own --state-dir"
            )
        if not recorded:
            owner.write_text(name + "\n")

    def _loop(self) -> RunResult:
        attempts = 0
        while True:
            if self._suspend_requested.is_set() and not self.batch.spec.suspend:
                self.batch.spec.suspend = True
            # Workers first, then the status (as the operator lists pods before it
            # reads the batch): a worker seen ended has made all its writes.
            views = [p.view() for p in self.pods.values()]
            status = self.store.load() or ResumableBatchStatus()
            self.batch.status = status
            decision = decide(self.batch, views, self.clock())
            try:
                write_status(self.store, status, decision)
            except PatchTestFailedError:
                continue  # the worker wrote in between: decide again on fresh state
            self._apply(decision)
            if decision.create_pod is not None:
                attempts += 1
            self.on_tick(decision.status)
            phase = decision.status.phase
            live = [p for p in self.pods.values() if p.live]
            if phase in names.PHASES_AT_REST and not live:
                self._join_output()
                return RunResult(phase, decision.status, list(self.events), attempts)
            self._wait(decision.requeue_after)

    def _wait(self, requeue_after: float | None) -> None:
        deadline = time.monotonic() + min(requeue_after if requeue_after is not None else 1.0, 1.0)
        while time.monotonic() < deadline:
            self._enforce_grace()
            current = {self.batch.status.active_pod} | {
                w.pod(self.batch.metadata.name) for w in self.batch.status.workers if w.started
            }
            if any(not p.live and not p.deleting for p in self.pods.values() if p.name in current):
                return
            if self._suspend_requested.is_set() and not self.batch.spec.suspend:
                return
            time.sleep(POLL_SECONDS)

    # ---------------------------------------------------------------- acting

    def _apply(self, decision: Decision) -> None:
        for name, graceful in decision.delete_pods:
            self._stop(name, graceful=graceful)
        if decision.create_pod is not None:
            self._start(decision)
        for plan in decision.events:
            self.events.append(plan)
            self.on_event(plan)

    def _start(self, decision: Decision) -> None:
        plan = decision.create_pod
        assert plan is not None
        if plan.name in self.pods:
            return
        pod = objects.build_pod(self.batch, plan)
        container = pod["spec"]["containers"][0]
        local = self.local_paths(container)
        argv = [local(a) for a in container_argv(container)]
        if not argv:
            raise LocalRunError(
                "spec.template.spec.containers[0]: command is required for `resumable run`"
            )
        env = dict(os.environ)
        for var in container.get("env", []):
            if "value" in var:
                env[var["name"]] = local(str(var["value"]))
        env.update(
            {
                names.ENV_STORE: "local",
                names.ENV_DIR: str(self.directory),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        grace = float(pod["spec"].get("terminationGracePeriodSeconds", 30))
        # The lifeline reports a failed exec of the command on this pipe; a
        # successful exec closes it (close-on-exec) with nothing written.
        report, report_w = os.pipe()
        process: subprocess.Popen[str] | None = None
        start_error = ""
        try:
            process = subprocess.Popen(
                with_lifeline(argv, report_w),
                env=env,
                cwd=container.get("workingDir"),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
                pass_fds=(report_w,) if LIFELINE_HERE else (),
            )
        except OSError as exc:  # E2BIG, or (not on Linux) the command itself
            start_error = f"cannot run {argv[0]!r}: {exc.strerror or exc}"
        finally:
            os.close(report_w)
        try:
            if process is not None:
                start_error = _read_all(report).decode(errors="replace").strip()
        finally:
            os.close(report)
        # Checked before the run, the command may have gone since, or fail to exec
        # (a bad #! line): the attempt ends with StartError, and decide() fails the
        # batch with the cause, as for a pod whose container could not start.
        self.pods[plan.name] = LocalPod(
            plan.name, plan.attempt, process, grace, start_error=start_error, slot=plan.slot
        )
        if process is None:
            return
        reader = threading.Thread(
            target=self._pump,
            args=(plan.name, process.stdout),
            daemon=True,
            name=f"out-{plan.name}",
        )
        reader.start()
        self._threads.append(reader)

    def local_paths(self, container: dict[str, Any]) -> Callable[[str], str]:
        """Map a path under one of the container's volumeMounts into the state directory.

        In a pod, ``/data`` may be a mounted volume; on a laptop it is a directory
        at the root that a user cannot create. Mount ``M`` of volume ``V`` becomes
        ``<state>/volumes/V``, and an env value or argument that is ``M`` or
        starts with ``M/`` is rewritten to match, so outputs land beside the state.
        """
        mounts = sorted(
            (
                (str(m["mountPath"]).rstrip("/") or "/", str(m["name"]))
                for m in container.get("volumeMounts") or []
                if m.get("mountPath") and m.get("name")
            ),
            key=lambda mount: -len(mount[0]),  # the deepest mount wins
        )

        def local(value: str) -> str:
            for path, volume in mounts:
                if value == path or value.startswith(path + "/"):
                    return str(self.directory / VOLUMES_DIR / volume) + value[len(path) :]
            return value

        return local

    def _pump(self, name: str, stream: IO[str] | None) -> None:
        if stream is None:
            return
        log = self.directory / LOGS_DIR
        log.mkdir(parents=True, exist_ok=True)
        echo = True
        with open(log / f"{name}.log", "a") as sink:
            for line in stream:
                sink.write(line)
                sink.flush()
                if echo:
                    try:
                        self.on_output(name, line.rstrip("\n"))
                    except (BrokenPipeError, ValueError):
                        # The terminal went away (| head, closed stream): keep
                        # draining into the log so the worker never blocks on a full pipe.
                        echo = False

    def _stop(self, name: str, *, graceful: bool) -> None:
        pod = self.pods.get(name)
        if pod is None or not pod.live or pod.deleting:
            return
        pod.deleting = True
        if graceful:
            pod.signal(signal.SIGTERM)
            pod.kill_at = time.monotonic() + pod.grace
        else:
            pod.signal(signal.SIGKILL)

    def _enforce_grace(self) -> None:
        now = time.monotonic()
        for pod in self.pods.values():
            if pod.kill_at is not None and now >= pod.kill_at and pod.live:
                pod.signal(signal.SIGKILL)
                pod.kill_at = None

    def _stop_all(self) -> None:
        """SIGTERM every live worker, wait out its grace period, then SIGKILL it."""
        for name in list(self.pods):
            self._stop(name, graceful=True)
        while any(p.live for p in self.pods.values()):
            self._enforce_grace()
            time.sleep(POLL_SECONDS)
        self._join_output()

    def _join_output(self) -> None:
        for thread in self._threads:
            thread.join(timeout=2)

    def stop_now(self) -> None:
        """SIGKILL every live worker, even one already told to stop (a second Ctrl-C)."""
        for pod in self.pods.values():
            if pod.live:
                pod.signal(signal.SIGKILL)
                pod.kill_at = None

    def kill_active(self, sig: int = signal.SIGKILL) -> None:
        """Send a signal to the running worker (tests and demos inject faults with it)."""
        for pod in self.pods.values():
            if pod.live and not pod.deleting:
                pod.signal(sig)


def write_status(store: LocalStore, read: ResumableBatchStatus, decision: Decision) -> None:
    """Write a decision's status into the local store, fenced as in a cluster.

    ``read`` is the status the decision was made from. The patch
    (:func:`resumable_core.patches.decision_patch`) is applied under the store's
    lock to what is stored now, so a worker write since the read (a new position,
    a finished checkpoint) refuses it with PatchTestFailedError, as the API server
    would with a 422: the caller decides again.
    """
    with store.locked():
        before = patches.dump_status(read) if store.status_path.exists() else None
        ops = patches.decision_patch(before, decision)
        if not ops:
            return
        current = store.load() or ResumableBatchStatus()
        patched = apply_patch({"status": patches.dump_status(current)}, ops)
        store.write_status(ResumableBatchStatus.model_validate(patched["status"]))


def read_local_status(directory: Path, name: str) -> ResumableBatchStatus:
    """The status a local run of batch ``name`` keeps in directory, for `resumable status`.

    Raises LocalRunError naming the file when there is none, it is another
    batch's, or it cannot be read.
    """
    status_file = directory / "status.json"
    try:
        recorded = (directory / BATCH_FILE).read_text().strip()
    except FileNotFoundError:
        recorded = ""
    except OSError as exc:
        raise LocalRunError(f"{directory / BATCH_FILE}: {exc.strerror or exc}") from exc
    if recorded and recorded != name:
        raise LocalRunError(f"state directory {directory} holds batch {recorded!r}, not {name!r}")
    try:
        status = LocalStore(directory).load()
    except ResumableError as exc:
        raise LocalRunError(str(exc)) from exc
    if status is None:
        raise LocalRunError(
            f"{status_file}: no such file: batch {name!r} has not run here "
            "(`resumable run` keeps its state in .resumable/<name>/, or its --state-dir)"
        )
    return status


def local_logs(directory: Path, name: str) -> dict[int, Path]:
    """The attempts' output files a local run of batch ``name`` kept, by attempt number."""
    found: dict[int, Path] = {}
    pattern = re.compile(rf"{re.escape(name)}-(\d+)\.log")
    with contextlib.suppress(FileNotFoundError):
        for path in (directory / LOGS_DIR).iterdir():
            match = pattern.fullmatch(path.name)
            if match:
                found[int(match.group(1))] = path
    return dict(sorted(found.items()))


def runner_alive(directory: Path) -> bool:
    """True while a `resumable run` holds the state directory's lock.

    The lock, not the pid written in it: a pid outlives its process and may be
    given to another. Probing takes a shared lock for a moment; a runner starting
    just then tries again before it calls the directory busy (_lock_directory).
    """
    try:
        fd = os.open(directory / RUNNER_LOCK, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases the probe's lock, if it got one
    return False


#: Starts a worker so that it gets SIGTERM when this process dies (Linux only).
LIFELINE = Path(__file__).with_name("_lifeline.py")
#: Where the kernel can signal a parent's death (prctl), so workers get a lifeline.
LIFELINE_HERE = sys.platform.startswith("linux")


def with_lifeline(argv: list[str], report_fd: int) -> list[str]:
    """argv, started through _lifeline.py where the kernel can signal a parent's death.

    A runner killed with SIGKILL cannot suspend its worker; without this the
    worker would run on with nobody reading its output, and its next print
    would fail as a broken pipe, blamed on whatever item it was on. The
    lifeline writes why the command's exec failed to ``report_fd``.
    """
    if not LIFELINE_HERE:
        return argv  # Popen itself raises when the exec fails
    return [sys.executable, "-I", "-S", str(LIFELINE), str(os.getpid()), str(report_fd), *argv]


def _read_all(fd: int) -> bytes:
    """Everything written to a pipe until its last writer closes it."""
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    return b"".join(chunks)


def container_argv(container: dict[str, Any]) -> list[str]:
    """The command line a container runs (command, then args), with ``python`` as ours."""
    argv = [str(a) for a in (container.get("command") or [])] + [
        str(a) for a in (container.get("args") or [])
    ]
    if argv and argv[0] in ("python", "python3"):
        argv[0] = sys.executable  # the interpreter that has this package, as the image has
    return argv


def check_runnable(batch: ResumableBatch) -> tuple[list[str], list[str]]:
    """``(errors, notes)`` for running the first container here, before anything runs.

    Errors: a command or workingDir this machine does not have. Notes: what runs
    differently than in a pod (volume mounts, values from Secrets or ConfigMaps).
    Each names the manifest field.
    """
    container = batch.spec.template.spec.containers[0].model_dump(by_alias=True, exclude_none=True)
    field = "spec.template.spec.containers[0]"
    errors: list[str] = []
    notes: list[str] = []
    workdir = container.get("workingDir")
    if workdir and not Path(workdir).is_dir():
        errors.append(f"{field}.workingDir: {workdir}: no such directory on this machine")
    argv = container_argv(container)
    if argv:
        program = argv[0]
        if "/" in program:
            target: Path | None = Path(workdir or ".") / program  # an absolute one stays
        else:
            found = shutil.which(program) or shutil.which(program, mode=os.F_OK)
            target = Path(found) if found else None
        why = cannot_exec(target) if target is not None else "command not found"
        if why:
            errors.append(f"{field}.command: {program!r}: {why}")
    errors.extend(exec_size_errors(container, field))
    mounts = [str(m.get("mountPath")) for m in container.get("volumeMounts") or []]
    if mounts:
        notes.append(
            f"{field}.volumeMounts ({', '.join(mounts)}) are directories under the state "
            f"directory's {VOLUMES_DIR}/ here; paths under them in env and args are rewritten"
        )
    ignored = [f"env[{v['name']}].valueFrom" for v in container.get("env", []) if "valueFrom" in v]
    if container.get("envFrom"):
        ignored.append("envFrom")
    if ignored:
        notes.append(
            f"{field}: {', '.join(ignored)} ignored here (no Secrets or ConfigMaps locally); "
            "export those variables in your shell instead"
        )
    return errors, notes


#: How a program file starts: ELF (Linux), Mach-O and universal binaries (macOS).
PROGRAM_MAGIC = (
    b"\x7fELF",
    b"\xfe\xed\xfa\xce",
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",
)


def cannot_exec(target: Path) -> str:
    """Why exec would refuse to run ``target`` ("" when it would run it).

    Not a file, not executable, neither a program nor a script with a ``#!`` line
    (Exec format error), or a ``#!`` interpreter this machine does not have.
    """
    if not target.is_file():
        return "command not found"
    if not os.access(target, os.X_OK):
        return (
            f"{target} is not executable: chmod +x it, or name its interpreter first "
            "(command: [python, script.py])"
        )
    try:
        with target.open("rb") as f:
            head = f.read(256)
    except OSError as exc:
        return f"{target}: {exc.strerror or exc}"
    if head.startswith(b"#!"):
        line = head[2:].split(b"\n", 1)[0].decode(errors="replace").split()
        if not line:
            return f"{target}: its #! line names no interpreter"
        interpreter = Path(line[0])
        if not (interpreter.is_file() and os.access(interpreter, os.X_OK)):
            return f"{target}: its #! interpreter {interpreter} is not on this machine"
        program = line[1] if interpreter.name == "env" and len(line) > 1 else "-"
        if not program.startswith("-") and shutil.which(program) is None:
            return f"{target}: its #! line runs {program!r}, not found on this PATH"
        return ""
    if head.startswith(PROGRAM_MAGIC):
        return ""
    return (
        f"{target} is neither a program nor a script with a #! line (exec would fail: "
        "Exec format error)"
    )


def exec_size_errors(container: dict[str, Any], field: str) -> list[str]:
    """What makes exec refuse the container's command line and environment as too long.

    Linux takes at most MAX_EXEC_STRING_BYTES in one argument or ``NAME=value``
    string (a pod's container hits the same limit when it starts), and all of
    them together, with this shell's environment the runner passes on, within
    ARG_MAX. Each error names the field.
    """
    errors = []
    strings: list[bytes] = []
    for part in ("command", "args"):
        for i, arg in enumerate(container.get(part) or []):
            data = str(arg).encode()
            strings.append(data)
            if len(data) + 1 > MAX_EXEC_STRING_BYTES:
                errors.append(f"{field}.{part}[{i}]: {_too_long(len(data) + 1)}")
    for i, var in enumerate(container.get("env") or []):
        data = f"{var.get('name')}={var.get('value', '')}".encode()
        strings.append(data)
        if len(data) + 1 > MAX_EXEC_STRING_BYTES:
            errors.append(f"{field}.env[{i}] ({var.get('name')}): {_too_long(len(data) + 1)}")
    if errors:
        return errors
    strings += [f"{k}={v}".encode() for k, v in os.environ.items()]
    pointer = 8  # argv and envp hold a pointer to each string
    total = sum(len(data) + 1 + pointer for data in strings)
    with contextlib.suppress(ValueError, OSError):
        limit = os.sysconf("SC_ARG_MAX")
        if limit > 0 and total > limit:
            errors.append(
                f"{field}: command, args and env take {total // 1024} KiB at exec with this "
                f"shell's environment, over the {limit // 1024} KiB this machine takes "
                "(ARG_MAX): pass large data in a file instead"
            )
    return errors


def _too_long(size: int) -> str:
    """The error for one exec string of ``size`` bytes."""
    return (
        f"{size // 1024} KiB, over the {MAX_EXEC_STRING_BYTES // 1024} KiB Linux takes in one "
        "argument or environment string at exec (MAX_ARG_STRLEN), in a pod as here: "
        "pass large data in a file (a ConfigMap volume) instead"
    )


def write_line(stream: TextIO, text: str) -> None:
    """Print a line and flush (worker output and events interleave with the bar)."""
    stream.write(text + "\n")
    stream.flush()


__all__ = [
    "LocalRunError",
    "LocalRunner",
    "ManifestError",
    "RunResult",
    "check_name",
    "check_runnable",
    "load_manifest",
    "write_line",
    "write_status",
]
