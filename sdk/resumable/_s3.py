"""Outputs in an S3-compatible bucket: one object per item or step result.

:class:`S3Outputs` is an :class:`~resumable._store.OutputStore` on obstore (a thin
binding of the Rust ``object_store`` crate), imported here and only here, so
``import resumable`` never loads it: :func:`resumable.start` imports this module
when ``spec.outputs.s3`` (RESUMABLE_OUTPUTS) asks for a bucket, and the CLI when it
lists one. A put is kept in memory; :meth:`S3Outputs.sync` (which the run calls
before every checkpoint write) PUTs each pending object and returns once every
one is confirmed, so no checkpoint ever covers an item whose object is not
stored. A PUT is atomic (no reader sees part of an object) and a redo writes
the same key again; which objects are visible is the status's to say
(:mod:`resumable.outputs`). Keys: ``<root>/outputs/<index:08d>.json`` and
``<root>/steps/<key>.json`` under ``<prefix>/<namespace>/<name>/<uid>/<runId>``.

A first write is conditional (``If-None-Match: *``): an item's object exists
already only when it is a redo, which then overwrites it; a step result that
another worker stored first is kept, and that worker's value is the one every
worker uses (first writer wins). Where the server does not support conditional
writes the store falls back to plain PUTs. A server that does not answer is
retried, backing off, for SYNC_DEADLINE seconds, then StoreUnavailableError: the
run keeps its progress pending and tries again at its next write, as when the
API server is away.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import obstore
from obstore import exceptions as obs_errors
from obstore.store import S3Store

from resumable._store import _encode_output
from resumable.errors import ConfigError, CorruptCheckpointError, StoreUnavailableError
from resumable.v1alpha1 import S3OutputsSpec

if TYPE_CHECKING:
    from obstore.store import S3Config  # a type only: not importable at run time

#: Seconds one sync keeps retrying a server that does not answer before it gives up.
SYNC_DEADLINE = 3.0
#: The first pause between two tries, doubled after each failure up to MAX_PAUSE.
FIRST_PAUSE = 0.1
MAX_PAUSE = 1.0
#: One request's time limit, and its connection's.
REQUEST_TIMEOUT = "10s"
CONNECT_TIMEOUT = "2s"


def open_bucket(spec: S3OutputsSpec, env: dict[str, str] | None = None) -> S3Store:
    """An obstore client for the bucket spec names.

    Credentials come from the environment (AWS_ACCESS_KEY_ID and
    AWS_SECRET_ACCESS_KEY, which the operator injects from
    spec.outputs.s3.credentialsSecret; or a web identity token file as IRSA
    mounts it; or instance metadata): obstore's own provider chain.
    """
    env = dict(os.environ if env is None else env)
    config: S3Config = {"region": spec.region}
    if spec.endpoint:
        config["endpoint"] = spec.endpoint
        config["virtual_hosted_style_request"] = False
    if env.get("AWS_ACCESS_KEY_ID"):
        config["access_key_id"] = env["AWS_ACCESS_KEY_ID"]
    if env.get("AWS_SECRET_ACCESS_KEY"):
        config["secret_access_key"] = env["AWS_SECRET_ACCESS_KEY"]
    if env.get("AWS_SESSION_TOKEN"):
        config["session_token"] = env["AWS_SESSION_TOKEN"]
    config["conditional_put"] = "etag"
    try:
        return S3Store(
            spec.bucket,
            config=config,
            client_options={
                "timeout": REQUEST_TIMEOUT,
                "connect_timeout": CONNECT_TIMEOUT,
                "allow_http": bool(spec.endpoint and spec.endpoint.startswith("http://")),
            },
            # This module retries (and says so); one quick retry inside obstore.
            retry_config={
                "max_retries": 1,
                "backoff": {"init_backoff": timedelta(milliseconds=50), "base": 2},
                "retry_timeout": timedelta(seconds=2),
            },
        )
    except obs_errors.BaseError as exc:
        raise ConfigError(f"spec.outputs.s3: cannot use bucket {spec.bucket!r}: {exc}") from exc


def batch_root(spec: S3OutputsSpec, *, namespace: str, name: str, uid: str, run_id: str) -> str:
    """The key prefix of one run of one batch: ``<prefix>/<namespace>/<name>/<uid>/<runId>``."""
    parts = [spec.prefix] if spec.prefix else []
    parts += [namespace or "default", name, uid or "-", run_id or "-"]
    return "/".join(parts)


class S3Outputs:
    """Item outputs (or step results) as objects under ``<root>/<kind>/``.

    ``root`` is resolved at first use: the batch's uid is known only once the
    checkpoint store has read the batch (its claim).
    """

    def __init__(
        self,
        store: S3Store,
        root: Callable[[], str],
        kind: str,
        *,
        describe: str = "",
        first_wins: bool = False,
        deadline: float = SYNC_DEADLINE,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._root_of = root
        self._root: str | None = None
        self.kind = kind
        self._describe = describe
        #: Step results: a value stored first is kept (conditional writes make it so).
        self.first_wins = first_wins
        self._deadline = deadline
        self._sleep = sleep
        self._clock = clock
        self._pending: dict[str, bytes] = {}  # key -> encoded value, not yet stored
        self._conditional = True  # until the server says it has no conditional writes
        #: Objects a first write found already there (redone items), for tests and stats.
        self.overwritten = 0

    def describe(self) -> str:
        """Where the objects go, for messages."""
        return self._describe or f"s3 {self.prefix()}"

    def prefix(self) -> str:
        """``<root>/<kind>/``, the uid resolved on first call."""
        if self._root is None:
            self._root = self._root_of()
        return f"{self._root}/{self.kind}/"

    def _path(self, key: str) -> str:
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"bad output key {key!r}")
        return f"{self.prefix()}{key}.json"

    def put(self, key: str, value: Any) -> None:
        """Keep value for key; stored at the next :meth:`sync`."""
        self._path(key)  # a bad key fails here, where it was given
        self._pending[key] = _encode_output(value).encode()

    def get(self, key: str) -> Any | None:
        """The value under key (a pending one first), or None."""
        pending = self._pending.get(key)
        if pending is not None:
            return json.loads(pending)
        path = self._path(key)
        data = self._retry(lambda: self._read(path), f"read {path}")
        if data is None:
            return None
        try:
            return json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorruptCheckpointError(f"{self.describe()}: {path}: not JSON: {exc}") from exc

    def _read(self, path: str) -> bytes | None:
        try:
            return bytes(obstore.get(self._store, path).bytes())
        except FileNotFoundError:
            return None

    def keys(self) -> list[str]:
        """Every stored key (pending ones included), sorted: item order for outputs."""
        prefix = self.prefix()
        found = set(self._pending)

        def listing() -> list[str]:
            names: list[str] = []
            for chunk in obstore.list(self._store, prefix=prefix):
                for meta in chunk:
                    path = str(meta["path"])
                    if path.endswith(".json"):
                        names.append(path[len(prefix) : -len(".json")])
            return names

        found.update(self._retry(listing, f"list {prefix}"))
        return sorted(found)

    def sync(self) -> None:
        """Store every pending value; return once the server confirmed each one.

        Raises StoreUnavailableError when the server does not answer within the
        deadline: what is not stored stays pending for the next sync.
        """
        for key in list(self._pending):
            data = self._pending[key]
            path = self._path(key)
            self._retry(functools.partial(self._write, path, data), f"write {path}")
            del self._pending[key]

    def _write(self, path: str, data: bytes) -> None:
        """PUT data: create-only first; a taken key is overwritten unless first_wins."""
        if self._conditional:
            try:
                obstore.put(self._store, path, data, mode="create")
                return
            except (obs_errors.AlreadyExistsError, obs_errors.PreconditionError):
                if self.first_wins:
                    return  # another worker's result stands: get() reads it back
                self.overwritten += 1  # a redo: the status decides it is visible
            except obs_errors.NotSupportedError:
                self._conditional = False  # this server has none: plain PUTs from now on
        obstore.put(self._store, path, data)

    def clear(self) -> None:
        """Delete every object under this store's prefix (step results once a batch ends)."""
        self._pending.clear()
        for key in self.keys():
            path = self._path(key)
            self._retry(functools.partial(obstore.delete, self._store, path), f"delete {path}")

    def _retry(self, call: Callable[[], Any], what: str) -> Any:
        """call(), retried with backoff while the server does not answer, up to the deadline."""
        until = self._clock() + self._deadline
        pause = FIRST_PAUSE
        while True:
            try:
                return call()
            except (obs_errors.PermissionDeniedError, obs_errors.UnauthenticatedError) as exc:
                raise ConfigError(
                    f"{self.describe()}: the server refused to {what}: {exc}; check the "
                    "credentials (spec.outputs.s3.credentialsSecret) and the bucket's policy"
                ) from exc
            except (obs_errors.GenericError, OSError) as exc:
                if isinstance(exc, FileNotFoundError):
                    raise
                left = until - self._clock()
                if left <= 0:
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc)
                    raise StoreUnavailableError(
                        f"{self.describe()}: cannot {what} for {self._deadline:.0f} s: {first}"
                    ) from exc
                self._sleep(min(pause, left))
                pause = min(pause * 2, MAX_PAUSE)
