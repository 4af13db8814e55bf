"""SSH host key fingerprints and checks, failure reasons, the Spectr CA and the portal's client
certificate over real TLS."""

from __future__ import annotations

import socket
import ssl
import stat
import subprocess
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from portal.automation import HostOutcome
from portal.core import pki
from portal.core.pki import (
    ca_certificate_path,
    issue_server_certificate,
    portal_client_certificate,
    rotate_portal_client_certificate,
)
from portal.hosts.failures import classify_outcome
from portal.hosts.ssh_keys import HostKeyChanged, ScannedKeys, check_host_key, fingerprint_of


def make_host_key(folder: Path, name: str) -> str:
    path = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


def test_fingerprint_matches_ssh_keygen(tmp_path: Path) -> None:
    public = make_host_key(tmp_path, "key")
    expected = subprocess.run(
        ["ssh-keygen", "-lf", str(tmp_path / "key.pub")], capture_output=True, text=True, check=True
    ).stdout.split()[1]

    assert fingerprint_of(f"[10.0.0.1]:2222 {public}") == expected


def test_same_key_passes_and_another_key_is_refused_with_both_fingerprints(tmp_path: Path) -> None:
    recorded_line = f"[10.0.0.1]:22 {make_host_key(tmp_path, 'a')}"
    other_line = f"[10.0.0.1]:22 {make_host_key(tmp_path, 'b')}"
    recorded_fp = fingerprint_of(recorded_line)

    check_host_key(recorded_line, ScannedKeys(recorded_line, recorded_fp), recorded_fp)
    with pytest.raises(HostKeyChanged) as raised:
        check_host_key(
            recorded_line, ScannedKeys(other_line, fingerprint_of(other_line)), recorded_fp
        )

    assert "Host key changed" in str(raised.value)
    assert recorded_fp in str(raised.value) and fingerprint_of(other_line) in str(raised.value)


@pytest.mark.parametrize(
    ("outcome", "kind"),
    [
        (HostOutcome(unreachable=1, unreachable_message="ssh: connect to host 10.0.0.1 port 22: Connection refused"), "unreachable"),
        (HostOutcome(unreachable=1, unreachable_message="Invalid/incorrect password: Permission denied, please try again."), "authentication"),
        (HostOutcome(unreachable=1, unreachable_message="ops@127.0.0.1: Permission denied (publickey,password)."), "authentication"),
        (HostOutcome(unreachable=1, unreachable_message="@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@ Host key verification failed."), "host_key_changed"),
        (HostOutcome(failed=1, failed_task="spectr.core.bootstrap : Install the base packages", failure_message="No package matching 'nope' is available"), "packages"),
        (HostOutcome(failed=1, failed_task="spectr.core.agent : Wait for the agent's health endpoint", failure_message="Status code was -1"), "agent"),
        (HostOutcome(failed=1, failed_task="Gathering Facts", failure_message="Missing sudo password"), "authentication"),
        (HostOutcome(failed=1, failed_task="Set the kernel settings", failure_message="read-only"), "task"),
        (HostOutcome(ok=30, changed=3), None),
    ],
)  # fmt: skip
def test_failures_get_their_own_reason(outcome: HostOutcome, kind: str | None) -> None:
    failure = classify_outcome(outcome)

    assert (failure.kind if failure else None) == kind
    assert failure is None or failure.transient == (kind == "unreachable")


def test_ca_is_private_and_its_certificates_pass_a_real_tls_handshake(tmp_path: Path) -> None:
    instance = str(tmp_path)
    ca_path = ca_certificate_path(instance)
    cert_pem, key_pem = issue_server_certificate("node-1", ["127.0.0.1"], instance)
    (tmp_path / "server.crt").write_text(cert_pem)
    (tmp_path / "server.key").write_text(key_pem)

    assert stat.S_IMODE((ca_path.parent / "ca.key").stat().st_mode) == 0o600
    assert ca_certificate_path(instance).read_text() == ca_path.read_text()  # made once
    assert handshake(tmp_path, ca_path, "127.0.0.1") == b"hello"
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(tmp_path, ca_path, "localhost")  # not an address the certificate names


def handshake(
    folder: Path, ca_path: Path, server_name: str, client_cert: Path | None = None
) -> bytes:
    """Talk to a TLS server on 127.0.0.1 that requires a client certificate when one is given."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(folder / "server.crt", folder / "server.key")
    if client_cert is not None:
        server_context.load_verify_locations(cafile=str(ca_path))
        server_context.verify_mode = ssl.CERT_REQUIRED
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        connection, _ = listener.accept()
        try:
            with server_context.wrap_socket(connection, server_side=True) as tls:
                tls.sendall(b"hello")
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client_context = ssl.create_default_context(cafile=str(ca_path))
    if client_cert is not None:
        client_context.load_cert_chain(str(client_cert))
    try:
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            client_context.wrap_socket(raw, server_hostname=server_name) as tls,
        ):
            return tls.recv(5)
    finally:
        thread.join(5)
        listener.close()


def test_portal_client_certificate_is_private_for_client_auth_and_made_once(tmp_path: Path) -> None:
    instance = str(tmp_path)
    path = portal_client_certificate(instance)
    certificate = x509.load_pem_x509_certificate(path.read_bytes())
    usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert "PRIVATE KEY" in path.read_text()  # certificate and key in one file
    assert portal_client_certificate(instance).read_bytes() == path.read_bytes()  # kept
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []


def test_portal_client_certificate_is_renewed_before_it_expires(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = str(tmp_path)
    first = portal_client_certificate(instance).read_bytes()
    monkeypatch.setattr(pki, "CLIENT_RENEW_DAYS", pki.CLIENT_DAYS + 1)  # "about to expire"

    renewed = portal_client_certificate(instance).read_bytes()

    assert renewed != first
    assert (
        x509.load_pem_x509_certificate(renewed).issuer
        == x509.load_pem_x509_certificate(ca_certificate_path(instance).read_bytes()).subject
    )


def test_portal_client_certificate_passes_mutual_tls_and_a_server_certificate_does_not(
    tmp_path: Path,
) -> None:
    instance = str(tmp_path)
    ca_path = ca_certificate_path(instance)
    cert_pem, key_pem = issue_server_certificate("node-1", ["127.0.0.1"], instance)
    (tmp_path / "server.crt").write_text(cert_pem)
    (tmp_path / "server.key").write_text(key_pem + cert_pem)
    before = portal_client_certificate(instance).read_bytes()
    rotated = rotate_portal_client_certificate(instance)

    assert (
        handshake(tmp_path, ca_path, "127.0.0.1", portal_client_certificate(instance)) == b"hello"
    )
    assert (
        rotated.public_bytes(serialization.Encoding.PEM)
        in portal_client_certificate(instance).read_bytes()
    )
    assert portal_client_certificate(instance).read_bytes() != before
    # an agent's own certificate (serverAuth only) cannot open another agent
    with pytest.raises((ssl.SSLError, ConnectionError)):
        handshake(tmp_path, ca_path, "127.0.0.1", tmp_path / "server.key")
