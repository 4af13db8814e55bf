"""Administration: users, roles, API tokens, sessions and the audit trail's API."""
