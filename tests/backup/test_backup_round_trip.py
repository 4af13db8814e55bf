"""Backup and restore round trip on SQLite (backup API) and Postgres (pg_dump / pg_restore)."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask

from portal.backup import restore, service
from portal.core.pki import ca_certificate_pem
from portal.extensions import db
from portal.registry import service as registries
from portal.registry.models import Registry


@pytest.mark.slow  # pg_dump / pg_restore or a whole backup: over a second
def test_backup_then_restore_brings_back_rows_secrets_and_keys(any_db_app: Flask) -> None:
    instance = Path(any_db_app.instance_path)
    ca_before = ca_certificate_pem()
    registries.create_registry(
        {"name": "harbor", "url": "https://harbor.internal", "username": "robot",
         "password": "robot-secret"}
    )  # fmt: skip
    archive = service.create_backup()
    with tarfile.open(archive) as packed:
        names = packed.getnames()
        manifest = json.load(packed.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert {"instance/encryption.key", "instance/pki/ca.key", "registry/metadata.json"} <= set(
        names
    )
    dialect = "sqlite" if any_db_app.config["SPECTR_DATABASE_URL"].startswith("sqlite") else (
        "postgresql")  # fmt: skip
    assert manifest["database"]["dialect"] == dialect
    assert archive.stat().st_mode & 0o077 == 0  # it holds keys: owner only

    # Change everything the backup holds, then restore.
    db.session.delete(db.session.query(Registry).one())
    registries.create_registry({"name": "after-backup", "url": "https://other.internal"})
    (instance / "pki" / "ca.crt").write_text("overwritten")
    restore.restore_backup(archive)

    db.session.remove()
    restored = db.session.query(Registry).all()
    assert [r.name for r in restored] == ["harbor"]
    assert restored[0].password == "robot-secret"  # decrypts with the restored key
    assert (instance / "pki" / "ca.crt").read_text() == ca_before


def test_restore_refuses_a_file_that_is_not_a_backup(app: Flask, tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not gzip at all")
    with pytest.raises(Exception, match="is not a Spectr backup"):
        restore.restore_backup(junk)


@pytest.mark.slow  # pg_dump / pg_restore or a whole backup: over a second
def test_backup_cli_create_and_restore(app: Flask, create_user: Callable) -> None:
    from portal.cli import cli

    create_user("admin", username="kept-admin")
    runner = CliRunner()
    created = runner.invoke(cli, ["backup", "create"], obj=_script_info(app))
    assert created.exit_code == 0, created.output
    path = Path(created.stdout.strip().splitlines()[-1])
    assert path.is_file() and path.parent == Path(app.instance_path) / "backups"
    from portal.admin import service as admin

    admin.create_user("added-later", "another password!", "viewer")
    restored = runner.invoke(cli, ["backup", "restore", str(path), "--yes"], obj=_script_info(app))
    assert restored.exit_code == 0, restored.output
    db.session.remove()
    from portal.admin.models import User

    names = {user.username for user in db.session.query(User)}
    assert "kept-admin" in names and "added-later" not in names


def _script_info(app: Flask):  # type: ignore[no-untyped-def]
    from flask.cli import ScriptInfo

    return ScriptInfo(create_app=lambda: app)


@pytest.mark.slow  # pg_dump / pg_restore or a whole backup: over a second
def test_backup_api_is_an_admin_operation(api_as: Callable) -> None:
    assert api_as("operator").post("/api/v1/backups").status_code == 403
    admin = api_as("admin")
    accepted = admin.post("/api/v1/backups")
    assert accepted.status_code == 202
    operation = admin.get(accepted.headers["Location"]).json
    assert operation["state"] == "succeeded", operation
    listed = admin.get("/api/v1/backups").json
    assert listed[0]["name"] == operation["result"]["name"]
    download = admin.get(f"/api/v1/backups/{listed[0]['name']}")
    assert download.status_code == 200 and download.data[:2] == b"\x1f\x8b"
    download.close()  # send_file's handle stays open until the response is closed
    assert admin.get("/api/v1/backups/..%2Fspectr.db").status_code == 404
