"""Fixtures of the deploy tests: Spectr's own images and compose stack, built and started the
way deploy/README.md tells a user to, on this machine's Docker engine, Postgres and Redis."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.deploy.stack import DEPLOY, REPO_ROOT, Stack, build_images, relays, wait_for

POSTGRES_URL = os.environ.get(
    "SPECTR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("SPECTR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


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
    """The compose stack up: migrate done, web healthy on its 127.0.0.1 port, proxy started."""
    secrets_dir = tmp_path_factory.mktemp("deploy") / "secrets"
    subprocess.run(
        [str(DEPLOY / "make-secrets.sh")],
        env={**os.environ, "SPECTR_SECRETS_DIR": str(secrets_dir)},
        check=True,
        capture_output=True,
    )
    postgres, redis = make_url(POSTGRES_URL), make_url(REDIS_URL)
    with (
        relays(
            {
                "postgres": (postgres.host, postgres.port or 5432),
                "redis": (redis.host, redis.port or 6379),
            }
        ) as ports,
        _database(POSTGRES_URL) as database,
    ):
        stack = Stack(
            images=deploy_images,
            database_url=(
                f"postgresql+psycopg://{postgres.username}@host.docker.internal:{ports['postgres']}/{database}"
            ),
            redis_url=f"redis://host.docker.internal:{ports['redis']}/{redis.database or 0}",
            secrets_dir=secrets_dir,
        )
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


class _database:
    """A database of its own on the machine's Postgres, dropped afterwards."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.name = f"spectr_deploytest_{os.urandom(4).hex()}"

    def __enter__(self) -> str:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        return self.name

    def __exit__(self, *exc: object) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def admin_password(stack: Stack) -> str:
    return Path(stack.secrets_dir, "spectr_admin_password").read_text().strip()
