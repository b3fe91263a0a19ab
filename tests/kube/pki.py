"""Throwaway PKI for the test control plane: a CA, certificates and keys.

Everything here is generated per test session with the `cryptography` package
and written to a private temporary directory; nothing is meant to outlive it.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = datetime.timedelta(days=2)


@dataclass(frozen=True)
class PKI:
    """Paths of the PEM files that the control plane and its clients use."""

    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    sa_private_key: Path  # signs service-account tokens (kube-apiserver)
    sa_public_key: Path  # verifies them
    kubelet_cert: Path  # the process kubelet's serving cert (127.0.0.1), verified by the apiserver
    kubelet_key: Path
    kubelet_client_cert: Path  # what the apiserver presents to the kubelet (pods/log)
    kubelet_client_key: Path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def _issue(
    *,
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    usage: x509.ObjectIdentifier,
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def generate_pki(directory: Path) -> PKI:
    """Create a CA, the apiserver's serving cert, an admin client cert, kubelet certs, SA keys."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("resumable-batch-test-ca"))
        .issuer_name(_name("resumable-batch-test-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(
        subject: x509.Name, usage: x509.ObjectIdentifier, sans: list[x509.GeneralName] | None = None
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """A new key and its certificate, signed by the CA."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(
            subject=subject, key=key, ca_cert=ca_cert, ca_key=ca_key, usage=usage, sans=sans
        )
        return key, cert

    loopback = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
    serving_key, serving_cert = leaf(
        _name("kube-apiserver"),
        ExtendedKeyUsageOID.SERVER_AUTH,
        [
            x509.DNSName("localhost"),
            x509.DNSName("kubernetes"),
            x509.DNSName("kubernetes.default"),
            x509.DNSName("kubernetes.default.svc"),
            loopback,
        ],
    )
    # The client-certificate authenticator maps O= to groups: system:masters is
    # bound to cluster-admin by the RBAC bootstrap policy.
    admin_key, admin_cert = leaf(
        _name("test-admin", "system:masters"), ExtendedKeyUsageOID.CLIENT_AUTH
    )
    # The apiserver reaches the kubelet (pods/log) over mutual TLS, as in a real cluster:
    # it checks the kubelet's serving cert against our CA, and the kubelet its client cert.
    kubelet_key, kubelet_cert = leaf(
        _name("system:node:process-kubelet", "system:nodes"),
        ExtendedKeyUsageOID.SERVER_AUTH,
        [x509.DNSName("localhost"), loopback],
    )
    kubelet_client_key, kubelet_client_cert = leaf(
        _name("kube-apiserver-kubelet-client", "kubeadm:cluster-admins"),
        ExtendedKeyUsageOID.CLIENT_AUTH,
    )

    # Service-account tokens are JWTs signed with RS256 by default.
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    pki = PKI(
        ca_cert=directory / "ca.crt",
        ca_key=directory / "ca.key",
        serving_cert=directory / "apiserver.crt",
        serving_key=directory / "apiserver.key",
        admin_cert=directory / "admin.crt",
        admin_key=directory / "admin.key",
        sa_private_key=directory / "sa.key",
        sa_public_key=directory / "sa.pub",
        kubelet_cert=directory / "kubelet.crt",
        kubelet_key=directory / "kubelet.key",
        kubelet_client_cert=directory / "apiserver-kubelet-client.crt",
        kubelet_client_key=directory / "apiserver-kubelet-client.key",
    )
    for cert_path, cert, key_path, key in (
        (pki.ca_cert, ca_cert, pki.ca_key, ca_key),
        (pki.serving_cert, serving_cert, pki.serving_key, serving_key),
        (pki.admin_cert, admin_cert, pki.admin_key, admin_key),
        (pki.kubelet_cert, kubelet_cert, pki.kubelet_key, kubelet_key),
        (pki.kubelet_client_cert, kubelet_client_cert, pki.kubelet_client_key, kubelet_client_key),
    ):
        _write_cert(cert_path, cert)
        _write_key(key_path, key)
    _write_key(pki.sa_private_key, sa_key)
    pki.sa_public_key.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )
    )
    return pki
