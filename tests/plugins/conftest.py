"""The portal fixtures for the entry point tests."""

from tests.portal.conftest import (  # noqa: F401 - fixtures shared with the portal's tests
    api_as,
    app,
    client,
    create_user,
    sqlite_template,
)
