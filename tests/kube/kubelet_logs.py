"""The process kubelet's HTTPS endpoint for container logs (what ``pods/log`` reaches).

A real kubelet serves ``GET /containerLogs/{namespace}/{pod}/{container}`` on its
port (the node's ``status.daemonEndpoints.kubeletEndpoint.Port``); the API server
answers ``kubectl logs`` by calling it over mutual TLS and streaming the reply
back. This module serves the same path from the per-pod log files the process
kubelet writes, with the query parameters a client sends most:

- ``follow=true``: keep streaming until the pod's process has ended for good;
- ``tailLines=N``: only the last N lines;
- ``limitBytes=N``: at most N bytes.

Errors are plain-text bodies with the status codes a kubelet uses (400 for a bad
request, 404 for an unknown pod or container), which the API server turns into
its own Status errors. Client certificates are checked against the cluster CA
(no further authorization: a real kubelet would also ask the API server through
a SubjectAccessReview).
"""

from __future__ import annotations

import contextlib
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

#: How often a followed log is polled for new output.
FOLLOW_POLL_SECONDS = 0.05
#: How long a client may take over the TLS handshake.
HANDSHAKE_SECONDS = 10.0
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class ServingTLS:
    """The kubelet's serving certificate and the CA its clients' certificates must chain to."""

    cert: Path
    key: Path
    client_ca: Path


@dataclass(frozen=True)
class LogSource:
    """What the server needs of one pod: its container, its log file and whether it ended."""

    container: str
    path: Path
    started: Callable[[], bool]  # True once the pod's process was started
    ended: Callable[[], bool]  # True once no process of the pod will write again


class RequestError(Exception):
    """A request the kubelet answers with an error status and a plain-text message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def tail_offset(path: Path, lines: int) -> int:
    """The offset in the file where its last ``lines`` lines begin."""
    size = path.stat().st_size
    if lines <= 0:
        return size
    with path.open("rb") as f:
        end = size
        # A final newline ends the last line; it does not start another.
        if end > 0:
            f.seek(end - 1)
            if f.read(1) == b"\n":
                end -= 1
        found = 0
        position = end
        while position > 0:
            step = min(_CHUNK, position)
            position -= step
            f.seek(position)
            block = f.read(step)
            index = len(block)
            while True:
                index = block.rfind(b"\n", 0, index)
                if index < 0:
                    break
                found += 1
                if found == lines:
                    return position + index + 1
    return 0


class LogServer:
    """Serves container logs over HTTPS on 127.0.0.1 until stopped."""

    def __init__(self, tls: ServingTLS, lookup: Callable[[str, str], LogSource | None]) -> None:
        """lookup(namespace, pod) gives the pod's log source, or None for an unknown pod."""
        self._lookup = lookup
        self._stopping = threading.Event()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls.cert, tls.key)
        context.load_verify_locations(tls.client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
        server = self

        class Handler(_LogHandler):
            owner = server

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        # The handshake runs in each request's thread (see _LogHandler.setup), so a
        # client that stalls in it holds up neither other clients nor stop().
        self._httpd.socket = context.wrap_socket(
            self._httpd.socket, server_side=True, do_handshake_on_connect=False
        )
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port it listens on (what the node advertises)."""
        return int(self._httpd.server_address[1])

    def start(self) -> LogServer:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="kubelet-logs", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; followed streams end at their next poll."""
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def source(self, path: str) -> tuple[LogSource, dict[str, list[str]]]:
        """The pod's log source and the query, for a request path; RequestError if none."""
        url = urlsplit(path)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        if len(parts) != 4 or parts[0] != "containerLogs":
            raise RequestError(404, f"no such endpoint: {url.path}")
        namespace, pod, container = parts[1:]
        found = self._lookup(namespace, pod)
        if found is None:
            raise RequestError(404, f'pod "{namespace}/{pod}" does not exist on this node')
        if container != found.container:
            raise RequestError(
                404, f'container "{container}" is not running in pod "{namespace}/{pod}"'
            )
        if not found.path.exists():
            if not found.started():  # what a kubelet says before the container runs
                raise RequestError(
                    400,
                    f'container "{container}" in pod "{pod}" is waiting to start: '
                    "ContainerCreating",
                )
            raise RequestError(
                404, f'no logs of container "{container}" in pod "{namespace}/{pod}"'
            )
        return found, parse_qs(url.query)

    def stream(self, found: LogSource, options: LogOptions, write: Callable[[bytes], None]) -> None:
        """Write the log as asked, following it until the pod ends when asked to."""
        with found.path.open("rb") as log:
            if options.tail_lines is not None:
                log.seek(tail_offset(found.path, options.tail_lines))
            left = options.limit_bytes
            while left is None or left > 0:
                ended = found.ended()  # before reading: all it wrote is then in the file
                chunk = log.read(_CHUNK if left is None else min(_CHUNK, left))
                if chunk:
                    write(chunk)
                    if left is not None:
                        left -= len(chunk)
                    continue
                if not options.follow or ended or self._stopping.is_set():
                    return
                time.sleep(FOLLOW_POLL_SECONDS)


@dataclass(frozen=True)
class LogOptions:
    """The query parameters of a log request that this kubelet honours."""

    follow: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None

    @classmethod
    def parse(cls, query: dict[str, list[str]]) -> LogOptions:
        """From a parsed query string; RequestError (400) naming a bad parameter."""
        if _flag(query, "previous"):
            raise RequestError(400, "previous: the process kubelet keeps one log per pod")
        return cls(
            follow=_flag(query, "follow"),
            tail_lines=_number(query, "tailLines"),
            limit_bytes=_number(query, "limitBytes"),
        )


def _flag(query: dict[str, list[str]], name: str) -> bool:
    value = query.get(name, ["false"])[-1].lower()
    if value not in ("true", "false", "1", "0"):
        raise RequestError(400, f"{name}: not a boolean: {value!r}")
    return value in ("true", "1")


def _number(query: dict[str, list[str]], name: str) -> int | None:
    if name not in query:
        return None
    raw = query[name][-1]
    try:
        value = int(raw)
    except ValueError:
        raise RequestError(400, f"{name}: not an integer: {raw!r}") from None
    if value < 0:
        raise RequestError(400, f"{name}: must not be negative, got {value}")
    return value


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """Report errors of ours; a client that failed its handshake or hung up is none."""
        if not isinstance(sys.exc_info()[1], OSError):  # ssl.SSLError is an OSError
            super().handle_error(request, client_address)


class _LogHandler(BaseHTTPRequestHandler):
    owner: LogServer
    # Close-delimited bodies: a followed log has no length known in advance.
    protocol_version = "HTTP/1.0"

    def setup(self) -> None:
        self.request.settimeout(HANDSHAKE_SECONDS)
        self.request.do_handshake()
        self.request.settimeout(None)
        super().setup()

    def do_GET(self) -> None:
        try:
            found, query = self.owner.source(self.path)
            options = LogOptions.parse(query)  # before the status line goes out
        except RequestError as exc:
            self._error(exc.status, str(exc))
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        # The API server (the client here) may go away mid-stream: nothing to answer.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.owner.stream(found, options, self._send)

    def _send(self, chunk: bytes) -> None:
        self.wfile.write(chunk)
        self.wfile.flush()

    def _error(self, status: int, message: str) -> None:
        body = message.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # the kubelet keeps its own log
