"""Monitoring tests reuse the portal's fixtures: a migrated SQLite (or Postgres) app per test."""

from __future__ import annotations

from tests.browser.conftest import (  # noqa: F401
    browser_context,
    chromium_path,
    page,
    playwright_driver,
    pytest_runtest_makereport,
)
from tests.portal.conftest import (  # noqa: F401  (pytest finds fixtures by name)
    ApiClient,
    any_db_app,
    api_as,
    app,
    client,
    create_user,
    postgres_database,
    postgres_migrated,
    sqlite_template,
)
