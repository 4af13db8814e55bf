"""Embedded defaults, SPECTR_* configuration, and the `spectr` command."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from portal.app import create_app
from portal.config import _parse_env_value
from portal.core.operations import service

SPECTR = str(Path(sys.executable).with_name("spectr"))
ROOT = Path(__file__).resolve().parents[2]


def test_embedded_defaults_live_in_the_instance_folder(tmp_path):
    app = create_app({"SPECTR_INSTANCE_PATH": str(tmp_path)})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'spectr.db'}"
    assert app.config["SPECTR_EMBEDDED_WORKER"] is True
    assert app.extensions["spectr_queue"].storage.filename == str(tmp_path / "queue.db")
    for secret_file in ("secret_key", "encryption.key"):
        mode = stat.S_IMODE((tmp_path / secret_file).stat().st_mode)
        assert mode == 0o600, secret_file
    again = create_app({"SPECTR_INSTANCE_PATH": str(tmp_path)})
    assert again.config["SECRET_KEY"] == app.config["SECRET_KEY"]


def test_redis_url_switches_to_separate_workers(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECTR_REDIS_URL", "redis://127.0.0.1:6379/3")
    monkeypatch.setenv("SPECTR_OPERATION_LEASE_SECONDS", "7")
    app = create_app({"SPECTR_INSTANCE_PATH": str(tmp_path)})
    assert app.config["SPECTR_EMBEDDED_WORKER"] is False
    assert app.config["SPECTR_OPERATION_LEASE_SECONDS"] == 7
    assert type(app.extensions["spectr_queue"].storage).__name__ == "RedisStorage"


def test_encryption_keys_from_the_environment_replace_the_instance_key(tmp_path, monkeypatch):
    from cryptography.fernet import Fernet

    key = Fernet.generate_key()
    monkeypatch.setenv("SPECTR_ENCRYPTION_KEYS", key.decode())
    app = create_app({"SPECTR_INSTANCE_PATH": str(tmp_path)})
    with app.app_context():
        from portal.core.secrets_box import secret_box

        token = secret_box().encrypt("s3cret")
    assert Fernet(key).decrypt(token.encode()) == b"s3cret"
    assert not (tmp_path / "encryption.key").exists()


def test_environment_values_are_typed():
    assert _parse_env_value("30") == 30
    assert _parse_env_value("0.5") == 0.5
    assert _parse_env_value("off") is False
    assert _parse_env_value("redis://x") == "redis://x"


def spectr(
    instance: Path | None, *args: str, cwd: Path | None = None, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess:
    """Run the `spectr` command of this checkout on an instance folder (None: the default)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SPECTR_")}
    # The code of this checkout, even when the venv's editable install points at another.
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
    )
    if instance is not None:
        environment["SPECTR_INSTANCE_PATH"] = str(instance)
    return subprocess.run(
        [SPECTR, *args],
        env={**environment, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )


def _spectr(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return spectr(tmp_path, *args, **env)


def test_init_creates_database_and_admin_with_a_generated_password(tmp_path):
    first = _spectr(tmp_path, "init")
    assert first.returncode == 0, first.stderr
    assert "Created admin user 'admin'." in first.stdout
    password = first.stdout.split("Its password (shown once): ", 1)[1].strip()
    assert len(password) >= 15
    second = _spectr(tmp_path, "init")
    assert "already exists" in second.stdout
    assert "password" not in second.stdout.split("already exists")[1]


def test_init_refuses_a_short_admin_password_with_a_message(tmp_path):
    result = _spectr(tmp_path, "init", SPECTR_ADMIN_PASSWORD="short")
    assert result.returncode == 1
    assert "Error: The password must have at least 10 characters." in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_manages_users_tokens_and_watches_operations(tmp_path):
    assert _spectr(tmp_path, "init", SPECTR_ADMIN_PASSWORD="initial admin pw").returncode == 0
    created = _spectr(
        tmp_path,
        "user",
        "create",
        "dana",
        "--role",
        "operator",
        SPECTR_NEW_USER_PASSWORD="dana's long password",
    )
    assert created.returncode == 0, created.stderr
    assert "operator" in _spectr(tmp_path, "user", "list").stdout
    assert _spectr(tmp_path, "user", "set-role", "dana", "viewer").returncode == 0
    token = _spectr(tmp_path, "token", "create", "dana", "--name", "ci")
    assert token.stdout.strip().startswith("spectr_")
    missing = _spectr(tmp_path, "token", "create", "nobody")
    assert missing.returncode != 0 and "No user named 'nobody'." in missing.stderr

    app = create_app({"SPECTR_INSTANCE_PATH": str(tmp_path), "SPECTR_QUEUE_IMMEDIATE": True})
    with app.app_context():
        operation, _ = service.create_operation("sleep", {"seconds": 0.3})
    watched = _spectr(tmp_path, "operation", "watch", operation.id)
    assert watched.returncode == 0, watched.stderr
    assert "slept 0.30 of 0.3 s" in watched.stdout
    assert watched.stdout.strip().endswith("succeeded")
    listed = _spectr(tmp_path, "operation", "list", "--kind", "sleep")
    assert operation.id in listed.stdout
