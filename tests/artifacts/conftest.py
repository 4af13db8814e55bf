"""Fixtures: the portal and a real docker-registry recorded as Spectr's own (tests.registry),
the Spectr node's model cache in a temporary folder, and tiny real GGUF models."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.registry import conftest as registry_fixtures
from tests.support.tiny_gguf import write_tiny_llama_gguf

app_fixture = registry_fixtures.portal_fixtures
any_db_app = app_fixture.any_db_app
api_as = app_fixture.api_as
client = app_fixture.client
create_user = app_fixture.create_user
postgres_database = app_fixture.postgres_database
postgres_migrated = app_fixture.postgres_migrated
sqlite_template = app_fixture.sqlite_template
start_test_registry = registry_fixtures.start_test_registry
registry_server = registry_fixtures.registry_server
spectr_registry = registry_fixtures.spectr_registry


@pytest.fixture
def app(tmp_path: Path, sqlite_template: Path):  # type: ignore[no-untyped-def]
    """The portal on SQLite, with the Spectr node's model cache under tmp_path."""
    from portal.extensions import db

    application = app_fixture._make_sqlite_app(
        tmp_path, sqlite_template, SPECTR_MODELS_DIR=str(tmp_path / "node-models")
    )
    with application.app_context():
        yield application
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def tiny_model(tmp_path: Path) -> Callable[..., Path]:
    """Factory: a real llama-architecture GGUF with random weights (a few hundred KB)."""

    def make(seed: int = 0, name: str = "tiny.gguf") -> Path:
        folder = tmp_path / f"model-{seed}"
        folder.mkdir(exist_ok=True)
        return write_tiny_llama_gguf(folder / name, seed=seed)

    return make
