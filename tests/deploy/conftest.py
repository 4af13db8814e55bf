"""Fixtures of the deploy tests: Spectr's own images and compose stack, built and started the
way deploy/README.md tells a user to, on this machine's Docker engine."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.stack import (
    DEPLOY,
    REPO_ROOT,
    Stack,
    build_images,
    build_service_images,
    wait_for,
)


@pytest.fixture(scope="session")
def deploy_images() -> dict[str, str]:
    subprocess.run(
        [str(REPO_ROOT / "scripts" / "ensure-docker.sh")], check=True, capture_output=True
    )
    return build_images()


@pytest.fixture(scope="module")
def stack(
    deploy_images: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The compose stack up with its bundled Postgres and Redis (images built from Debian
    packages): migrate done, web healthy on its 127.0.0.1 port, proxy started."""
    secrets_dir = tmp_path_factory.mktemp("deploy") / "secrets"
    subprocess.run(
        [str(DEPLOY / "make-secrets.sh")],
        env={**os.environ, "SPECTR_SECRETS_DIR": str(secrets_dir)},
        check=True,
        capture_output=True,
    )
    stack = Stack(images={**deploy_images, **build_service_images()}, secrets_dir=secrets_dir)
    try:
        stack.compose("up", "-d", timeout=300)
        wait_for("the portal's /healthz", lambda: _healthy(stack))
        yield stack
    except BaseException:
        print(stack.logs()[-20000:])
        raise
    finally:
        stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "5", check=False)


def _healthy(stack: Stack) -> bool:
    import httpx

    return httpx.get(f"{stack.portal_url}/healthz", timeout=5).status_code == 200


def admin_password(stack: Stack) -> str:
    return Path(stack.secrets_dir, "spectr_admin_password").read_text().strip()
