"""Spectr's certificate authority: agents' server certificates and the portal's client one.

The CA lives in the instance folder (`pki/ca.crt`, `pki/ca.key` with mode 0600) and is made on
first use. The portal trusts only this CA when it calls an agent, so an agent certificate is
only good for the address it was issued for. Agents trust only this CA for client certificates
(mutual TLS), and only certificates with the clientAuth usage: an agent's own server
certificate, present on every host, cannot open another agent.

The portal's client certificate and its key sit in one file, `pki/portal-client.pem` (0600),
so that a renewal replaces both at once (rename) and no process ever reads a new certificate
with an old key. It is made on first use and renewed when less than a fifth of its life is left.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from flask import current_app

CA_DAYS = 3650
SERVER_DAYS = 825
CLIENT_DAYS = 365
CLIENT_RENEW_DAYS = 73  # a fifth of its life: renewals start long before an outage could
CLIENT_FILE = "portal-client.pem"
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
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = _sign(
        folder, common_name, key, ExtendedKeyUsageOID.SERVER_AUTH, SERVER_DAYS, addresses
    )
    return _cert_pem(certificate), _key_pem(key)


def portal_client_certificate(instance_path: str | None = None) -> Path:
    """Path of the portal's client certificate and key (one PEM file), issued or renewed here."""
    folder = pki_folder(instance_path)
    path = folder / CLIENT_FILE
    expires = _client_expiry(path)
    if expires is None or expires - _now() < datetime.timedelta(days=CLIENT_RENEW_DAYS):
        rotate_portal_client_certificate(instance_path)
    return path


def rotate_portal_client_certificate(instance_path: str | None = None) -> x509.Certificate:
    """Issue a new client certificate for the portal now and put it in place; return it.

    Agents accept it at once, since it chains to the same CA; the old one stays valid until it
    expires (agents check no revocation list).
    """
    folder = pki_folder(instance_path)
    _ensure_ca(folder)
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = _sign(folder, "spectr-portal", key, ExtendedKeyUsageOID.CLIENT_AUTH, CLIENT_DAYS)
    with _lock:
        _write_private(folder / CLIENT_FILE, _cert_pem(certificate) + _key_pem(key))
    return certificate


def issue_client_certificate(
    common_name: str, days: int = CLIENT_DAYS, instance_path: str | None = None
) -> tuple[str, str]:
    """Issue a client certificate (clientAuth) that agents with mutual TLS accept; (cert, key)."""
    folder = pki_folder(instance_path)
    _ensure_ca(folder)
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = _sign(folder, common_name, key, ExtendedKeyUsageOID.CLIENT_AUTH, days)
    return _cert_pem(certificate), _key_pem(key)


def agent_client_context(instance_path: str | None = None) -> ssl.SSLContext:
    """A client TLS context for agents: trusts only the Spectr CA, presents the portal's cert."""
    context = ssl.create_default_context(cafile=str(ca_certificate_path(instance_path)))
    context.load_cert_chain(portal_client_certificate(instance_path))
    return context


def certificate_summary(certificate: x509.Certificate) -> dict[str, str]:
    """Serial, SHA-256 fingerprint and expiry of a certificate: what a log line may name."""
    return {
        "serial": format(certificate.serial_number, "x"),
        "sha256": certificate.fingerprint(hashes.SHA256()).hex(),
        "expires": certificate.not_valid_after_utc.isoformat(timespec="seconds"),
    }


def _client_expiry(path: Path) -> datetime.datetime | None:
    """The client certificate's expiry, cached by file identity: health sweeps ask often."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    identity = (stat.st_ino, stat.st_mtime_ns)
    cached = _expiry_cache.get(path)
    if cached is None or cached[0] != identity:
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
        cached = _expiry_cache[path] = (identity, certificate.not_valid_after_utc)
    return cached[1]


_expiry_cache: dict[Path, tuple[tuple[int, int], datetime.datetime]] = {}


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _sign(
    folder: Path,
    common_name: str,
    key: ec.EllipticCurvePrivateKey,
    usage: x509.ObjectIdentifier,
    days: int,
    addresses: list[str] | None = None,
) -> x509.Certificate:
    """Have the CA sign an end-entity certificate for `key` with one extended key usage."""
    ca_key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate((folder / "ca.crt").read_bytes())
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if addresses:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(_names(addresses)), critical=False
        )
    return builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]


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
        # P-256: every TLS handshake with an agent verifies a CA signature on each side, and
        # OpenSSL verifies P-256 twelve times faster than P-384 (0.07 against 0.9 ms here), which
        # is most of a cold health sweep's CPU at 10,000 hosts. A CA made before keeps its curve.
        key = ec.generate_private_key(ec.SECP256R1())
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
    """Write a 0600 file under a temporary name, then rename: readers see old or new, whole."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
    os.replace(partial, path)


def _cert_pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
