"""Pages of operations: the list, and one operation with its live log."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from portal.core.errors import Conflict, ValidationFailed
from portal.core.operations import service
from portal.core.operations.builtin import validate_sleep
from portal.core.operations.models import STATES, Operation
from portal.core.security import current_principal
from portal.web.auth import page_project_role, page_role
from portal.web.listing import SortColumn, StoredLowercase, list_page

bp = Blueprint("operations_pages", __name__, url_prefix="/operations")
PAGE_SIZE = 25
# Sortable columns of the operations table: each is indexed, so a page is an index walk.
OPERATION_SORTS = {
    "created": SortColumn(Operation.created_at, descending_first=True),
    "kind": SortColumn(Operation.kind, then=(Operation.created_at,)),
    "target": SortColumn(Operation.target),
    "state": SortColumn(Operation.state, then=(Operation.created_at,)),
}


@bp.get("")
@page_role("viewer")
def index() -> Any:
    filters = {k: v for k in ("state", "kind", "target") if (v := request.args.get(k))}
    listing = list_page(
        service.list_operations(**filters, within=service.visible_operations),
        sortable=OPERATION_SORTS,
        default_sort="created",
        tiebreak=Operation.id,
        searchable=(StoredLowercase(Operation.kind), StoredLowercase(Operation.target)),
        filters=filters,
        page_size=PAGE_SIZE,
    )
    return render_template(
        "operations/index.html",
        listing=listing,
        operations=listing.items,
        filters=filters,
        states=STATES,
    )


@bp.post("/sleep")
@page_role("operator")
def start_sleep() -> Any:
    """Start a `sleep` operation from the page (a way to see the machinery work)."""
    try:
        seconds = float(request.form.get("seconds", "5"))
    except ValueError:
        raise ValidationFailed("Seconds must be a number.", {"seconds": ["not a number"]}) from None
    operation, _ = service.create_operation(
        "sleep",
        validate_sleep({"seconds": seconds}),
        target="demo",
        requested_by=current_principal(),
        request_id=g.get("request_id"),
    )
    return redirect(url_for("operations_pages.detail", operation_id=operation.id))


@bp.get("/<operation_id>")
@page_role("viewer")
def detail(operation_id: str) -> Any:
    operation = service.visible_operation(operation_id)
    lines = service.read_log(operation_id)
    return render_template("operations/detail.html", op=operation, lines=lines)


@bp.post("/<operation_id>/cancel")
@page_project_role("operator")
def cancel(operation_id: str) -> Any:
    service.visible_operation(operation_id, "operator")
    try:
        operation = service.cancel_operation(operation_id)
    except Conflict:  # it ended while the page was open: say so on the page, no error page
        ended = service.get_operation(operation_id)
        flash(f"Nothing to cancel: the operation already ended ({ended.state}).", "error")
    else:
        flash(
            "Cancelled."
            if operation.is_final
            else "Cancellation requested; the worker stops at its next step."
        )
    return redirect(url_for("operations_pages.detail", operation_id=operation_id))
