"""Pytest plugin: a real control plane, a process kubelet and per-test namespaces.

Load it from a conftest.py (``from tests.kube.plugin import *``) or with
``-p tests.kube.plugin``. Fixtures:

- ``controlplane`` (session): etcd + kube-apiserver on loopback with RBAC, the
  CRDs from crds/ installed and Established. A ControlPlane (see controlplane.py).
- ``kubeconfig`` (session): path of the admin kubeconfig (user in system:masters).
- ``k8s_client`` (session): a kubernetes.client.ApiClient for the admin.
- ``kubectl`` (session): ``kubectl(*args, input=None, check=False)`` runs the real
  kubectl against the control plane; returns subprocess.CompletedProcess.
- ``kubelet`` (session): a running ProcessKubelet for all namespaces.
- ``namespace`` (function): a fresh namespace (with its `default`
  ServiceAccount); its pods' processes are killed at teardown.
- ``crd_paths`` (session): the CRD files installed ($RB_TEST_CRDS_DIR overrides crds/).
- ``kueue`` (session): Kueue's real controller manager on the control plane (see
  kueue.py). It never skips: when Kueue cannot be built or started, its tests fail
  with the reason and the manager's log.

When the control plane cannot start, tests are skipped with the reason, except
in CI (CI=true), where they fail with it. Failed tests get the tails of the
etcd/kube-apiserver logs (and of their namespace's pod logs) in the report.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from .controlplane import REPO_ROOT, ControlPlane, ControlPlaneError, find_binaries, tail
from .kubelet import ProcessKubelet
from .kubelet_logs import ServingTLS
from .kueue import Kueue, KueueError, find_assets

Kubectl = Callable[..., Any]

_STATE: dict[str, Any] = {}  # the running control plane and kubelet, for the hooks


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> NoReturn:
    """Skip (developer machine) or fail (CI=true): the integration tier never skips in CI."""
    if in_ci():
        pytest.fail(f"control plane unavailable (CI=true, so this fails): {reason}", pytrace=False)
    pytest.skip(f"control plane unavailable: {reason}")


@pytest.fixture(scope="session")
def crd_paths() -> list[Path]:
    """The CRD manifests to install: every YAML file in crds/ (or $RB_TEST_CRDS_DIR)."""
    directory = Path(os.environ.get("RB_TEST_CRDS_DIR") or REPO_ROOT / "crds")
    paths = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    if not paths:
        unavailable(f"no CRD manifests in {directory}")
    return paths


@pytest.fixture(scope="session")
def controlplane(
    tmp_path_factory: pytest.TempPathFactory, crd_paths: list[Path]
) -> Iterator[ControlPlane]:
    workdir = tmp_path_factory.mktemp("controlplane")
    binaries = _STATE.get("binaries")
    if isinstance(binaries, Exception):
        unavailable(str(binaries))
    try:
        cp = ControlPlane.start(workdir, binaries=binaries)
    except (ControlPlaneError, OSError) as e:
        unavailable(str(e))
    _STATE["controlplane"] = cp
    try:
        t0 = time.monotonic()
        cp.install_crds(crd_paths)
        cp.timings["crds"] = time.monotonic() - t0
        _STATE["timings"] = cp.timings  # for the terminal summary
        yield cp
    finally:
        _STATE.pop("controlplane", None)
        cp.stop()


@pytest.fixture(scope="session")
def kubeconfig(controlplane: ControlPlane) -> Path:
    return controlplane.kubeconfig


@pytest.fixture(scope="session")
def k8s_client(controlplane: ControlPlane) -> Any:
    """Admin kubernetes.client.ApiClient (shared; don't close it)."""
    return controlplane.api_client()


@pytest.fixture(scope="session")
def kubectl(controlplane: ControlPlane) -> Kubectl:
    return controlplane.kubectl


@pytest.fixture(scope="session")
def kubelet(controlplane: ControlPlane) -> Iterator[ProcessKubelet]:
    pods_dir = controlplane.workdir / "pods"
    pki = controlplane.pki
    tls = ServingTLS(cert=pki.kubelet_cert, key=pki.kubelet_key, client_ca=pki.ca_cert)
    kl = ProcessKubelet(controlplane.kubeconfig, pods_dir, tls=tls).start()
    _STATE["kubelet"] = kl
    try:
        yield kl
    finally:
        _STATE.pop("kubelet", None)
        kl.stop()


@pytest.fixture(scope="session")
def kueue(controlplane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kueue]:
    assets = _STATE.get("kueue_assets")
    try:
        if isinstance(assets, Exception):
            raise assets
        if assets is None:
            assets = find_assets()
        started = Kueue.start(controlplane, tmp_path_factory.mktemp("kueue"), assets)
    except (KueueError, OSError) as e:
        pytest.fail(f"Kueue cannot run here: {e}", pytrace=False)
    _STATE["kueue"] = started
    try:
        yield started
    finally:
        _STATE.pop("kueue", None)
        started.stop()


def _build_kueue(session: pytest.Session, reporter: Any) -> None:
    """Build (or find) Kueue once, before any test's timeout ticks, if a test needs it."""
    if "kueue_assets" in _STATE:
        return
    if not any("kueue" in getattr(item, "fixturenames", ()) for item in session.items):
        return
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    log_file = cache / "resumable-batch" / "kueue" / "build.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    try:
        _STATE["kueue_assets"] = find_assets(log_file=log_file)
    except (KueueError, OSError) as e:
        _STATE["kueue_assets"] = e
        return
    if reporter is not None and time.monotonic() - t0 > 5:
        reporter.write_line(f"Kueue built in {time.monotonic() - t0:.0f}s; log: {log_file}")


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build (or find) the binaries once, before any test's timeout starts ticking.

    Only when a selected test needs the control plane; the first build takes
    minutes (see tests/controlplane/build.sh), later runs find the cache at once.
    """
    if session.config.option.collectonly or "binaries" in _STATE:
        return
    if not any("controlplane" in getattr(item, "fixturenames", ()) for item in session.items):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    _build_kueue(session, reporter)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    log_file = cache / "resumable-batch" / "controlplane" / "build.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        _STATE["binaries"] = find_binaries(build=False)
    except ControlPlaneError:
        if reporter is not None:
            reporter.write_line(
                "building kube-apiserver and etcd with Go (first run only, minutes); "
                f"log: {log_file}"
            )
        t0 = time.monotonic()
        try:
            _STATE["binaries"] = find_binaries(build=True, log_file=log_file)
        except (ControlPlaneError, OSError) as e:
            _STATE["binaries"] = e
            return
        if reporter is not None:
            reporter.write_line(f"control-plane binaries built in {time.monotonic() - t0:.0f}s")


def _namespace_name(nodeid: str) -> str:
    """A DNS-1123 label derived from the test's name, unique per call."""
    base = re.sub(r"[^a-z0-9]+", "-", nodeid.split("::")[-1].lower()).strip("-")[:40].strip("-")
    salt = hashlib.sha1(f"{nodeid}{time.time_ns()}".encode()).hexdigest()[:6]
    return f"t-{base}-{salt}" if base else f"t-{salt}"


@pytest.fixture
def namespace(controlplane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    name = _namespace_name(request.node.nodeid)
    controlplane.create_namespace(name, labels={"resumable.dev/test": "true"})
    request.node.stash[_NAMESPACE_KEY] = name
    try:
        yield name
    finally:
        kl = _STATE.get("kubelet")
        if kl is not None:
            kl.forget_namespace(name)
        # Without a namespace controller it stays Terminating, which is harmless.
        controlplane.delete_namespace(name)


_NAMESPACE_KEY = pytest.StashKey[str]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    cp: ControlPlane | None = _STATE.get("controlplane")
    if report.failed and cp is not None and "controlplane" in getattr(item, "fixturenames", ()):
        report.sections.append(("control plane logs (tail)", cp.logs(40)))
        running: Kueue | None = _STATE.get("kueue")
        if running is not None and "kueue" in getattr(item, "fixturenames", ()):
            report.sections.append(("Kueue log (tail)", running.logs(40)))
        namespace = item.stash.get(_NAMESPACE_KEY, None)
        kl: ProcessKubelet | None = _STATE.get("kubelet")
        if namespace and kl is not None:
            parts = [
                f"--- {run.name}: {run.log_path} ---\n{tail(run.log_path, 30)}"
                for run in kl.runs(namespace)
            ]
            if parts:
                report.sections.append((f"pod logs in {namespace} (tail)", "\n".join(parts)))
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    timings = _STATE.get("timings")
    if timings:
        terminalreporter.write_line(
            "control plane: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items())
        )


__all__ = [
    "controlplane",
    "crd_paths",
    "k8s_client",
    "kubeconfig",
    "kubectl",
    "kubelet",
    "kueue",
    "namespace",
    "pytest_collection_finish",
    "pytest_runtest_makereport",
    "pytest_terminal_summary",
]
