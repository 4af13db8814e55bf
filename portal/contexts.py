"""The bounded contexts the portal is made of: their API and page blueprints, and the modules
that register their operation kinds and periodic jobs."""

from __future__ import annotations

import importlib

from flask import Flask
from flask_smorest import Api

API_BLUEPRINTS = [
    "portal.core.operations.api",
    "portal.admin.api",
    "portal.admin.sign_in_api",
    "portal.projects.api",
    "portal.settings.api",
    "portal.proxy.api",
    "portal.monitoring.api",
    "portal.hosts.api",
    "portal.hosts.containers_api",
    "portal.hosts.resources_api",
    "portal.catalog.api",
    "portal.artifacts.api",
    "portal.apps.api",
    "portal.projects.sharing_api",
    "portal.registry.api",
    "portal.backup.api",
]
PAGE_BLUEPRINTS = [
    "portal.web.views",
    "portal.core.operations.views",
    "portal.admin.views",
    "portal.admin.account_views",
    "portal.admin.sign_in_views",
    "portal.admin.sign_in_admin_views",
    "portal.projects.views",
    "portal.projects.sharing_views",
    "portal.settings.views",
    "portal.proxy.views",
    "portal.monitoring.views",
    "portal.hosts.views",
    "portal.hosts.resource_views",
    "portal.hosts.console_views",
    "portal.catalog.views",
    "portal.apps.views",
    "portal.apps.edit_views",
    "portal.registry.views",
]
MODEL_MODULES = [
    "portal.projects.models",
    "portal.monitoring.models",
    "portal.hosts.models",
    "portal.catalog.models",
    "portal.artifacts.models",
    "portal.apps.models",
    "portal.registry.models",
]
TASK_MODULES = [
    "portal.core.operations.tasks",
    "portal.core.operations.builtin",
    "portal.core.operations.periodic",
    "portal.proxy.usage",
    "portal.monitoring.tasks",
    "portal.hosts.tasks",
    "portal.hosts.health",
    "portal.catalog.tasks",
    "portal.artifacts.tasks",
    "portal.apps.tasks",
    "portal.registry.tasks",
    "portal.backup.tasks",
    "portal.admin.tasks",
]


def register_contexts(app: Flask, api: Api) -> None:
    for module_name in MODEL_MODULES:
        importlib.import_module(module_name)
    for module_name in TASK_MODULES:
        importlib.import_module(module_name)
    for module_name in API_BLUEPRINTS:
        api.register_blueprint(importlib.import_module(module_name).blp)
    for module_name in PAGE_BLUEPRINTS:
        app.register_blueprint(importlib.import_module(module_name).bp)
