"""Kueue's real controller manager against the test control plane, on loopback.

The manager is built once from its Go module (tests/controlplane/kueue/build.sh,
cached beside kube-apiserver) and started as a subprocess with the admin
kubeconfig, the way a cluster runs it, minus the Deployment and its Service:

* its CRDs from the release (config/components/crd/bases), the five that convert
  between versions with their conversion webhook at ``https://127.0.0.1:<port>/convert``
  (what the release's kustomize patches point at the webhook Service);
* its webhook configurations from the release (config/components/webhook),
  named as the release names them and pointed at ``https://127.0.0.1:<port><path>``;
  only the webhooks of Kueue's own API group: those of the job integrations
  (Pods, Jobs, ...) would intercept every test's pods;
* its own certificate management on (``internalCertManagement``), started from a
  Secret seeded with a CA and a serving certificate that is valid for the
  webhook Service's DNS name *and* 127.0.0.1: the rotator finds them valid,
  keeps them and injects the CA into the webhooks and CRDs itself. The files it
  expects mounted from the Secret are written to the webhook's certDir;
* leader election off, metrics and health probes on free loopback ports, and
  the VisibilityOnDemand feature (an extra API server on a fixed port) off.

:meth:`Kueue.start` returns once /readyz answers (certificates ready, webhook
server listening) and raises :class:`KueueError` with the log's tail when the
manager cannot start: the fixtures turn that into a failure, never a skip.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import ipaddress
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .controlplane import REPO_ROOT, ControlPlane, free_port, tail

BUILD_SCRIPT = REPO_ROOT / "tests" / "controlplane" / "kueue" / "build.sh"
GROUP = "kueue.x-k8s.io"
VERSION = "v1beta2"
#: Where Kueue keeps its Secret (the Configuration's namespace).
NAMESPACE = "kueue-system"
#: The names the release's kustomization gives (its namePrefix "kueue-").
WEBHOOK_SERVICE = "kueue-webhook-service"
WEBHOOK_SECRET = "kueue-webhook-server-cert"
#: The CRDs Kueue's cert rotator injects a CA into (pkg/util/cert): they convert.
CONVERTED_CRDS = (
    "localqueues.kueue.x-k8s.io",
    "clusterqueues.kueue.x-k8s.io",
    "workloads.kueue.x-k8s.io",
    "cohorts.kueue.x-k8s.io",
    "multikueueclusters.kueue.x-k8s.io",
)
#: A flavour every queue of the tests uses; its node labels and taint toleration
#: reach the admitted workers' pods.
FLAVOR = "test-flavor"
FLAVOR_NODE_LABELS = {"resumable.dev/test-pool": "kueue"}
FLAVOR_TOLERATION = {
    "key": "resumable.dev/test-pool",
    "operator": "Equal",
    "value": "kueue",
    "effect": "NoSchedule",
}


class KueueError(RuntimeError):
    """Kueue could not be built, configured or started."""


def find_assets(*, log_file: Path | None = None) -> Path:
    """The directory with the kueue binary, its CRDs and webhooks (building it once)."""
    with contextlib.ExitStack() as stack:
        stderr: Any = subprocess.PIPE
        if log_file is not None:
            stderr = stack.enter_context(log_file.open("wb"))
        proc = subprocess.run(
            ["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, stderr=stderr, check=False
        )
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace") if log_file is None else tail(log_file)
        raise KueueError(
            f"{BUILD_SCRIPT.relative_to(REPO_ROOT)} exited {proc.returncode}:\n{detail}"
        )
    return Path(proc.stdout.decode().strip().splitlines()[-1])


# ------------------------------------------------------------------------- certificates


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    # PKCS#1: the cert rotator reads the CA key back in that form (buildArtifactsFromSecret).
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True)
class WebhookCerts:
    """The seeded Secret's four PEMs."""

    ca_cert: bytes
    ca_key: bytes
    cert: bytes
    key: bytes


def webhook_certs() -> WebhookCerts:
    """A CA named as the rotator names its own (``kueue-ca``) and a serving certificate
    valid for the webhook Service's DNS name and 127.0.0.1, both for a year: the
    rotator looks 90 days ahead and would replace anything shorter-lived."""
    now = datetime.datetime.now(datetime.UTC)
    year = datetime.timedelta(days=365)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "kueue-ca"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kueue"),
        ]
    )
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + year)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("kueue-ca")]), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    dns = f"{WEBHOOK_SERVICE}.{NAMESPACE}.svc"
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + year)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(dns), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return WebhookCerts(_pem_cert(ca), _pem_key(ca_key), _pem_cert(cert), _pem_key(key))


# ---------------------------------------------------------------------- manifests


def conversion_crd(doc: dict[str, Any], url: str, ca_bundle: str) -> dict[str, Any]:
    """The CRD with its conversion webhook at ``url`` (the release patches it to a Service)."""
    if doc["metadata"]["name"] in CONVERTED_CRDS:
        doc["spec"]["conversion"] = {
            "strategy": "Webhook",
            "webhook": {
                "clientConfig": {"url": url, "caBundle": ca_bundle},
                "conversionReviewVersions": ["v1"],
            },
        }
    return doc


def loopback_webhooks(doc: dict[str, Any], base: str, ca_bundle: str) -> dict[str, Any] | None:
    """A webhook configuration of the release, named as deployed and pointed at ``base``,
    with only the webhooks for Kueue's own API group (None if none is left)."""
    kept = []
    for hook in doc.get("webhooks") or []:
        groups = {g for rule in hook.get("rules") or [] for g in rule.get("apiGroups") or []}
        if groups != {GROUP}:
            continue
        path = hook["clientConfig"]["service"]["path"]
        hook["clientConfig"] = {"url": f"{base}{path}", "caBundle": ca_bundle}
        kept.append(hook)
    if not kept:
        return None
    doc["webhooks"] = kept
    doc["metadata"] = {"name": f"kueue-{doc['metadata']['name']}"}
    return doc


def configuration(
    *, webhook_port: int, cert_dir: Path, metrics_port: int, health_port: int
) -> dict[str, Any]:
    """Kueue's Configuration (config.kueue.x-k8s.io/v1beta2) for a loopback manager."""
    return {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "namespace": NAMESPACE,
        "health": {"healthProbeBindAddress": f"127.0.0.1:{health_port}"},
        "metrics": {"bindAddress": f"127.0.0.1:{metrics_port}"},
        "webhook": {"host": "127.0.0.1", "port": webhook_port, "certDir": str(cert_dir)},
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {
            "enable": True,
            "webhookServiceName": WEBHOOK_SERVICE,
            "webhookSecretName": WEBHOOK_SECRET,
        },
        "integrations": {"frameworks": ["batch/job"]},
        "featureGates": {"VisibilityOnDemand": False},
    }


# --------------------------------------------------------------------------- running


@dataclass
class Kueue:
    """A running Kueue manager and the means to give it queues."""

    cp: ControlPlane
    workdir: Path
    log: Path
    health_port: int
    process: subprocess.Popen[bytes] | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @classmethod
    def start(
        cls, cp: ControlPlane, workdir: Path, assets: Path, *, ready_timeout: float = 120.0
    ) -> Kueue:
        """Install Kueue's CRDs and webhooks, start the manager, wait for /readyz."""
        workdir.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        webhook_port, metrics_port, health_port = free_port(), free_port(), free_port()
        kueue = cls(cp, workdir, workdir / "kueue.log", health_port)
        certs = webhook_certs()
        ca_bundle = base64.b64encode(certs.ca_cert).decode()
        cert_dir = workdir / "certs"
        cert_dir.mkdir(exist_ok=True)
        (cert_dir / "tls.crt").write_bytes(certs.cert)
        (cert_dir / "tls.key").write_bytes(certs.key)
        (cert_dir / "tls.key").chmod(0o600)
        base = f"https://127.0.0.1:{webhook_port}"
        kueue._install_crds(assets / "crd", f"{base}/convert", ca_bundle)
        kueue._seed_secret(certs)
        kueue._install_webhooks(assets / "webhook.yaml", base, ca_bundle)
        config = workdir / "config.yaml"
        config.write_text(
            yaml.safe_dump(
                configuration(
                    webhook_port=webhook_port,
                    cert_dir=cert_dir,
                    metrics_port=metrics_port,
                    health_port=health_port,
                )
            )
        )
        kueue.timings["install"] = time.monotonic() - t0
        env = {**os.environ, "KUBECONFIG": str(cp.kubeconfig)}
        with kueue.log.open("ab") as out:
            kueue.process = subprocess.Popen(
                [str(assets / "kueue"), f"--config={config}", "--zap-log-level=2"],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=workdir,
                env=env,
                start_new_session=True,
            )
        try:
            kueue._wait_ready(ready_timeout)
            kueue.ensure_flavor()
        except BaseException:
            kueue.stop()
            raise
        kueue.timings["ready"] = time.monotonic() - t0
        return kueue

    def _install_crds(self, directory: Path, url: str, ca_bundle: str) -> None:
        out = self.workdir / "crd"
        out.mkdir(exist_ok=True)
        paths = []
        for path in sorted(directory.glob("*.yaml")):
            doc = yaml.safe_load(path.read_text())
            target = out / path.name
            target.write_text(yaml.safe_dump(conversion_crd(doc, url, ca_bundle)))
            paths.append(target)
        if not paths:
            raise KueueError(f"no CRDs in {directory}")
        self.cp.install_crds(paths, timeout=60.0)

    def _seed_secret(self, certs: WebhookCerts) -> None:
        from kubernetes import client

        core: Any = client.CoreV1Api(self.cp.api_client())
        with contextlib.suppress(client.ApiException):  # there already: a second start
            self.cp.create_namespace(NAMESPACE)

        def b64(data: bytes) -> str:
            return base64.b64encode(data).decode()

        body = {
            "metadata": {"name": WEBHOOK_SECRET, "namespace": NAMESPACE},
            "data": {
                "ca.crt": b64(certs.ca_cert),
                "ca.key": b64(certs.ca_key),
                "tls.crt": b64(certs.cert),
                "tls.key": b64(certs.key),
            },
        }
        with contextlib.suppress(client.ApiException):
            core.delete_namespaced_secret(WEBHOOK_SECRET, NAMESPACE, _preload_content=False)
        core.create_namespaced_secret(NAMESPACE, body, _preload_content=False)

    def _install_webhooks(self, manifests: Path, base: str, ca_bundle: str) -> None:
        from kubernetes import client

        adm: Any = client.AdmissionregistrationV1Api(self.cp.api_client())
        for doc in yaml.safe_load_all(manifests.read_text()):
            if not doc:
                continue
            hooks = loopback_webhooks(doc, base, ca_bundle)
            if hooks is None:
                continue
            name = hooks["metadata"]["name"]
            if doc["kind"] == "MutatingWebhookConfiguration":
                create, delete = (
                    adm.create_mutating_webhook_configuration,
                    adm.delete_mutating_webhook_configuration,
                )
            else:
                create, delete = (
                    adm.create_validating_webhook_configuration,
                    adm.delete_validating_webhook_configuration,
                )
            with contextlib.suppress(client.ApiException):
                delete(name, _preload_content=False)
            create(hooks, _preload_content=False)

    def _wait_ready(self, timeout: float) -> None:
        url = f"http://127.0.0.1:{self.health_port}/readyz"
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise KueueError(f"kueue exited with {code}:\n{tail(self.log)}")
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    if resp.status == 200:
                        return
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code}: {e.read().decode(errors='replace')[-300:]}"
            except (urllib.error.URLError, OSError) as e:
                last = repr(e)
            time.sleep(0.3)
        raise KueueError(f"kueue not ready after {timeout:.0f}s ({last}):\n{tail(self.log)}")

    def stop(self) -> None:
        """SIGTERM the manager (SIGKILL after 10 s)."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def alive(self) -> bool:
        """True while the manager runs."""
        return self.process is not None and self.process.poll() is None

    def logs(self, lines: int = 60) -> str:
        """The tail of the manager's log, for failure reports."""
        return f"--- {self.log} ---\n{tail(self.log, lines)}"

    # ------------------------------------------------------------------- objects

    def _custom(self) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(self.cp.api_client())

    def _create(self, plural: str, body: dict[str, Any], namespace: str | None = None) -> None:
        from kubernetes import client

        api = self._custom()
        body = {"apiVersion": f"{GROUP}/{VERSION}", **body}
        try:
            if namespace is None:
                api.create_cluster_custom_object(GROUP, VERSION, plural, body)
            else:
                api.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)
        except client.ApiException as e:
            if e.status != 409:
                raise KueueError(f"{plural} {body['metadata']['name']} refused: {e.body}") from e

    def ensure_flavor(self) -> None:
        """The ResourceFlavor every test queue uses (node labels and a toleration)."""
        self._create(
            "resourceflavors",
            {
                "kind": "ResourceFlavor",
                "metadata": {"name": FLAVOR},
                "spec": {"nodeLabels": FLAVOR_NODE_LABELS, "tolerations": [FLAVOR_TOLERATION]},
            },
        )

    def queue(
        self,
        namespace: str,
        *,
        cpu: str,
        name: str = "batches",
        preempt_lower_priority: bool = False,
        timeout: float = 60.0,
    ) -> str:
        """A ClusterQueue (named after the namespace) with ``cpu`` of quota in the test
        flavour and a LocalQueue ``name`` in the namespace; returns once it is Active."""
        preemption = {"withinClusterQueue": "LowerPriority"} if preempt_lower_priority else {}
        self._create(
            "clusterqueues",
            {
                "kind": "ClusterQueue",
                "metadata": {"name": namespace},
                "spec": {
                    "namespaceSelector": {},
                    "preemption": preemption,
                    "resourceGroups": [
                        {
                            "coveredResources": ["cpu", "memory"],
                            "flavors": [
                                {
                                    "name": FLAVOR,
                                    "resources": [
                                        {"name": "cpu", "nominalQuota": cpu},
                                        {"name": "memory", "nominalQuota": "64Gi"},
                                    ],
                                }
                            ],
                        }
                    ],
                },
            },
        )
        self._create(
            "localqueues",
            {
                "kind": "LocalQueue",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"clusterQueue": namespace},
            },
            namespace,
        )
        deadline = time.monotonic() + timeout
        while True:
            lq = self._custom().get_namespaced_custom_object(
                GROUP, VERSION, namespace, "localqueues", name
            )
            active = {c["type"]: c for c in (lq.get("status") or {}).get("conditions") or []}
            if active.get("Active", {}).get("status") == "True":
                return name
            if time.monotonic() > deadline:
                raise KueueError(
                    f"LocalQueue {namespace}/{name} not Active after {timeout:.0f}s: "
                    f"{json.dumps(active)}\n{tail(self.log)}"
                )
            time.sleep(0.2)

    def priority_class(self, name: str, value: int) -> None:
        """A WorkloadPriorityClass."""
        self._create(
            "workloadpriorityclasses",
            {"kind": "WorkloadPriorityClass", "metadata": {"name": name}, "value": value},
        )

    def workloads(self, namespace: str) -> list[dict[str, Any]]:
        """The Workloads in a namespace."""
        listing = self._custom().list_namespaced_custom_object(
            GROUP, VERSION, namespace, "workloads"
        )
        items: list[dict[str, Any]] = listing.get("items", [])
        return items


@contextlib.contextmanager
def running_kueue(cp: ControlPlane, workdir: Path, assets: Path) -> Iterator[Kueue]:
    """Context manager form of :meth:`Kueue.start` (stops it on exit)."""
    kueue = Kueue.start(cp, workdir, assets)
    try:
        yield kueue
    finally:
        kueue.stop()
