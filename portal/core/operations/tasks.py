"""huey tasks of the operations backbone; each runs inside the app's context."""

from __future__ import annotations

from portal.core.operations import runner
from portal.extensions import queue


@queue.task(name="spectr.execute_operation")
def execute_operation(operation_id: str) -> None:
    """Run the operation `operation_id`, if it still waits to run."""
    with queue.flask_app.app_context():
        runner.run_operation(operation_id)


@queue.task(name="spectr.deliver_callback")
def deliver_callback(operation_id: str, _attempt: int | None = None) -> None:
    """POST an operation's final state to its callback URL, if a callback is due.

    `_attempt` is ignored: the row counts attempts. It stays for tasks queued by older versions.
    """
    from portal.core.operations.callbacks import deliver

    with queue.flask_app.app_context():
        deliver(operation_id)
