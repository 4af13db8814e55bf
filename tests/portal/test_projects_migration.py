"""The projects migration puts everything that existed before it into `default`, on SQLite and
on Postgres, and takes it back out on downgrade."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import text

from portal.app import create_app
from portal.extensions import db
from tests.portal.conftest import _test_config, new_postgres_database

BEFORE = "2625889e46ba"
PROJECTS = "b3e71c5a9d42"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own, on each database Spectr supports."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'before.db'}"
    else:
        with new_postgres_database("spectr_projects_migration") as url:
            yield url


def _rows_before_projects() -> None:
    """What an installation had before projects: users, hosts, an app, a key, a route."""
    statements = [
        "INSERT INTO users (id, username, password_hash, role, active, session_version, "
        "created_at, source, totp_enabled) VALUES "
        "(1, 'ada', 'x', 'admin', true, 1, CURRENT_TIMESTAMP, 'local', false), "
        "(2, 'bob', 'x', 'operator', true, 1, CURRENT_TIMESTAMP, 'local', false)",
        "INSERT INTO hosts (id, name, address, ssh_port, ssh_user, auth_method, become_method, "
        "labels, is_local, status, status_changed_at, facts, agent_port, missed_checks, "
        "created_at, updated_at) VALUES (7, 'gpu-1', '10.0.0.7', 22, 'root', 'key', 'sudo', "
        "'{}', false, 'ready', CURRENT_TIMESTAMP, '{}', 7443, 0, CURRENT_TIMESTAMP, "
        "CURRENT_TIMESTAMP)",
        "INSERT INTO applications (id, name, host_id, kind, latest_revision, status, adopted, "
        "created_at, updated_at) VALUES (3, 'web', 7, 'container', 1, 'running', false, "
        "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
        "INSERT INTO gateway_keys (id, public_id, name, user_id, sha256, prefix, models, "
        "created_at) VALUES (4, 'key_1', 'k', 2, 'ab', 'sk-', '[\"*\"]', CURRENT_TIMESTAMP)",
        "INSERT INTO proxy_routes (id, name, hosts, path_prefix, strip_prefix, upstreams, "
        "strategy, timeout_s, retries, created_at, updated_at) VALUES (5, 'r', '[\"*\"]', '/', "
        "false, '[]', 'round_robin', 60, 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
    ]
    for statement in statements:
        db.session.execute(text(statement))
    db.session.commit()


def test_everything_existing_lands_in_the_default_project(
    database_url: str, tmp_path: Path
) -> None:
    app = create_app(_test_config(tmp_path, database_url))
    with app.app_context():
        directory = app.extensions["migrate"].directory
        upgrade(directory=directory, revision=BEFORE)
        _rows_before_projects()
        upgrade(directory=directory, revision=PROJECTS)

        def scalars(sql: str) -> list:
            return list(db.session.execute(text(sql)).scalars())

        assert scalars("SELECT name FROM projects") == ["default"]
        (default_id,) = scalars("SELECT id FROM projects WHERE name = 'default'")
        for table in ("hosts", "applications", "gateway_keys", "proxy_routes"):
            assert scalars(f"SELECT project_id FROM {table}") == [default_id], table
        members = db.session.execute(
            text("SELECT user_id, role, project_id FROM project_members ORDER BY user_id")
        ).all()
        assert [tuple(row) for row in members] == [
            (1, "admin", default_id),
            (2, "operator", default_id),
        ]
        db.session.commit()

        downgrade(directory=directory, revision=BEFORE)
        assert scalars("SELECT name FROM hosts") == ["gpu-1"]
        assert scalars("SELECT name FROM applications") == ["web"]
        db.session.commit()
        db.session.remove()
        db.engine.dispose()


QUOTAS = "111d3c14c507"


def test_usage_records_get_their_keys_project_and_projects_get_no_new_limit(
    database_url: str, tmp_path: Path
) -> None:
    app = create_app(_test_config(tmp_path, database_url))
    with app.app_context():
        directory = app.extensions["migrate"].directory
        upgrade(directory=directory, revision=BEFORE)
        _rows_before_projects()
        upgrade(directory=directory, revision=PROJECTS)
        for request_id, key_id in (("r1", "key_1"), ("r2", "key_gone")):
            db.session.execute(text(
                "INSERT INTO gateway_usage (request_id, at, key_id, \"user\", model, endpoint, "
                "replica, status, prompt_tokens, completion_tokens, total_tokens, latency_ms, "
                "ttfb_ms, stream, proxy, extra) VALUES (:r, CURRENT_TIMESTAMP, :k, 'bob', 'm', "
                "'/v1/completions', 'x', 200, 1, 1, 2, 1.0, 1.0, false, 'p', '{}')"
            ), {"r": request_id, "k": key_id})  # fmt: skip
        db.session.commit()
        upgrade(directory=directory, revision=QUOTAS)

        def rows(sql: str) -> list:
            return [tuple(row) for row in db.session.execute(text(sql)).all()]

        (default_id,) = rows("SELECT id FROM projects WHERE name = 'default'")[0]
        assert rows("SELECT request_id, project_id FROM gateway_usage ORDER BY request_id") == [
            ("r1", default_id), ("r2", None),  # a key deleted since: no project
        ]  # fmt: skip
        limits = rows(
            "SELECT gpu_model_limits, gpu_memory_limit_mib, gateway_rpm_limit, "
            "gateway_tokens_per_day_limit, gateway_tokens_per_month_limit FROM projects"
        )
        assert limits == [(None, None, None, None, None)]
        db.session.commit()

        downgrade(directory=directory, revision=PROJECTS)
        assert rows("SELECT request_id FROM gateway_usage ORDER BY request_id") == [
            ("r1",),
            ("r2",),
        ]
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
