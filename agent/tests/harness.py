"""Run real spectr-agent processes over TLS on 127.0.0.1 with throw-away certificates."""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.auth import hash_token

REPO_ROOT = Path(__file__).resolve().parents[2]


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))  # fmt: skip


@dataclass
class CertificateAuthority:
    """A CA that signs server and client certificates into a folder."""

    name: str
    folder: Path
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def create(cls, name: str, folder: Path) -> CertificateAuthority:
        """Make a self-signed CA and write its certificate to <name>-ca.pem."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder().subject_name(_name(f"{name} CA")).issuer_name(_name(f"{name} CA"))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256())
        )  # fmt: skip
        (folder / f"{name}-ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cls(name, folder, key, cert)

    @property
    def cert_path(self) -> str:
        """Return the CA certificate's file."""
        return str(self.folder / f"{self.name}-ca.pem")

    def issue(self, common_name: str, server: bool) -> tuple[str, str]:
        """Sign a server (SAN 127.0.0.1) or client certificate; return (cert, key) paths."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder().subject_name(_name(common_name))
            .issuer_name(self.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )  # fmt: skip
        if server:
            san = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        stem = self.folder / f"{self.name}-{common_name}"
        Path(f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(Path(f"{stem}.key"), key)
        return f"{stem}.pem", f"{stem}.key"


def free_port() -> int:
    """Return a TCP port that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def client_context(ca_path: str, client_cert: tuple[str, str] | None = None) -> ssl.SSLContext:
    """Return a client TLS context trusting ca_path, optionally presenting a certificate."""
    context = ssl.create_default_context(cafile=ca_path)
    if client_cert:
        context.load_cert_chain(*client_cert)
    return context


class AgentProcess:
    """One `python -m agent --config FILE` process and what a client needs to reach it.

    `source` is the folder holding the `agent` package to run (this checkout by default; the
    compatibility tests pass an older release's, extracted from git history), `launcher` the
    command before `--config` (default: python -m agent).
    """

    def __init__(
        self,
        folder: Path,
        cert: tuple[str, str],
        source: Path = REPO_ROOT,
        launcher: list[str] | None = None,
        **settings: Any,
    ) -> None:
        self.folder = folder
        self.source = source
        self.launcher = launcher or [sys.executable, "-m", "agent"]
        self.token = secrets.token_urlsafe(24)
        self.port = settings.pop("listen_port", None) or free_port()
        self.config = {
            "listen_host": "127.0.0.1", "listen_port": self.port, "tls_cert": cert[0],
            "tls_key": cert[1], "token_sha256": hash_token(self.token),
            "models_dir": str(folder / f"models-{self.port}"),  # never the host's real cache
            **settings,
        }  # fmt: skip
        self.config_path = folder / f"agent-{self.port}.json"
        self.log_path = folder / f"agent-{self.port}.log"
        self.env: dict[str, str] = {}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Return the agent's base URL."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """Return the running process id."""
        assert self.process is not None
        return self.process.pid

    def start(self, wait: bool = True) -> AgentProcess:
        """Write the config and launch the agent; wait until it accepts TCP connections."""
        self.config_path.write_text(json.dumps(self.config))
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [*self.launcher, "--config", str(self.config_path)],
            cwd=self.source, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
        )  # fmt: skip
        log.close()
        if wait:
            self.wait_listening()
        return self

    def wait_listening(self, deadline_s: float = 20.0) -> None:
        """Poll the port until it accepts (raise with the agent's log if it died)."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"agent exited: {self.log_path.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"agent did not listen in {deadline_s}s")

    def reload(self, **changes: Any) -> None:
        """Rewrite the config with `changes` (None removes a key) and send SIGHUP."""
        for key, value in changes.items():
            if value is None:
                self.config.pop(key, None)
            else:
                self.config[key] = value
        self.config_path.write_text(json.dumps(self.config))
        assert self.process is not None
        self.process.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        """Stop with SIGTERM (SIGKILL if it lingers)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def http(self, ca_path: str, token: str | None = "", **kwargs: Any) -> httpx.Client:
        """Return an httpx client of this agent; token "" means the right one, None none."""
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token or self.token}"
        verify = kwargs.pop("verify", None) or client_context(ca_path, kwargs.pop("cert", None))
        return httpx.Client(base_url=self.url, verify=verify, headers=headers,
                            timeout=httpx.Timeout(30.0, connect=5.0), **kwargs)  # fmt: skip


@cache
def base_image() -> str:
    """Build (or reuse) the test base image and return its reference.

    SPECTR_TEST_BASE_IMAGE names one already there (the agent's tests outside this repository).
    """
    if os.environ.get("SPECTR_TEST_BASE_IMAGE"):
        return os.environ["SPECTR_TEST_BASE_IMAGE"]
    script = REPO_ROOT / "tests" / "images" / "build-base.sh"
    result = subprocess.run([str(script)], capture_output=True, text=True, check=True)
    return result.stdout.strip().splitlines()[-1]


def unique_name(purpose: str) -> str:
    """Return a container name with the shared test prefix."""
    return f"spectr-test-{purpose}-{secrets.token_hex(4)}"


class LocalRegistry:
    """Debian's docker-registry binary on 127.0.0.1 (no public registry is reachable here)."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """Return host:port as image references use it."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> LocalRegistry:
        """Write a config, start the registry and wait for its API."""
        config = self.folder / f"registry-{self.port}.yml"
        config.write_text(
            "version: 0.1\nlog: {level: error}\n"
            f"storage: {{filesystem: {{rootdirectory: {self.folder / 'registry-data'}}}}}\n"
            f"http: {{addr: {self.address}}}\n"
        )
        self.process = subprocess.Popen(
            ["docker-registry", "serve", str(config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        end = time.monotonic() + 20
        while time.monotonic() < end:
            try:
                if httpx.get(f"http://{self.address}/v2/", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("docker-registry did not start")

    def push_tiny_image(self, repository: str, tag: str) -> str:
        """Upload a one-file image; return its reference."""
        from agent.tests.registry_seed import push_tiny_image

        with httpx.Client(base_url=f"http://{self.address}", timeout=30) as client:
            push_tiny_image(client, repository, tag, f"{repository}:{tag}\n".encode())
        return f"{self.address}/{repository}:{tag}"

    def stop(self) -> None:
        """Stop the registry."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)


def tls_socket(
    agent: AgentProcess, ca_path: str, source: str = "127.0.0.1", timeout: float = 5.0
) -> ssl.SSLSocket:
    """Open a TLS connection to the agent from a chosen loopback address (raw requests)."""
    context = client_context(ca_path)
    raw = socket.create_connection(("127.0.0.1", agent.port), timeout, (source, 0))
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


@dataclass
class RawAnswer:
    """One HTTP answer read off a raw socket."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """Return the body as JSON."""
        return json.loads(self.body)


def read_answer(sock: socket.socket, timeout: float) -> RawAnswer | None:
    """Read one answer; None when none arrives complete within the timeout or the peer left."""
    sock.settimeout(timeout)
    response = http.client.HTTPResponse(sock)  # type: ignore[arg-type]
    try:
        response.begin()
        body = response.read()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        response.close()
    return RawAnswer(response.status, {k.lower(): v for k, v in response.getheaders()}, body)


def proc_status_kib(pid: int, field: str) -> int:
    """Return a memory field of /proc/<pid>/status (VmRSS, VmHWM) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)
