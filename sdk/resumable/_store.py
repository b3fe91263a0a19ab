"""Where checkpoints and outputs live: the store interfaces and the local, on-disk store.

A :class:`CheckpointStore` keeps the batch status (the checkpoint and what the
operator or the local runner recorded beside it) and refuses fenced writes; an
:class:`OutputStore` keeps one value per item or step, keyed so a redo overwrites.
:class:`LocalStore` is both, in one directory: ``status.json`` plus ``outputs/``
and ``steps/``. Every file is written atomically: temp file, fsync, rename,
directory fsync. Used by :mod:`resumable._run`, the local runner and the CLI.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import itertools
import json
import os
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, cast

from pydantic import ValidationError

from resumable._errors import CorruptCheckpointError, FencedError
from resumable.v1alpha1 import Checkpoint, ResumableBatchStatus

STATUS_FILE = "status.json"
LOCK_FILE = ".lock"
OUTPUTS_DIR = "outputs"
STEPS_DIR = "steps"
INFLIGHT_FILE = ".inflight"


class CheckpointStore(Protocol):
    """Keeps the status of one batch and enforces fencing on checkpoint writes."""

    def describe(self) -> str:
        """Where the checkpoint lives, for messages."""
        ...

    def load(self) -> ResumableBatchStatus | None:
        """The saved status, or None when nothing was ever saved."""
        ...

    def claim(self, attempt: int | None) -> tuple[ResumableBatchStatus, int]:
        """Take ownership for an attempt (the next one when None); FencedError if older."""
        ...

    def save_checkpoint(
        self,
        checkpoint: Checkpoint,
        *,
        progress: str,
        expect_attempt: int,
        expect_next: int,
        final: bool = False,
    ) -> None:
        """Replace the checkpoint if the stored one still has this attempt and position.

        Raises FencedError when a newer attempt owns the batch or the position moved.
        """
        ...


class OutputStore(Protocol):
    """Keeps item outputs and step results; writing the same key again overwrites."""

    def put(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable value under key (not yet durable)."""
        ...

    def get(self, key: str) -> Any | None:
        """The value stored under key, or None."""
        ...

    def keys(self) -> list[str]:
        """Every stored key."""
        ...

    def sync(self) -> None:
        """Make every value put so far durable. Called before a checkpoint covers them."""
        ...


def fsync_dir(path: Path) -> None:
    """Flush a directory entry (a rename) to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_temp_serial = itertools.count()


def atomic_write(
    path: Path | str, data: bytes, *, durable: bool = True, dir_fd: int | None = None
) -> None:
    """Write data to path atomically: temp file, fsync, rename, directory fsync.

    The temp name is unique per process and call (pid and a counter) and made
    with plain os calls: this runs once per item, where mkstemp's random names and
    a buffered file object cost more than the write itself.
    """
    parent, name = os.path.split(path)
    tmp = os.path.join(parent, f".{name}.{os.getpid()}-{next(_temp_serial)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        if dir_fd is not None:
            os.fsync(dir_fd)
        else:
            fsync_dir(Path(parent))


def _load_syncfs() -> Callable[[int], int] | None:
    """Linux's syncfs(2) from libc, or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        func = ctypes.CDLL(None, use_errno=True).syncfs
    except (AttributeError, OSError):
        return None
    func.argtypes = [ctypes.c_int]
    func.restype = ctypes.c_int
    return cast("Callable[[int], int]", func)


_syncfs = _load_syncfs()

#: Above this many unsynced files one syncfs(2) replaces the per-file fsyncs.
SYNCFS_THRESHOLD = 8


def _read_json(path: Path) -> Any:
    """Read a JSON file, naming the file in any error."""
    try:
        return json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptCheckpointError(f"{path}: cannot read checkpoint: {exc}") from exc


class DirectoryOutputs:
    """Outputs as one JSON file per key under a directory (a mounted volume in a pod)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._unsynced: list[Path] = []
        self._made = False
        self._inflight_fd: int | None = None

    def _path(self, key: str) -> Path:
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"bad output key {key!r}")
        return self.root / f"{key}.json"

    def put(self, key: str, value: Any) -> None:
        """Store value under key; durable at the next :meth:`sync`."""
        if not self._made:
            self.root.mkdir(parents=True, exist_ok=True)
            self._made = True
        path = self._path(key)
        data = json.dumps(value, sort_keys=True, default=str).encode()
        atomic_write(path, data, durable=False)
        self._unsynced.append(path)

    def get(self, key: str) -> Any | None:
        """The value under key, or None when absent."""
        path = self._path(key)
        if not path.exists():
            return None
        try:
            return json.loads(path.read_bytes())
        except (OSError, json.JSONDecodeError) as exc:
            raise CorruptCheckpointError(f"{path}: cannot read output: {exc}") from exc

    def keys(self) -> list[str]:
        """Every stored key, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name[: -len(".json")] for p in self.root.glob("*.json"))

    def mark_inflight(self, index: int) -> None:
        """Note the item being worked on (no fsync: it must survive the process, not the node)."""
        if self._inflight_fd is None:
            self.root.mkdir(parents=True, exist_ok=True)
            self._made = True
            self._inflight_fd = os.open(self.root / INFLIGHT_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        os.pwrite(self._inflight_fd, f"{index:<20d}\n".encode(), 0)

    def read_inflight(self) -> int | None:
        """The item the previous process was working on when it stopped, if recorded."""
        try:
            return int((self.root / INFLIGHT_FILE).read_text().strip())
        except (OSError, ValueError):
            return None

    def clear(self) -> None:
        """Remove every stored value (steps of a finished run)."""
        if self.root.is_dir():
            for path in self.root.glob("*.json"):
                path.unlink(missing_ok=True)
        self._unsynced.clear()

    def sync(self) -> None:
        """fsync every file written since the last sync, then the directory."""
        if not self._unsynced:
            return
        if _syncfs is not None and len(self._unsynced) > SYNCFS_THRESHOLD:
            # One filesystem-wide flush instead of one journal commit per file: with
            # the default policy a write covers ~1000 outputs of 1 ms items, and
            # fsyncing them one by one costs more than the items themselves.
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
            try:
                if _syncfs(fd) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"syncfs {self.root}: {os.strerror(err)}")
            finally:
                os.close(fd)
            self._unsynced.clear()
            return
        for path in self._unsynced:
            with contextlib.suppress(FileNotFoundError):
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        fsync_dir(self.root)
        self._unsynced.clear()


class LocalStore:
    """A batch's whole state in one directory: status.json, outputs/ and steps/.

    A missing directory or file means a fresh start; a corrupt file is a
    CorruptCheckpointError naming it, never a silent restart from zero.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.status_path = self.root / STATUS_FILE
        self.outputs = DirectoryOutputs(self.root / OUTPUTS_DIR)
        self.steps = DirectoryOutputs(self.root / STEPS_DIR)
        self._seen: tuple[int, int] | None = None
        self._seen_status: ResumableBatchStatus | None = None
        self._lock_fd: int | None = None
        self._root_fd: int | None = None  # opened with the lock; fsynced after each rename
        self._status_str = str(self.status_path)
        self._thread_lock = threading.Lock()

    def describe(self) -> str:
        """The status file's path."""
        return str(self.status_path)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store's exclusive lock (between processes) for a read-modify-write.

        The lock file stays open for the store's lifetime (every checkpoint write
        takes the lock; reopening it each time cost as much as the JSON work), so a
        thread lock keeps threads sharing this object apart as flock cannot.
        """
        with self._thread_lock:
            if self._lock_fd is None:
                self.root.mkdir(parents=True, exist_ok=True)
                self._lock_fd = os.open(
                    self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644
                )
                weakref.finalize(self, os.close, self._lock_fd)  # no fd outlives the store
                self._root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                weakref.finalize(self, os.close, self._root_fd)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def load(self) -> ResumableBatchStatus | None:
        """The saved status, or None when the store is empty."""
        if not self.status_path.exists():
            return None
        raw = _read_json(self.status_path)
        try:
            return ResumableBatchStatus.model_validate(raw)
        except ValidationError as exc:
            raise CorruptCheckpointError(
                f"{self.status_path}: not a valid checkpoint: {exc.errors()[0]['msg']} "
                f"at {'.'.join(str(p) for p in exc.errors()[0]['loc'])}"
            ) from exc

    def write_status(self, status: ResumableBatchStatus) -> None:
        """Replace the whole status (the local runner's write; hold :meth:`locked`)."""
        data = status.model_dump_json(by_alias=True, exclude_none=True)
        atomic_write(self._status_str, data.encode(), dir_fd=self._root_fd)
        self._remember()

    def _remember(self) -> None:
        st = os.stat(self._status_str)
        self._seen = (st.st_ino, st.st_mtime_ns)

    def save_checkpoint(
        self,
        checkpoint: Checkpoint,
        *,
        progress: str,
        expect_attempt: int,
        expect_next: int,
        final: bool = False,
    ) -> None:
        """Fenced replace of the checkpoint (see :class:`CheckpointStore`)."""
        with self.locked():
            status = self._current_for_write()
            stored = status.checkpoint
            if stored.attempt != expect_attempt:
                raise FencedError(
                    f"{self.status_path}: attempt {expect_attempt} was replaced by attempt "
                    f"{stored.attempt}; this worker stops without writing"
                )
            if stored.next_index != expect_next:
                raise FencedError(
                    f"{self.status_path}: the position moved to {stored.next_index} "
                    f"(expected {expect_next}); this worker stops without writing"
                )
            self._seen = None
            status.checkpoint = checkpoint.model_copy()  # the caller may reuse its object
            status.progress = progress
            self.write_status(status)
            self._seen_status = status

    def _current_for_write(self) -> ResumableBatchStatus:
        """The stored status; re-read only if another process wrote since our last write."""
        if self._seen is not None and self._seen_status is not None:
            try:
                st = os.stat(self.status_path)
            except FileNotFoundError:
                st = None
            if st is not None and (st.st_ino, st.st_mtime_ns) == self._seen:
                return self._seen_status
        return self.load() or ResumableBatchStatus()

    def claim(self, attempt: int | None) -> tuple[ResumableBatchStatus, int]:
        """Take ownership for an attempt (the next one when None); return the status and it.

        Raises FencedError when a newer attempt already owns the store.
        """
        with self.locked():
            status = self.load() or ResumableBatchStatus()
            stored = status.checkpoint.attempt
            if attempt is None:
                attempt = stored + 1
            elif attempt < stored:
                raise FencedError(
                    f"{self.status_path}: attempt {attempt} is older than attempt {stored}, "
                    "which owns this batch; this worker stops without writing"
                )
            if attempt != stored or not self.status_path.exists():
                status.checkpoint.attempt = attempt
                self.write_status(status)
            self._seen_status = status
            return status.model_copy(deep=True), attempt
