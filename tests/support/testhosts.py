"""Start throw-away Debian hosts in Docker containers, reached over SSH on 127.0.0.1.

A test host is a container from tests/images/build-host.sh running sshd on a port published on
127.0.0.1, with a key pair made by the tests authorised for root and for a sudo user. The DinD
variant also carries Docker engine and can run containers of its own.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGES_DIR = REPO_ROOT / "tests" / "images"
NAME_PREFIX = "spectr-test-"

# Plain --privileged fails on this machine (its bounding set lacks CAP_SYS_RESOURCE); this set
# is what Docker-in-Docker needs instead (see MACHINE-NOTES.md).
DIND_RUN_OPTIONS = (
    "--cap-add=ALL",
    "--cap-drop=SYS_RESOURCE",
    "--security-opt=seccomp=unconfined",
    "--security-opt=apparmor=unconfined",
    "--security-opt=systempaths=unconfined",
    "--device-cgroup-rule=a *:* rwm",
)


class TestHostError(RuntimeError):
    """A test host could not be built, started or reached."""


def run_docker(*args: str, stdin: bytes | None = None, timeout: float = 300) -> str:
    """Run a docker CLI command and return its stdout; raise with stderr on failure."""
    result = subprocess.run(
        ["docker", *args], input=stdin, capture_output=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise TestHostError(f"docker {args[0]} failed: {result.stderr.decode(errors='replace')}")
    return result.stdout.decode()


def ensure_docker() -> None:
    """Start the machine's Docker engine when it is down."""
    subprocess.run([str(REPO_ROOT / "scripts" / "ensure-docker.sh")], check=True, timeout=180)


@cache
def host_image(dind: bool = False) -> str:
    """Build (or reuse, by content hash) the test-host image and return its reference."""
    ensure_docker()
    script = IMAGES_DIR / "build-host.sh"
    result = subprocess.run(
        [str(script), "dind" if dind else "plain"], capture_output=True, timeout=900, check=False
    )
    if result.returncode != 0:
        raise TestHostError(f"{script.name} failed: {result.stderr.decode(errors='replace')}")
    return result.stdout.decode().strip().splitlines()[-1]


@dataclass(frozen=True)
class SSHKeyPair:
    """An ed25519 key pair in a private temporary folder."""

    private_key_path: Path
    public_key: str

    @classmethod
    def generate(cls, folder: Path | None = None) -> SSHKeyPair:
        """Make a new key pair without a passphrase."""
        folder = folder or Path(tempfile.mkdtemp(prefix="spectr-test-ssh-"))
        key_path = folder / "id_ed25519"
        subprocess.run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "spectr-test",
                "-f",
                str(key_path),
            ],
            check=True,
            timeout=30,
        )
        return cls(key_path, key_path.with_suffix(".pub").read_text().strip())


@dataclass
class TestHost:
    """One running test host and how to reach it."""

    __test__ = False  # not a pytest test class

    container_name: str
    port: int
    user: str
    key_pair: SSHKeyPair
    dind: bool
    password: str | None = field(default=None, repr=False)
    address: str = "127.0.0.1"
    published_ports: dict[int, int] = field(default_factory=dict)

    @property
    def private_key_path(self) -> Path:
        """Path of the private key authorised for root and the sudo user."""
        return self.key_pair.private_key_path

    def ssh_command(self, *command: str, user: str = "root") -> list[str]:
        """Return the argv of an ssh call running `command` on the host."""
        return [
            "ssh",
            *ssh_options(),
            "-i",
            str(self.private_key_path),
            "-p",
            str(self.port),
            f"{user}@{self.address}",
            *command,
        ]

    def ssh(self, *command: str, user: str = "root", timeout: float = 60) -> str:
        """Run a command over SSH and return its stdout; raise when it fails."""
        result = subprocess.run(
            self.ssh_command(*command, user=user), capture_output=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            raise TestHostError(
                f"ssh {' '.join(command)} exited {result.returncode}: {result.stderr.decode()}"
            )
        return result.stdout.decode()

    def exec(self, *command: str, stdin: bytes | None = None, timeout: float = 300) -> str:
        """Run a command in the container through `docker exec` (bypasses SSH)."""
        flags = ["-i"] if stdin is not None else []
        return run_docker(
            "exec", *flags, self.container_name, *command, stdin=stdin, timeout=timeout
        )

    def inventory_vars(self, user: str = "root") -> dict[str, str | int]:
        """Return Ansible connection variables for this host."""
        return {
            "ansible_host": self.address,
            "ansible_port": self.port,
            "ansible_user": user,
            "ansible_ssh_private_key_file": str(self.private_key_path),
            "ansible_ssh_common_args": " ".join(ssh_options()),
            "ansible_python_interpreter": "/usr/bin/python3",
        }

    def wait_for_ssh(self, timeout: float = 60) -> None:
        """Block until sshd accepts our key, or raise."""
        deadline = time.monotonic() + timeout
        last_error = ""
        while time.monotonic() < deadline:
            try:
                self.ssh("true", timeout=10)
                return
            except (TestHostError, subprocess.TimeoutExpired) as error:
                last_error = str(error)
                time.sleep(0.5)
        raise TestHostError(f"{self.container_name}: ssh not ready in {timeout:.0f}s: {last_error}")

    def wait_for_docker(self, timeout: float = 90) -> None:
        """Block until the Docker engine inside a DinD host answers, or raise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (
                subprocess.run(self.ssh_command("docker", "info"), capture_output=True).returncode
                == 0
            ):
                return
            time.sleep(1)
        log = self.exec("sh", "-c", "tail -20 /var/log/spectr-test/dockerd.log || true")
        raise TestHostError(f"{self.container_name}: dockerd not up in {timeout:.0f}s:\n{log}")

    def load_image(self, image: str) -> None:
        """Copy an image from the machine's engine into the host's engine (no registry)."""
        archive = subprocess.run(["docker", "save", image], capture_output=True, check=True)
        self.exec("docker", "load", stdin=archive.stdout, timeout=600)

    def stop(self) -> None:
        """Stop the container, keeping its disk."""
        run_docker("stop", "-t", "5", self.container_name)

    def start(self) -> None:
        """Start a stopped host again and wait for SSH (published ports may change)."""
        run_docker("start", self.container_name)
        self._read_ports()
        self.wait_for_ssh()

    def remove(self) -> None:
        """Remove the container and its anonymous volumes; safe to call twice."""
        subprocess.run(
            ["docker", "rm", "-f", "-v", self.container_name], capture_output=True, check=False
        )

    def _read_ports(self) -> None:
        self.port = published_port(self.container_name, 22)
        for inner in self.published_ports:
            self.published_ports[inner] = published_port(self.container_name, inner)


def ssh_options() -> list[str]:
    """SSH options for throw-away hosts whose host keys change at every start."""
    return [
        "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null",
        "-o", "LogLevel=ERROR",
        "-o", "BatchMode=yes",
        "-o", "ConnectTimeout=5",
    ]  # fmt: skip


def published_port(container_name: str, inner_port: int) -> int:
    """Return the 127.0.0.1 port Docker published for a container port."""
    output = run_docker("port", container_name, f"{inner_port}/tcp")
    for line in output.splitlines():
        host, _, port = line.rpartition(":")
        if host in ("127.0.0.1", "0.0.0.0"):
            return int(port)
    raise TestHostError(f"{container_name}: port {inner_port} is not published: {output!r}")


def unique_name(name_suffix: str) -> str:
    """Return a container name no parallel run will also pick."""
    return f"{NAME_PREFIX}{name_suffix}-{secrets.token_hex(3)}"


def start_test_host(
    name_suffix: str,
    *,
    dind: bool = False,
    start_docker: bool | None = None,
    password: str | None = None,
    user: str = "ops",
    extra_ports: tuple[int, ...] = (),
    key_pair: SSHKeyPair | None = None,
) -> TestHost:
    """Start a test host and wait until it answers over SSH.

    `start_docker` defaults to `dind`: a DinD host whose engine a role should install and start
    is started with `start_docker=False`.
    """
    image = host_image(dind)
    key_pair = key_pair or SSHKeyPair.generate()
    name = unique_name(name_suffix)
    env = {"SPECTR_TEST_AUTHORIZED_KEY": key_pair.public_key, "SPECTR_TEST_USER": user}
    if password:
        env["SPECTR_TEST_PASSWORD"] = password
    if dind and (start_docker is None or start_docker):
        env["SPECTR_TEST_START_DOCKER"] = "1"
    args = ["run", "-d", "--name", name, "--hostname", name[:63], "-p", "127.0.0.1::22"]
    args += [arg for port in extra_ports for arg in ("-p", f"127.0.0.1::{port}")]
    args += [f"--env={key}={value}" for key, value in env.items()]
    if dind:
        args += [*DIND_RUN_OPTIONS, "-v", "/var/lib/docker"]
    run_docker(*args, image)
    host = TestHost(
        name, 0, user, key_pair, dind, password, published_ports=dict.fromkeys(extra_ports, 0)
    )
    try:
        host._read_ports()
        host.wait_for_ssh()
        if dind and "SPECTR_TEST_START_DOCKER" in env:
            host.wait_for_docker()
    except Exception:
        host.remove()
        raise
    return host


def free_local_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cleanup_key_pair(key_pair: SSHKeyPair) -> None:
    """Delete a key pair's temporary folder."""
    shutil.rmtree(key_pair.private_key_path.parent, ignore_errors=True)
