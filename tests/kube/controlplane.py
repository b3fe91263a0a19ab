"""A real Kubernetes control plane (etcd + kube-apiserver) on loopback, for tests.

Similar in spirit to controller-runtime's envtest: no controller-manager, no
scheduler, no kubelet (see kubelet.py for a process-based stand-in). The
binaries come from tests/controlplane/build.sh (or $KUBEBUILDER_ASSETS).

Usage::

    with ControlPlane.start(workdir) as cp:
        cp.install_crds(Path("crds").glob("*.yaml"))
        api = cp.api_client()
        cp.kubectl("get", "rb", "-A")
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from .pki import PKI, generate_pki

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "tests" / "controlplane" / "build.sh"

#: Where the pods' service-account tokens claim to come from (and are checked against).
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"


class ControlPlaneError(RuntimeError):
    """The control plane could not be built, started or configured."""


def find_binaries(*, build: bool = True, log_file: Path | None = None) -> Path:
    """Return the directory with kube-apiserver and etcd, building them if needed.

    Runs tests/controlplane/build.sh, which reuses $KUBEBUILDER_ASSETS or the cache
    and otherwise builds (minutes, once). With build=False, only a ready
    directory is accepted.
    """
    args = ["bash", str(BUILD_SCRIPT)] + ([] if build else ["--cached-only"])
    with contextlib.ExitStack() as stack:
        stderr: Any = subprocess.PIPE
        if log_file is not None:
            stderr = stack.enter_context(log_file.open("wb"))
        proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=stderr, check=False)
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace") if log_file is None else tail(log_file)
        raise ControlPlaneError(
            f"{BUILD_SCRIPT.relative_to(REPO_ROOT)} exited {proc.returncode}:\n{detail}"
        )
    return Path(proc.stdout.decode().strip().splitlines()[-1])


def new_api_client(kubeconfig: Path) -> Any:
    """A kubernetes.client.ApiClient for a kubeconfig file (the caller closes it)."""
    from kubernetes import config

    factory: Any = config.new_client_from_config  # untyped upstream
    return factory(config_file=str(kubeconfig))


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (racy by nature, good enough here)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tail(path: Path, lines: int = 60) -> str:
    """The last lines of a (log) file, or a note that it is missing."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"<{path} does not exist>"
    return "\n".join(text.splitlines()[-lines:])


def etcd_args(data_dir: Path, client_port: int, peer_port: int) -> list[str]:
    """etcd flags: a single throwaway member on loopback, plain HTTP."""
    client_url = f"http://127.0.0.1:{client_port}"
    peer_url = f"http://127.0.0.1:{peer_port}"
    return [
        "--name=test",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client_url}",
        f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=test={peer_url}",
        "--initial-cluster-state=new",
        # The data is thrown away with the session: skip fsync for speed.
        "--unsafe-no-fsync",
        "--log-level=warn",
    ]


def apiserver_args(
    *,
    pki: PKI,
    etcd_port: int,
    secure_port: int,
    cert_dir: Path,
    verbosity: int,
) -> list[str]:
    """kube-apiserver flags, close to what envtest uses, with RBAC switched on."""
    return [
        f"--etcd-servers=http://127.0.0.1:{etcd_port}",
        # Serve HTTPS on loopback only, with our throwaway serving certificate.
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={secure_port}",
        f"--cert-dir={cert_dir}",
        f"--tls-cert-file={pki.serving_cert}",
        f"--tls-private-key-file={pki.serving_key}",
        # Client certificates signed by our CA authenticate (admin: O=system:masters).
        f"--client-ca-file={pki.ca_cert}",
        # Service-account tokens (TokenRequest) are signed and verified with our keys.
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={pki.sa_public_key}",
        f"--service-account-signing-key-file={pki.sa_private_key}",
        # pods/log goes to the process kubelet over mutual TLS with certs from our CA.
        f"--kubelet-certificate-authority={pki.ca_cert}",
        f"--kubelet-client-certificate={pki.kubelet_client_cert}",
        f"--kubelet-client-key={pki.kubelet_client_key}",
        # Real authorization, so tests can prove RBAC. (No Node authorizer: the process
        # kubelet writes node and pod status with admin credentials.)
        "--authorization-mode=RBAC",
        # Needed for Services; nothing routes to it.
        "--service-cluster-ip-range=10.0.0.0/24",
        # No controller-manager runs. Default admission plugins stay on: they work
        # without controllers, provided each namespace has a `default`
        # ServiceAccount (ServiceAccount admission), which the fixtures create.
        # The apiserver must not try to maintain the `kubernetes` Endpoints for
        # a loopback address.
        "--endpoint-reconciler-type=none",
        "--allow-privileged=true",
        "--profiling=false",
        f"--v={verbosity}",
    ]


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM a process if it still runs; SIGKILL it after 10 s."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class ControlPlane:
    """A running etcd + kube-apiserver pair and everything needed to talk to it."""

    workdir: Path
    binaries: Path
    pki: PKI
    etcd_port: int
    secure_port: int
    kubeconfig: Path
    etcd_log: Path
    apiserver_log: Path
    timings: dict[str, float] = field(default_factory=dict)
    _processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _apiserver_args: list[str] = field(default_factory=list)
    _api_client: Any = None

    # ---- lifecycle -------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        workdir: Path,
        *,
        binaries: Path | None = None,
        ready_timeout: float = 90.0,
        verbosity: int | None = None,
    ) -> ControlPlane:
        """Start etcd and kube-apiserver in workdir; return when /readyz says ok.

        verbosity: kube-apiserver's --v (default $RB_APISERVER_VERBOSITY or 0).
        """
        if verbosity is None:
            verbosity = int(os.environ.get("RB_APISERVER_VERBOSITY") or 0)
        workdir.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        if binaries is None:
            binaries = find_binaries(log_file=workdir / "build.log")
        t_bin = time.monotonic()

        pki = generate_pki(workdir / "pki")
        etcd_port, peer_port, secure_port = free_port(), free_port(), free_port()
        cp = cls(
            workdir=workdir,
            binaries=binaries,
            pki=pki,
            etcd_port=etcd_port,
            secure_port=secure_port,
            kubeconfig=workdir / "admin.kubeconfig",
            etcd_log=workdir / "etcd.log",
            apiserver_log=workdir / "kube-apiserver.log",
        )
        cp.timings["binaries"] = t_bin - t0
        try:
            cp._spawn(
                binaries / "etcd",
                etcd_args(workdir / "etcd-data", etcd_port, peer_port),
                cp.etcd_log,
            )
            # No need to wait for etcd: kube-apiserver retries until it answers.
            cp._apiserver_args = apiserver_args(
                pki=pki,
                etcd_port=etcd_port,
                secure_port=secure_port,
                cert_dir=workdir / "apiserver-certs",
                verbosity=verbosity,
            )
            cp._spawn(binaries / "kube-apiserver", cp._apiserver_args, cp.apiserver_log)
            cp._wait_ready(ready_timeout)
            cp._write_kubeconfig()
            cp.timings["ready"] = time.monotonic() - t_bin
            # Pods in `default` need its ServiceAccount too (no controller makes it).
            cp.ensure_service_account("default", "default")
        except BaseException:
            cp.stop()
            raise
        return cp

    def _spawn(self, binary: Path, args: Sequence[str], log: Path) -> None:
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [str(binary), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                start_new_session=True,  # Ctrl-C in the terminal is for pytest, not for us
            )
        self._processes.append(proc)

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        ctx.load_cert_chain(str(self.pki.admin_cert), str(self.pki.admin_key))
        return ctx

    def _wait_ready(self, timeout: float) -> None:
        url = f"{self.server}/readyz"
        ctx = self._ssl_context()
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            for proc, log in zip(self._processes, (self.etcd_log, self.apiserver_log), strict=True):
                if proc.poll() is not None:
                    raise ControlPlaneError(
                        f"{Path(str(proc.args[0])).name} exited with {proc.returncode}:\n"  # type: ignore[index]
                        + tail(log)
                    )
            try:
                with urllib.request.urlopen(url, context=ctx, timeout=5) as resp:
                    if resp.status == 200:
                        return
            except urllib.error.HTTPError as e:  # 500 while post-start hooks run
                last = f"HTTP {e.code}: {e.read().decode(errors='replace')[-500:]}"
            except (urllib.error.URLError, OSError) as e:
                last = repr(e)
            time.sleep(0.2)
        raise ControlPlaneError(
            f"kube-apiserver not ready after {timeout:.0f}s ({last}):\n{tail(self.apiserver_log)}"
        )

    def stop(self) -> None:
        """Stop kube-apiserver, then etcd (SIGTERM, SIGKILL after 10 s)."""
        if self._api_client is not None:
            self._api_client.close()
            self._api_client = None
        for proc in reversed(self._processes):
            _terminate(proc)
        self._processes.clear()

    def stop_apiserver(self) -> None:
        """Stop kube-apiserver alone (SIGTERM, SIGKILL after 10 s): an API server outage.

        etcd keeps running; :meth:`start_apiserver` brings the server back.
        """
        _terminate(self._processes.pop())

    def start_apiserver(self, ready_timeout: float = 90.0) -> None:
        """Start kube-apiserver again on the same etcd, port and keys; wait for /readyz."""
        if len(self._processes) != 1:
            raise ControlPlaneError("start_apiserver: stop_apiserver first")
        self._spawn(self.binaries / "kube-apiserver", self._apiserver_args, self.apiserver_log)
        self._wait_ready(ready_timeout)

    def __enter__(self) -> ControlPlane:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- access ----------------------------------------------------------------------------

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.secure_port}"

    def alive(self) -> bool:
        return bool(self._processes) and all(p.poll() is None for p in self._processes)

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "test",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority": str(self.pki.ca_cert),
                    },
                }
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {
                        "client-certificate": str(self.pki.admin_cert),
                        "client-key": str(self.pki.admin_key),
                    },
                }
            ],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
            "current-context": "test",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))

    def token_kubeconfig(self, path: Path, token: str, *, namespace: str = "default") -> Path:
        """Write a kubeconfig that authenticates with a bearer token (e.g. a pod's SA)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "test",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority": str(self.pki.ca_cert),
                    },
                }
            ],
            "users": [{"name": "token", "user": {"token": token}}],
            "contexts": [
                {
                    "name": "test",
                    "context": {"cluster": "test", "user": "token", "namespace": namespace},
                }
            ],
            "current-context": "test",
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def api_client(self) -> Any:
        """A shared kubernetes.client.ApiClient authenticated as the admin."""
        if self._api_client is None:
            self._api_client = self.new_api_client()
        return self._api_client

    def new_api_client(self, kubeconfig: Path | None = None) -> Any:
        """A new kubernetes.client.ApiClient (admin by default); the caller closes it."""
        return new_api_client(kubeconfig or self.kubeconfig)

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = False,
        timeout: float = 60,
        kubeconfig: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl against this control plane (admin unless told)."""
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            raise ControlPlaneError("kubectl is not on PATH")
        cmd = [
            kubectl,
            f"--kubeconfig={kubeconfig or self.kubeconfig}",
            f"--cache-dir={self.workdir / 'kubectl-cache'}",
            *args,
        ]
        return subprocess.run(
            cmd, input=input, capture_output=True, text=True, timeout=timeout, check=check
        )

    def logs(self, lines: int = 60) -> str:
        """The tails of the etcd and kube-apiserver logs, for failure reports."""
        return (
            f"--- {self.apiserver_log} ---\n{tail(self.apiserver_log, lines)}\n"
            f"--- {self.etcd_log} ---\n{tail(self.etcd_log, lines)}"
        )

    # ---- setup helpers ---------------------------------------------------------------------

    def ensure_service_account(self, namespace: str, name: str = "default") -> None:
        """Create a ServiceAccount if missing (no token controller runs here)."""
        from kubernetes import client

        core: Any = client.CoreV1Api(self.api_client())
        try:
            core.create_namespaced_service_account(
                namespace, {"metadata": {"name": name}}, _preload_content=False
            )
        except client.ApiException as e:
            if e.status != 409:
                raise

    def create_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        """Create a namespace with its `default` ServiceAccount."""
        from kubernetes import client

        core: Any = client.CoreV1Api(self.api_client())
        body = {"metadata": {"name": name, "labels": labels or {}}}
        core.create_namespace(body, _preload_content=False)
        self.ensure_service_account(name)

    def delete_namespace(self, name: str) -> None:
        """Delete a namespace. Without a namespace controller it stays Terminating."""
        from kubernetes import client

        core: Any = client.CoreV1Api(self.api_client())
        with contextlib.suppress(client.ApiException):
            core.delete_namespace(name, _preload_content=False)

    def install_crds(self, paths: Iterable[Path], timeout: float = 30.0) -> list[str]:
        """Create (or replace) every CRD in the YAML files; wait until Established.

        Returns the CRD names. Documents that are not CRDs are rejected: crds/ is
        for CRDs only.
        """
        from kubernetes import client

        ext: Any = client.ApiextensionsV1Api(self.api_client())
        names: list[str] = []
        for path in paths:
            for doc in yaml.safe_load_all(path.read_text()):
                if not doc:
                    continue
                if doc.get("kind") != "CustomResourceDefinition":
                    raise ControlPlaneError(
                        f"{path}: not a CustomResourceDefinition: {doc.get('kind')}"
                    )
                name = doc["metadata"]["name"]
                try:
                    ext.create_custom_resource_definition(doc, _preload_content=False)
                except client.ApiException as e:
                    if e.status != 409:
                        raise ControlPlaneError(f"{path}: CRD {name} rejected: {e.body}") from e
                    current = self._get_json(
                        ext.read_custom_resource_definition(name, _preload_content=False)
                    )
                    doc["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                    ext.replace_custom_resource_definition(name, doc, _preload_content=False)
                names.append(name)
        deadline = time.monotonic() + timeout
        pending = list(names)
        while pending:
            crd = self._get_json(
                ext.read_custom_resource_definition(pending[0], _preload_content=False)
            )
            status = crd.get("status") or {}
            conditions = {c["type"]: c for c in status.get("conditions") or []}
            if conditions.get("Established", {}).get("status") == "True":
                pending.pop(0)
                continue
            if time.monotonic() > deadline:
                found = list(conditions.values())
                raise ControlPlaneError(
                    f"CRD {pending[0]} not Established after {timeout}s: {found}"
                )
            time.sleep(0.1)
        return names

    @staticmethod
    def _get_json(resp: Any) -> Any:
        return json.loads(resp.data)


@contextlib.contextmanager
def running_control_plane(workdir: Path, **kwargs: Any) -> Iterator[ControlPlane]:
    """Context manager form of ControlPlane.start (stops it on exit)."""
    cp = ControlPlane.start(workdir, **kwargs)
    try:
        yield cp
    finally:
        cp.stop()


__all__ = [
    "BUILD_SCRIPT",
    "REPO_ROOT",
    "SERVICE_ACCOUNT_ISSUER",
    "ControlPlane",
    "ControlPlaneError",
    "find_binaries",
    "free_port",
    "new_api_client",
    "running_control_plane",
    "tail",
]
