"""An S3-compatible server on loopback for the tests: moto's server mode, as a subprocess.

moto (Apache-2.0, from PyPI, in the dev extra) answers the S3 API in memory;
:func:`start_moto` starts it on a free port and waits until it answers, or fails
the test run loudly with its output. Used by tests/reliability/conftest.py
(the ``s3`` fixture) and by bench/output_stores.py. Each test gets a bucket of
its own on the one server.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass

#: Credentials moto accepts (any will do); the workers get them as AWS_* variables.
ACCESS_KEY = "testing"
SECRET_KEY = "testing-secret"
REGION = "us-east-1"


@dataclass
class MotoServer:
    """A running moto server and the endpoint URL that reaches it."""

    process: subprocess.Popen[bytes]
    port: int
    log: str

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The AWS_* variables a worker (or the CLI) uses to reach it."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
        }

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a fresh random name unless given) and return its name."""
        name = name or f"t-{uuid.uuid4().hex[:20]}"
        request = urllib.request.Request(f"{self.endpoint}/{name}", method="PUT")
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200, answer.status
        return name

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        with contextlib.suppress(OSError):
            os.unlink(self.log)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_moto(timeout: float = 60.0) -> MotoServer:
    """Start moto's S3 server on 127.0.0.1 and wait until it answers.

    Raises RuntimeError with the server's output when it exits or does not
    answer within ``timeout`` seconds (moto not installed: run `make install`).
    """
    port = _free_port()
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    # Its request log goes to a file: a pipe nobody reads would fill and stall it.
    log_fd, log = tempfile.mkstemp(prefix="moto-", suffix=".log")
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log_fd,
            stderr=subprocess.STDOUT,
            env=env,
        )
    finally:
        os.close(log_fd)
    server = MotoServer(process, port, log)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            with open(log, errors="replace") as f:
                output = f.read()
            raise RuntimeError(
                f"moto's S3 server exited with {process.returncode} before answering "
                f"(is moto[server] installed? `make install`):\n{output}"
            )
        try:
            with urllib.request.urlopen(f"{server.endpoint}/", timeout=2):
                pass
            break
        except urllib.error.HTTPError:
            break  # it answers
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(
                    f"moto's S3 server did not answer on {server.endpoint} in {timeout:g}s"
                ) from None
            time.sleep(0.1)
    return server
