"""Spectr's certificate authority: it signs each agent's server certificate.

The CA lives in the instance folder (`pki/ca.crt`, `pki/ca.key` with mode 0600) and is made on
first use. The portal trusts only this CA when it calls an agent, so an agent certificate is
only good for the address it was issued for.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from flask import current_app

CA_DAYS = 3650
SERVER_DAYS = 825
_lock = threading.Lock()
_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    key_cert_sign=True,
    crl_sign=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    encipher_only=False,
    decipher_only=False,
)


def pki_folder(instance_path: str | None = None) -> Path:
    """The folder holding the CA, inside the instance folder."""
    return Path(instance_path or current_app.instance_path) / "pki"


def ca_certificate_path(instance_path: str | None = None) -> Path:
    """Path of the CA certificate (PEM), creating the CA on first use."""
    folder = pki_folder(instance_path)
    _ensure_ca(folder)
    return folder / "ca.crt"


def ca_certificate_pem(instance_path: str | None = None) -> str:
    """The CA certificate as PEM text."""
    return ca_certificate_path(instance_path).read_text()


def issue_server_certificate(
    common_name: str, addresses: list[str], instance_path: str | None = None
) -> tuple[str, str]:
    """Issue a server certificate for `addresses` (IPs or DNS names); return (cert, key) PEM."""
    folder = pki_folder(instance_path)
    _ensure_ca(folder)
    ca_key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate((folder / "ca.crt").read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName(_names(addresses)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return _cert_pem(certificate), _key_pem(key)


def _names(addresses: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for address in dict.fromkeys(addresses):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(address)))
        except ValueError:
            names.append(x509.DNSName(address))
    return names


def _ensure_ca(folder: Path) -> None:
    with _lock:
        if (folder / "ca.crt").exists() and (folder / "ca.key").exists():
            return
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP384R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Spectr CA")])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_CA_KEY_USAGE, critical=True)
            .sign(key, hashes.SHA384())
        )
        _write_private(folder / "ca.key", _key_pem(key))
        (folder / "ca.crt").write_text(_cert_pem(certificate))


def _write_private(path: Path, content: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)


def _cert_pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
