"""Role checks for pages: anonymous visitors go to the login page, others may get a 403."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import redirect, request, url_for

from portal.core.errors import Forbidden
from portal.core.security import current_principal


def page_role(needed: str) -> Callable:
    """Decorate a page view: log in first, then require at least the `needed` role."""

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = current_principal()
            if principal is None:
                return redirect(url_for("web.login", next=request.full_path.rstrip("?")))
            if not principal.has_role(needed):
                raise Forbidden(f"This page needs the '{needed}' role.")
            return view(*args, **kwargs)

        return wrapper

    return decorator


def page_project_role(needed: str) -> Callable:
    """Decorate a page acting on a project's resources: log in first, then require `needed`
    in some project (whatever the global role). The view then checks the resource's own
    project (`visible_host`, `visible_app`, `checked`), so a viewer in A and operator in B
    acts on B's things only."""

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from portal.projects.access import can_somewhere

            if current_principal() is None:
                return redirect(url_for("web.login", next=request.full_path.rstrip("?")))
            if not can_somewhere(needed):
                raise Forbidden(f"This page needs the '{needed}' role in a project.")
            return view(*args, **kwargs)

        return wrapper

    return decorator
