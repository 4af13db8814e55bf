"""The web UI shell: login, layout, home page, health endpoint, error pages."""
