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
import errno
import fcntl
import itertools
import json
import mmap
import os
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Any, Protocol, cast

from pydantic import ValidationError

from resumable.errors import ConfigError, CorruptCheckpointError, FencedError
from resumable.v1alpha1 import Checkpoint, ResumableBatchStatus

STATUS_FILE = "status.json"
LOCK_FILE = ".lock"
OUTPUTS_DIR = "outputs"
STEPS_DIR = "steps"
INFLIGHT_FILE = ".inflight"
#: A random id made with a store's first status: step results are kept under it.
INCARNATION_FILE = ".incarnation"
#: The running attempt's live item count (see LiveProgress), beside status.json.
PROGRESS_FILE = ".progress"
#: The marker's size: the index left-aligned in 20 characters, then a newline.
INFLIGHT_SIZE = 21
#: A status temp file older than this when a worker claims the store is a dead writer's.
ORPHAN_TEMP_SECONDS = 60


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


def _close_all(fds: list[int]) -> None:
    """Close and forget every descriptor in fds."""
    while fds:
        os.close(fds.pop())


def close_when_collected(owner: object, fd: int) -> None:
    """Close fd when owner is garbage-collected, but not at interpreter exit.

    A finalizer registered this way would otherwise run in atexit order, possibly
    before the run's own exit handler flushes through this very descriptor; at
    exit the kernel closes it anyway.
    """
    weakref.finalize(owner, os.close, fd).atexit = False


def _write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written (one call for anything small)."""
    written = os.write(fd, data)
    if written < len(data):
        view = memoryview(data)[written:]
        while view:
            view = view[os.write(fd, view) :]


def _replace(
    path: Path | str, data: bytes, *, durable: bool, dir_fd: int | None, tmp: str | None
) -> int:
    """atomic_write's steps, returning the new file's still-open descriptor."""
    if tmp is None:
        parent, name = os.path.split(path)
        tmp = os.path.join(parent, f".{name}.{os.getpid()}-{next(_temp_serial)}.tmp")
    fd = -1
    try:
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600, dir_fd=dir_fd
        )
        _write_all(fd, data)
        if durable:
            os.fsync(fd)
        os.replace(tmp, path, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    try:
        if durable:
            if dir_fd is not None:
                os.fsync(dir_fd)
            else:
                fsync_dir(Path(os.path.dirname(path)))
    except BaseException:
        os.close(fd)
        raise
    return fd


def atomic_write(
    path: Path | str,
    data: bytes,
    *,
    durable: bool = True,
    dir_fd: int | None = None,
    tmp: str | None = None,
) -> None:
    """Write data to path atomically: temp file, fsync, rename, directory fsync.

    With ``dir_fd``, the directory that is fsynced, ``path`` and ``tmp`` may be
    names relative to it (as with openat(2)), which spares the kernel a path walk
    per call. The temp name is unique per process and call (pid and a counter)
    unless the caller, holding a lock, passes its own ``tmp`` beside ``path``.
    Plain os calls throughout: this runs once per item, where mkstemp's random
    names and a buffered file object cost more than the write itself.
    """
    os.close(_replace(path, data, durable=durable, dir_fd=dir_fd, tmp=tmp))


#: json.dumps(value, sort_keys=True, allow_nan=False) without building an encoder per
#: call: sorted keys make a redo write the same bytes; a value JSON can't hold (a set,
#: NaN) raises rather than being stored as a string or a bare NaN (resumable._run
#: refuses them where they are set, naming the item or step).
_encode_output = json.JSONEncoder(sort_keys=True, allow_nan=False).encode

#: Where the O_TMPFILE path cannot work, the errors that say so (rather than a fault):
#: opening one where the kernel or filesystem has none...
_NO_TMPFILE = {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL}
#: ...and linking it through /proc/self/fd where /proc is not mounted.
_NO_PROC_LINK = {errno.ENOENT, errno.EXDEV, errno.EOPNOTSUPP}


def create_new(name: str, data: bytes, *, dir_fd: int) -> bool | None:
    """Create ``name`` under ``dir_fd`` holding data, atomically, if it does not exist yet.

    The data goes to an anonymous file (O_TMPFILE) that is linked under its name
    once complete, so the name never shows a partial file: the same promise as a
    temp file and a rename, with one directory entry made instead of two. Not
    durable: sync the directory's files before anything depends on it. Returns
    False when the name already exists (the caller replaces it by rename) and
    None where this filesystem or platform has no O_TMPFILE.
    """
    flags = getattr(os, "O_TMPFILE", 0)
    if not flags:
        return None
    try:
        fd = os.open(".", flags | os.O_WRONLY | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in _NO_TMPFILE:
            return None
        raise
    try:
        _write_all(fd, data)
        # linkat(AT_SYMLINK_FOLLOW) through /proc: no privilege needed, unlike AT_EMPTY_PATH.
        os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=dir_fd, follow_symlinks=True)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno in _NO_PROC_LINK:
            return None
        raise
    finally:
        os.close(fd)
    return True


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


#: Outputs held in memory before their files are written: at most this many...
MAX_PENDING_FILES = 1024
#: ...or this many bytes, whichever comes first.
MAX_PENDING_BYTES = 8 << 20


class DirectoryOutputs:
    """Outputs as one JSON file per key under a directory (a mounted volume in a pod).

    A put encodes the value at once and keeps it in memory; the files are created
    together just before the next :meth:`sync` (which the run calls before every
    checkpoint write), or sooner once MAX_PENDING_FILES or MAX_PENDING_BYTES is
    reached. No position covers an output before its file exists and is synced,
    so a crash loses only outputs their items will be redone for, as it would
    with a file per put. Creating the files in one tight loop costs a fraction of
    a file creation between two items, whose kernel paths have gone cold.
    The directory is opened once and every call works relative to it.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._pending: dict[str, bytes] = {}  # file name -> contents, not yet written
        self._pending_bytes = 0
        self._unsynced: list[str] = []  # file names written since the last sync
        self._dir_fd: int | None = None
        self._inflight_map: mmap.mmap | None = None  # the marker file, mapped shared
        self._inflight_fd: int | None = None  # where it cannot be mapped: pwrite to this
        self._tmpfile = True  # until create_new says this filesystem has no O_TMPFILE

    def _open_dir(self) -> int:
        """The directory's descriptor, creating the directory on first use."""
        if self._dir_fd is None:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            close_when_collected(self, fd)  # no fd outlives the store
            self._dir_fd = fd
        return self._dir_fd

    @staticmethod
    def _name(key: str) -> str:
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"bad output key {key!r}")
        return f"{key}.json"

    def put(self, key: str, value: Any) -> None:
        """Store value under key; durable at the next :meth:`sync`."""
        name = self._name(key)
        data = _encode_output(value).encode()
        self._pending[name] = data  # a redo before the files are written replaces it
        self._pending_bytes += len(data)
        if len(self._pending) >= MAX_PENDING_FILES or self._pending_bytes >= MAX_PENDING_BYTES:
            self.write_pending()

    def write_pending(self) -> None:
        """Create the files of every pending put (not yet durable: see :meth:`sync`)."""
        if not self._pending:
            return
        dir_fd = self._open_dir()
        for name, data in self._pending.items():
            # A first write of a key (the usual case) links a finished anonymous file;
            # a redo, or a filesystem without O_TMPFILE, replaces by temp file and rename.
            created = create_new(name, data, dir_fd=dir_fd) if self._tmpfile else None
            if created is None:
                self._tmpfile = False
            if not created:
                atomic_write(name, data, durable=False, dir_fd=dir_fd)
            self._unsynced.append(name)
        self._pending.clear()
        self._pending_bytes = 0

    def get(self, key: str) -> Any | None:
        """The value under key, or None when absent."""
        name = self._name(key)
        pending = self._pending.get(name)
        if pending is not None:
            return json.loads(pending)
        path = self.root / name
        if not path.exists():
            return None
        try:
            return json.loads(path.read_bytes())
        except (OSError, json.JSONDecodeError) as exc:
            raise CorruptCheckpointError(f"{path}: cannot read output: {exc}") from exc

    def keys(self) -> list[str]:
        """Every stored key, sorted (pending puts included)."""
        names = set(self._pending)
        if self.root.is_dir():
            names.update(p.name for p in self.root.glob("*.json"))
        return sorted(name[: -len(".json")] for name in names)

    def mark_inflight(self, index: int) -> None:
        """Note the item being worked on (no fsync: it must survive the process, not the node).

        Runs once per item, so the marker file is mapped into memory and the index
        stored into the page cache without a system call; the page outlives a
        killed process like a write(2) would. Where it cannot be mapped, pwrite.
        """
        marker = b"%-20d\n" % index
        if self._inflight_map is not None:
            self._inflight_map[:INFLIGHT_SIZE] = marker
        elif self._inflight_fd is not None:
            os.pwrite(self._inflight_fd, marker, 0)
        else:
            self._open_inflight(marker)

    def _open_inflight(self, marker: bytes) -> None:
        """Create or reuse the marker file holding marker; map it if the filesystem can."""
        fd = os.open(
            INFLIGHT_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644, dir_fd=self._open_dir()
        )
        try:
            os.pwrite(fd, marker, 0)
            os.ftruncate(fd, INFLIGHT_SIZE)
            with contextlib.suppress(AttributeError, OSError, ValueError):
                # The map holds a descriptor of its own, closed when it is collected.
                self._inflight_map = mmap.mmap(fd, INFLIGHT_SIZE, flags=mmap.MAP_SHARED)
        except BaseException:
            os.close(fd)
            raise
        if self._inflight_map is None:
            close_when_collected(self, fd)
            self._inflight_fd = fd
        else:
            os.close(fd)

    def clear_inflight(self) -> None:
        """Remove the marker: the batch finished, no item is in flight."""
        if self._inflight_map is not None:
            self._inflight_map.close()
            self._inflight_map = None
        if self._inflight_fd is not None:
            os.close(self._inflight_fd)
            self._inflight_fd = None
        with contextlib.suppress(FileNotFoundError):
            (self.root / INFLIGHT_FILE).unlink()

    def read_inflight(self) -> int | None:
        """The item the previous process was working on when it stopped, if recorded."""
        try:
            return int((self.root / INFLIGHT_FILE).read_text().strip())
        except (OSError, ValueError):
            return None

    def clear(self) -> None:
        """Remove every stored value (steps of a finished run)."""
        self._pending.clear()
        self._pending_bytes = 0
        if self.root.is_dir():
            for path in self.root.glob("*.json"):
                path.unlink(missing_ok=True)
        self._unsynced.clear()

    def sync(self) -> None:
        """Write pending puts, fsync every file written since the last sync, then the directory."""
        if self._pending:
            self.write_pending()
        if not self._unsynced:
            return
        dir_fd = self._open_dir()
        if _syncfs is not None and len(self._unsynced) > SYNCFS_THRESHOLD:
            # One filesystem-wide flush instead of one journal commit per file: with
            # the default policy a write covers ~1000 outputs of 1 ms items, and
            # fsyncing them one by one costs more than the items themselves.
            if _syncfs(dir_fd) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"syncfs {self.root}: {os.strerror(err)}")
            self._unsynced.clear()
            return
        for name in self._unsynced:
            with contextlib.suppress(FileNotFoundError):
                fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dir_fd)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        os.fsync(dir_fd)
        self._unsynced.clear()


class _LiveFields(ctypes.Structure):
    """The layout of the live progress file (native byte order: read on this machine)."""

    _fields_ = (
        ("seq", ctypes.c_int64),  # odd while a store is half done
        ("attempt", ctypes.c_int64),
        ("done", ctypes.c_int64),
        ("total", ctypes.c_int64),  # the total + 1; 0 while unknown
        ("started", ctypes.c_double),  # epoch seconds
        ("done_at_start", ctypes.c_int64),
        ("updated", ctypes.c_double),  # epoch seconds
    )


class LiveProgress:
    """The running attempt's item count, updated at every commit, between checkpoints.

    A checkpoint is written as its policy allows (every 30 s, say); `resumable
    run`'s bar and `resumable status --local` read this file to show the items
    the worker has done since, and its rate. The fields (:class:`_LiveFields`) are
    mapped shared and stored without a system call, as the in-flight marker is: a
    few hundred nanoseconds per item. Only a display: never read back as progress;
    the reader retries a read that saw the first fill half done.
    """

    SIZE = ctypes.sizeof(_LiveFields)

    def __init__(self, path: Path, *, attempt: int, done: int) -> None:
        self._path = path
        self._map: mmap.mmap | None = None
        self._fields: _LiveFields | None = None
        self._total: int | None = None
        with contextlib.suppress(OSError, ValueError):
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                os.ftruncate(fd, self.SIZE)
                self._map = mmap.mmap(fd, self.SIZE, flags=mmap.MAP_SHARED)
            finally:
                os.close(fd)
        if self._map is None:
            return
        fields = self._fields = _LiveFields.from_buffer(self._map)
        fields.seq |= 1
        fields.attempt, fields.done, fields.total = attempt, done, 0
        fields.started = fields.updated = time.time()
        fields.done_at_start = done
        fields.seq += 1

    def update(self, done: int, total: int | None) -> None:
        """Store the attempt's items done and the total.

        Each field is one aligned 8-byte store, which no reader sees half done; a
        reader may see a count a moment older than the time beside it, harmless
        for a display. The sequence number guards only the first fill.
        """
        fields = self._fields
        if fields is None:
            return
        fields.done = done
        if total != self._total:
            self._total = total
            fields.total = 0 if total is None else total + 1
        fields.updated = time.time()

    def remove(self) -> None:
        """The batch finished: no live count to show (status.json has the final one)."""
        self._fields = None  # before the map: it cannot close under an exported buffer
        if self._map is not None:
            self._map.close()
            self._map = None
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()

    @classmethod
    def read(cls, path: Path) -> dict[str, Any] | None:
        """The last update: attempt, done, total, started and doneAtStart (epoch
        seconds, items), updated; None when there is none or it is being written."""
        for _ in range(3):
            try:
                data = path.read_bytes()
            except OSError:
                return None
            if len(data) != cls.SIZE:
                return None
            fields = _LiveFields.from_buffer_copy(data)
            if fields.seq == 0 or fields.seq % 2:
                continue
            return {
                "attempt": fields.attempt,
                "done": fields.done,
                "total": fields.total - 1 if fields.total else None,
                "started": fields.started,
                "doneAtStart": fields.done_at_start,
                "updated": fields.updated,
            }
        return None


def _status_tmp_name() -> str:
    """This process's temp name for status.json (safe to reuse: writes hold the lock).

    The pid tells processes on one host apart; the random part, processes on
    hosts sharing the directory (where pids repeat and flock may not reach).
    """
    return f".{STATUS_FILE}.{os.getpid()}.{os.urandom(4).hex()}.tmp"


#: Every LocalStore alive in this process, for the fork hook below.
_open_stores: weakref.WeakSet[LocalStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """Give each store in a freshly forked child its own lock (see LocalStore._after_fork)."""
    for store in list(_open_stores):
        store._after_fork()


class LocalStore:
    """A batch's whole state in one directory: status.json, outputs/ and steps/.

    A missing directory or file means a fresh start; a corrupt file is a
    CorruptCheckpointError naming it, never a silent restart from zero.

    A checkpoint write is the worker's hot path (with ``everyItems: 1`` it runs
    once per item), so it does not rebuild the status model: the store keeps
    the other status fields serialised from its last read or write and the
    stored attempt and position, and re-reads the file only when it is no longer
    the one this store last wrote. To know that exactly, the store keeps that
    file open: on a local filesystem an inode still open cannot be freed and its
    number given to another file, so the same device and inode number (with the
    same size and times) under ``status.json`` means nobody replaced it. (On NFS
    another host's rename frees the inode on the server and a stat may come from
    the attribute cache: keep a local store on a local disk.)

    A store is shared safely by threads and by processes that each open their
    own; a forked child reopens the lock file (flock on the parent's open file
    would not keep the two apart). That relies on os.fork's at-fork hooks: a
    child forked from C without them must open its own store.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.status_path = self.root / STATUS_FILE
        self.outputs = DirectoryOutputs(self.root / OUTPUTS_DIR)
        self.steps = DirectoryOutputs(self.root / STEPS_DIR)
        self._seen: tuple[int, ...] | None = None  # identity of status.json as we wrote it
        self._held: list[int] = []  # that file's descriptor, kept open (0 or 1 of them)
        weakref.finalize(self, _close_all, self._held).atexit = False
        self._stored: tuple[int, int] = (0, 0)  # (attempt, nextIndex) in that write
        # (attempt, nextIndex) of checkpoint writes that failed since the last success,
        # maybe after their rename (a failed directory fsync).
        self._unconfirmed: set[tuple[int, int]] = set()
        self._rest = b""  # the status fields other than checkpoint and progress, as JSON
        self._lock_fd: int | None = None
        self._root_fd: int | None = None  # opened with the lock; fsynced after each rename
        self._holder: int | None = None  # the thread holding the lock
        self._tmp = _status_tmp_name()
        self._thread_lock = threading.Lock()
        self._incarnation = ""
        self._to_json = Checkpoint.__pydantic_serializer__.to_json
        _open_stores.add(self)  # so a forked child gets a lock of its own

    def describe(self) -> str:
        """The status file's path."""
        return str(self.status_path)

    def live_progress(self, *, attempt: int, done: int) -> LiveProgress:
        """The live item count of this attempt, which started with ``done`` items done."""
        self.root.mkdir(parents=True, exist_ok=True)
        return LiveProgress(self.root / PROGRESS_FILE, attempt=attempt, done=done)

    def read_live_progress(self) -> dict[str, Any] | None:
        """The running attempt's live item count (see :class:`LiveProgress`), if any."""
        return LiveProgress.read(self.root / PROGRESS_FILE)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store's exclusive lock (between processes) for a read-modify-write."""
        self._acquire()
        try:
            yield
        finally:
            self._release()

    def _acquire(self) -> None:
        """Take the thread lock, then the flock on ``.lock``.

        The lock file stays open for the store's lifetime (every checkpoint write
        takes the lock; reopening it each time cost as much as the JSON work), so a
        thread lock keeps threads sharing this object apart as flock cannot.
        """
        self._thread_lock.acquire()
        try:
            lock_fd = self._lock_fd
            if lock_fd is None or self._root_fd is None:
                # Both or neither: a store half set up would resolve names against cwd.
                try:
                    self.root.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise ConfigError(
                        f"the local store's directory {self.root} (RESUMABLE_DIR) cannot be "
                        f"created: {exc.strerror or exc}"
                    ) from None
                root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    lock_fd = os.open(
                        LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644, dir_fd=root_fd
                    )
                except BaseException:
                    os.close(root_fd)
                    raise
                close_when_collected(self, root_fd)  # no fd outlives the store
                close_when_collected(self, lock_fd)
                self._lock_fd, self._root_fd = lock_fd, root_fd
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            self._holder = threading.get_ident()
        except BaseException:
            self._thread_lock.release()
            raise

    def _after_fork(self) -> None:
        """In a forked child: start over with a lock of its own.

        The inherited lock fd shares the parent's open file, which flock treats as
        one owner, and the thread lock may be held by a thread that is not here.
        The inherited descriptors stay open (their finalizers close them with the
        store); the next _acquire opens new ones. Run by os.register_at_fork, so
        the per-write path never asks which process it is in.
        """
        self._tmp = _status_tmp_name()
        self._thread_lock = threading.Lock()
        self._holder = None
        self._lock_fd = self._root_fd = None
        self._forget_write()

    def _release(self) -> None:
        self._holder = None
        try:
            if self._lock_fd is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def _replace_status(self, data: bytes) -> tuple[int, ...]:
        """Write status.json (lock held), keep it open, and return what identifies it.

        The caller sets ``_seen`` to the result only once it has recorded what the
        file holds, so an interruption in between leaves the next write re-reading.
        """
        self._forget_write()
        fd = _replace(STATUS_FILE, data, durable=True, dir_fd=self._root_fd, tmp=self._tmp)
        self._held.append(fd)
        # After the rename, which changes ctime: what a stat of the name will show.
        st = os.fstat(fd)
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def _forget_write(self) -> None:
        """Stop recognising the last write: the next checkpoint re-reads the file."""
        self._seen = None
        while self._held:
            os.close(self._held.pop())

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
        if self._holder != threading.get_ident():
            raise RuntimeError(f"{self.status_path}: write_status() needs store.locked()")
        seen = self._replace_status(
            status.model_dump_json(by_alias=True, exclude_none=True).encode()
        )
        self._remember(status)
        self._seen = seen

    def _remember(self, status: ResumableBatchStatus) -> None:
        """Keep what the next checkpoint write needs from a status just read or written."""
        rest = status.model_dump_json(
            by_alias=True, exclude_none=True, exclude={"checkpoint", "progress"}
        )
        self._rest = b"," + rest[1:-1].encode() if len(rest) > 2 else b""
        self._stored = (status.checkpoint.attempt, status.checkpoint.next_index)

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
        self._acquire()  # not `with self.locked()`: this runs per item at everyItems=1
        try:
            stored = self._stored_position()
            stored_attempt, stored_next = stored
            if stored_attempt != expect_attempt:
                raise FencedError(
                    f"{self.status_path}: attempt {expect_attempt} was replaced by attempt "
                    f"{stored_attempt}; this worker stops without writing"
                )
            # A write of ours that raised after its rename (a failed directory fsync)
            # moved the position itself: the caller, told it failed, expects the old one.
            if stored_next != expect_next and stored not in self._unconfirmed:
                raise FencedError(
                    f"{self.status_path}: the position moved to {stored_next} "
                    f"(expected {expect_next}); this worker stops without writing"
                )
            data = b"".join(
                (
                    b'{"checkpoint":',
                    self._to_json(checkpoint, by_alias=True, exclude_none=True),
                    b',"progress":',
                    encode_basestring_ascii(progress).encode(),
                    self._rest,
                    b"}",
                )
            )
            position = (checkpoint.attempt, checkpoint.next_index)
            try:
                seen = self._replace_status(data)
            except BaseException:
                self._unconfirmed.add(position)  # it may be in place all the same
                raise
            if self._unconfirmed:  # rarely: a failed write came before this one
                self._unconfirmed.clear()
            self._stored = position
            self._seen = seen
        finally:
            self._release()

    def _stored_position(self) -> tuple[int, int]:
        """The stored (attempt, nextIndex); re-read only if another process wrote since."""
        if self._seen is not None:
            try:
                st = os.stat(STATUS_FILE, dir_fd=self._root_fd)
            except FileNotFoundError:
                st = None
            if st is not None and self._seen == (
                st.st_dev,
                st.st_ino,
                st.st_size,
                st.st_mtime_ns,
                st.st_ctime_ns,
            ):
                return self._stored
        self._forget_write()
        status = self.load() or ResumableBatchStatus()
        self._remember(status)
        return self._stored

    def _remove_orphan_temps(self) -> None:
        """Delete status temp files left by killed writers (lock held).

        Writers create them only under the lock, so none is in use now; the age
        check spares a writer on another host that flock might not reach.
        """
        root_fd = self._root_fd
        if root_fd is None:  # never under the lock; scandir(None) would list cwd
            raise RuntimeError(f"{self.root}: _remove_orphan_temps() needs store.locked()")
        prefix = f".{STATUS_FILE}."
        cutoff = time.time() - ORPHAN_TEMP_SECONDS
        with os.scandir(root_fd) as entries:
            for entry in entries:
                if entry.name.startswith(prefix) and entry.name.endswith(".tmp"):
                    with contextlib.suppress(FileNotFoundError):
                        if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                            os.unlink(entry.name, dir_fd=root_fd)

    def incarnation(self) -> str:
        """This batch's id in this store (made by the first claim), '' before any claim.

        A batch started over in the same directory (its status.json removed) gets a
        new one, so results an earlier batch kept beside it are never taken for its own.
        """
        return self._incarnation

    def _claim_incarnation(self, *, fresh: bool) -> None:
        """Read the store's incarnation id, or make one for a fresh store (lock held)."""
        path = self.root / INCARNATION_FILE
        if not fresh:
            try:
                self._incarnation = path.read_text().strip()
            except FileNotFoundError:
                self._incarnation = ""
            if self._incarnation:
                return
        self._incarnation = uuid.uuid4().hex
        atomic_write(path, f"{self._incarnation}\n".encode())

    def claim(self, attempt: int | None) -> tuple[ResumableBatchStatus, int]:
        """Take ownership for an attempt (the next one when None); return the status and it.

        Raises FencedError when a newer attempt already owns the store.
        """
        with self.locked():
            self._remove_orphan_temps()
            fresh = not self.status_path.exists()
            status = self.load() or ResumableBatchStatus()  # a corrupt one raises here
            self._claim_incarnation(fresh=fresh)
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
            else:
                self._forget_write()
                self._remember(status)
            return status.model_copy(deep=True), attempt


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
