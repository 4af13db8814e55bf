"""The bounded contexts the portal is made of: their API and page blueprints, and the modules
that register their operation kinds and periodic jobs."""

from __future__ import annotations

import importlib

from flask import Flask
from flask_smorest import Api

API_BLUEPRINTS = [
    "portal.core.operations.api",
    "portal.admin.api",
    "portal.settings.api",
    "portal.proxy.api",
    "portal.catalog.api",
    "portal.apps.api",
]
PAGE_BLUEPRINTS = [
    "portal.web.views",
    "portal.core.operations.views",
    "portal.admin.views",
    "portal.settings.views",
    "portal.proxy.views",
    "portal.catalog.views",
    "portal.apps.views",
]
MODEL_MODULES = [
    "portal.hosts.models",
    "portal.catalog.models",
    "portal.apps.models",
]
TASK_MODULES = [
    "portal.core.operations.tasks",
    "portal.core.operations.builtin",
    "portal.core.operations.periodic",
    "portal.proxy.usage",
    "portal.catalog.tasks",
    "portal.apps.tasks",
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
