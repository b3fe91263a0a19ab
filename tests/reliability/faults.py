"""Shapes the fault tests answer with, as kube-apiserver would, and a proxy that drops it."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

import yaml


def k8s_status(code: int, reason: str, message: str = "") -> dict[str, Any]:
    """A metav1.Status body, as kube-apiserver sends with errors."""
    return {
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message or reason,
    }


class FaultProxy:
    """A TCP proxy on 127.0.0.1 in front of a server, that drops it on demand.

    The worker's kubeconfig points at the proxy (:meth:`kubeconfig` writes it); TLS
    passes through it untouched (the server's certificate names 127.0.0.1).
    ``mode``, set with :meth:`set`:

    - ``pass``: forward both ways.
    - ``refuse``: every connection, open or new, is reset at once (an API server
      that is down: the client sees the connection refused or reset).
    - ``blackhole``: connections are accepted and held, nothing is forwarded
      either way, nothing is answered (a partition, or an API server whose etcd
      is away: the client waits for its timeout). A request already sent may
      still land, its answer lost.

    Leaving ``blackhole`` resets the held connections (the client gave up on
    them anyway). ``accepted`` keeps the time.monotonic() and mode of every
    connection accepted.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.mode = "pass"
        self.accepted: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._open: list[tuple[socket.socket, socket.socket | None]] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def kubeconfig(self, upstream: Path, path: Path) -> Path:
        """Write ``upstream`` (the server's kubeconfig) to ``path``, through this proxy."""
        config = yaml.safe_load(upstream.read_text())
        config["clusters"][0]["cluster"]["server"] = self.url
        path.write_text(yaml.safe_dump(config))
        return path

    def set(self, mode: str) -> None:
        """Switch the fault; open connections follow it at once."""
        assert mode in ("pass", "refuse", "blackhole"), mode
        with self._lock:
            previous, self.mode = self.mode, mode
            if (mode == "pass" and previous == "blackhole") or mode == "refuse":
                for pair in self._open:
                    self._reset(*pair)
                self._open.clear()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            for pair in self._open:
                self._reset(*pair)
            self._open.clear()

    @staticmethod
    def _reset(client: socket.socket, upstream: socket.socket | None) -> None:
        for sock in (client, upstream):
            if sock is None:
                continue
            with contextlib.suppress(OSError):
                # Linger 0: close() sends RST, as a dead server's host does.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                mode = self.mode
                self.accepted.append((time.monotonic(), mode))
            if mode == "refuse":
                self._reset(client, None)
                continue
            upstream = None
            if mode == "pass":
                try:
                    upstream = socket.create_connection(self.upstream, timeout=5)
                    upstream.settimeout(None)
                except OSError:
                    self._reset(client, None)
                    continue
            with self._lock:
                self._open.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            if upstream is not None:
                threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket | None) -> None:
        """Copy source to sink until either closes; in blackhole mode, drop the bytes."""
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                with contextlib.suppress(OSError):
                    if sink is not None:
                        sink.shutdown(socket.SHUT_WR)
                return
            if self.mode != "pass" or sink is None:
                continue  # held: read and dropped, never answered
            try:
                sink.sendall(data)
            except OSError:
                return
