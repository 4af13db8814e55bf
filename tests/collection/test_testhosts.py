"""The shared test-host helper (tests/support/testhosts.py) that other suites build on."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.testhosts import TestHost, host_image, ssh_options

pytestmark = [pytest.mark.slow, pytest.mark.docker]


def test_plain_host_key_and_password_logins_survive_stop_and_start(
    make_test_host: object, tmp_path: Path
) -> None:
    host: TestHost = make_test_host("helper", password="pw-for-tests-1")  # type: ignore[operator]

    assert host.ssh("id", "-un").strip() == "root"
    assert host.ssh("sudo", "-n", "id", "-un", user="ops").strip() == "root"
    assert password_login(host, "pw-for-tests-1", tmp_path) == "ops"
    host.ssh("touch", "/root/kept")

    host.stop()
    host.start()

    assert host.ssh("ls", "/root/kept").strip() == "/root/kept"


def test_dind_host_runs_containers_from_loaded_images(make_test_host: object) -> None:
    host: TestHost = make_test_host("helper-dind", dind=True)  # type: ignore[operator]
    image = host_image(dind=False)

    host.load_image(image)

    assert host.ssh("docker", "run", "--rm", image, "echo", "inner").strip() == "inner"


def password_login(host: TestHost, password: str, folder: Path) -> str:
    """Log in as the sudo user with its password (ssh reads it from SSH_ASKPASS)."""
    askpass = folder / "askpass.sh"
    askpass.write_text(f"#!/bin/sh\necho '{password}'\n")
    askpass.chmod(0o700)
    # The shared options end with BatchMode=yes, which forbids passwords; a later -o does not
    # override an earlier one, so it goes.
    shared = ssh_options()
    options = [arg for pair in zip(shared[::2], shared[1::2], strict=True)
               if pair[1] != "BatchMode=yes" for arg in pair]  # fmt: skip
    env = {**os.environ, "SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force"}
    result = subprocess.run(
        ["ssh", *options, "-o", "PubkeyAuthentication=no", "-o", "BatchMode=no", "-p",
         str(host.port), f"{host.user}@{host.address}", "id", "-un"],
        capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()
