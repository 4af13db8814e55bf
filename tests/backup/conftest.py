"""The portal's fixtures (SQLite and Postgres apps) and real registries, shared with their tests."""

from __future__ import annotations

from tests.portal import conftest as portal_fixtures
from tests.registry import conftest as registry_fixtures

any_db_app = portal_fixtures.any_db_app
api_as = portal_fixtures.api_as
app = portal_fixtures.app
client = portal_fixtures.client
create_user = portal_fixtures.create_user
postgres_database = portal_fixtures.postgres_database
postgres_migrated = portal_fixtures.postgres_migrated
sqlite_template = portal_fixtures.sqlite_template
start_test_registry = registry_fixtures.start_test_registry
registry_server = registry_fixtures.registry_server
spectr_registry = registry_fixtures.spectr_registry
