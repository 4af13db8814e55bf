"""The portal's fixtures (SQLite and Postgres apps), shared with its tests."""

from __future__ import annotations

from tests.portal import conftest as portal_fixtures

any_db_app = portal_fixtures.any_db_app
api_as = portal_fixtures.api_as
app = portal_fixtures.app
client = portal_fixtures.client
create_user = portal_fixtures.create_user
postgres_database = portal_fixtures.postgres_database
postgres_migrated = portal_fixtures.postgres_migrated
sqlite_template = portal_fixtures.sqlite_template
