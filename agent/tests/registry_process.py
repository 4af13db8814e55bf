"""Run Debian's docker-registry on 127.0.0.1 with TLS and htpasswd auth, for tests and benches."""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import httpx

REGISTRY_BINARY = "/usr/bin/docker-registry"


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def bcrypt_line(user: str, password: str) -> str:
    """One htpasswd line (distribution only accepts bcrypt)."""
    with warnings.catch_warnings():  # passlib's bcrypt backend imports the deprecated `crypt`
        warnings.simplefilter("ignore", DeprecationWarning)
        from passlib.hash import bcrypt

        return f"{user}:{bcrypt.using(rounds=5).hash(password)}"


CONFIG = """version: 0.1
log: {{level: warn}}
storage:
  filesystem: {{rootdirectory: {root}/data}}
  delete: {{enabled: true}}
http:
  addr: {listen}:{port}
  tls: {{certificate: {root}/tls.crt, key: {root}/tls.key}}
auth:
  htpasswd: {{realm: spectr-test, path: {root}/htpasswd}}
"""


@dataclass
class RegistryProcess:
    root: Path
    listen: str
    port: int
    user: str
    password: str
    ca_pem: str
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"https://{self.listen}:{self.port}"

    @property
    def address(self) -> str:
        return f"{self.listen}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.root / "config.yml"

    def http(self) -> httpx.Client:
        context = ssl.create_default_context(cadata=self.ca_pem)
        return httpx.Client(
            base_url=self.url, auth=(self.user, self.password), verify=context, timeout=30
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def start_registry(
    root: Path,
    cert_pem: str,
    key_pem: str,
    ca_pem: str,
    user: str,
    password: str,
    listen: str = "127.0.0.1",
) -> RegistryProcess:
    """Start a registry on `listen` under `root`; return once it answers on its port."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port(listen)
    (root / "tls.crt").write_text(cert_pem + ca_pem)
    (root / "tls.key").write_text(key_pem)
    (root / "htpasswd").write_text(bcrypt_line(user, password) + "\n")
    (root / "config.yml").write_text(CONFIG.format(root=root, listen=listen, port=port))
    with (root / "registry.log").open("wb") as log:  # the child keeps its own copy
        process = subprocess.Popen(
            [REGISTRY_BINARY, "serve", str(root / "config.yml")], stdout=log, stderr=log
        )
    registry = RegistryProcess(root, listen, port, user, password, ca_pem, process)
    _wait_until_listening(registry)
    return registry


def _wait_until_listening(registry: RegistryProcess, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if registry.process.poll() is not None:
            raise RuntimeError((registry.root / "registry.log").read_text())
        try:
            with socket.create_connection((registry.listen, registry.port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    registry.stop()
    raise RuntimeError(f"registry on port {registry.port} did not start")


def garbage_collect(registry: RegistryProcess) -> str:
    """Run the registry's own garbage collector on its storage; return its output."""
    done = subprocess.run(
        [REGISTRY_BINARY, "garbage-collect", "--delete-untagged", str(registry.config_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.stdout + done.stderr
