"""A small real HTTP server holding one ResumableBatch: faults kube-apiserver cannot play.

It serves GET of the batch and JSON patches of its status over real sockets, the
way kube-apiserver does: the ops apply all or nothing, and a failed ``test`` op
is a 422 that changes nothing. Its ``mode`` switches the fault, re-read on every
request:

- ``ok``: answer.
- ``503``: answer every request with 503 ServiceUnavailable.
- ``hang``: a blackhole: accept the request, never answer (until :meth:`close`).
- ``apply-hang``: apply a PATCH, then never answer (the answer is lost).
- ``403``, ``422``: refuse every PATCH as RBAC or the CRD's schema would (GET still works).

:meth:`stop` closes the listening socket, so connections are refused until
:meth:`start` opens the same port again, with the same object. Every connection
is closed after its answer (HTTP/1.0), so a stopped server refuses the very next
request. Everything it saw is kept: ``requests`` (time, method, mode) and
``applied`` (time, the checkpoint after each applied write), times from
``time.monotonic()``.
"""

from __future__ import annotations

import copy
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonpatch
import yaml

from tests.reliability.faults import k8s_status

GROUP, VERSION, PLURAL = "resumable.dev", "v1alpha1", "resumablebatches"


class StubApiServer:
    """One batch ``namespace/name`` served over HTTP on 127.0.0.1."""

    def __init__(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.namespace, self.name = namespace, name
        self.object_path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}"
        self.obj: dict[str, Any] = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ResumableBatch",
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": "1"},
            "spec": {"template": {"spec": {"containers": [{"name": "worker"}]}}},
            "status": status,
        }
        self.mode = "ok"
        self.lock = threading.Lock()
        self.requests: list[tuple[float, str, str]] = []
        self.applied: list[tuple[float, dict[str, Any]]] = []
        self.hanging = threading.Semaphore(0)  # released once per request left hanging
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def checkpoint(self) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.obj["status"].get("checkpoint") or {})

    def kubeconfig(self, path: Path) -> Path:
        """Write a kubeconfig for this server (plain HTTP, a dummy token) and return it."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "stub", "cluster": {"server": self.url}}],
            "users": [{"name": "stub", "user": {"token": "stub-token"}}],
            "contexts": [{"name": "stub", "context": {"cluster": "stub", "user": "stub"}}],
            "current-context": "stub",
        }
        path.write_text(yaml.safe_dump(config))
        return path

    def start(self) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        server.daemon_threads = True
        server.block_on_close = False  # hung requests must not hold up stop()
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._server = server

    def stop(self) -> None:
        """Close the listening socket: connections are refused from now on."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def close(self) -> None:
        self._release.set()
        self.stop()

    def patches(self, since: float = 0.0) -> list[tuple[float, str]]:
        """(time, mode) of each PATCH received at or after ``since``."""
        return [(t, m) for t, method, m in self.requests if method == "PATCH" and t >= since]

    def _apply(self, ops: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            try:
                new = jsonpatch.apply_patch(self.obj, ops, in_place=False)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                message = f"the server rejected our request due to an error in our request: {exc}"
                return 422, k8s_status(422, "Invalid", message)
            version = int(new["metadata"]["resourceVersion"]) + 1
            new["metadata"]["resourceVersion"] = str(version)
            self.obj = new
            self.applied.append((time.monotonic(), copy.deepcopy(new["status"]["checkpoint"])))
            return 200, copy.deepcopy(new)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _hang(self) -> None:
                stub.hanging.release()
                stub._release.wait(120)  # no answer; the connection just closes at teardown

            def do_GET(self) -> None:
                mode = stub.mode
                stub.requests.append((time.monotonic(), "GET", mode))
                # The batch itself or its status subresource (the SDK reads the latter):
                # the API server answers both with the whole object.
                if self.path.split("?")[0] not in (stub.object_path, stub.object_path + "/status"):
                    return self._answer(404, k8s_status(404, "NotFound", self.path))
                if mode in ("hang", "apply-hang"):
                    return self._hang()
                if mode == "503":
                    return self._answer(503, k8s_status(503, "ServiceUnavailable", "unavailable"))
                with stub.lock:
                    body = copy.deepcopy(stub.obj)
                self._answer(200, body)

            def do_PATCH(self) -> None:
                ops = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                mode = stub.mode
                stub.requests.append((time.monotonic(), "PATCH", mode))
                if self.path.split("?")[0] != stub.object_path + "/status":
                    return self._answer(404, k8s_status(404, "NotFound", self.path))
                if mode == "hang":
                    return self._hang()
                if mode == "503":
                    return self._answer(503, k8s_status(503, "ServiceUnavailable", "unavailable"))
                if mode == "403":
                    message = (
                        f'{PLURAL}.{GROUP} "{stub.name}" is forbidden: User '
                        '"system:serviceaccount:ns:worker" cannot patch resource '
                        f'"{PLURAL}/status" in API group "{GROUP}"'
                    )
                    return self._answer(403, k8s_status(403, "Forbidden", message))
                if mode == "422":
                    message = (
                        f'ResumableBatch.{GROUP} "{stub.name}" is invalid: '
                        'status.checkpoint.tokens: Invalid value: "number": '
                        "status.checkpoint.tokens in body must be of type integer"
                    )
                    return self._answer(422, k8s_status(422, "Invalid", message))
                code, body = stub._apply(ops)
                if mode == "apply-hang" and code == 200:
                    return self._hang()
                self._answer(code, body)

        return Handler
