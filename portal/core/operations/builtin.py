"""Built-in kinds for tests and benchmarks: `noop` ends at once, `sleep` works for a while.

`sleep` can also fail on purpose (`fail_attempts`, `fail_mode`) so that retries, backoff and
the failure paths are exercised by real workers, not mocks.
"""

from __future__ import annotations

from typing import Any

from portal.core.errors import ValidationFailed
from portal.core.operations.kinds import (
    OperationContext,
    PermanentError,
    TransientError,
    operation_kind,
)


@operation_kind("noop", creatable=True)
def run_noop(ctx: OperationContext) -> dict[str, Any]:
    """Do nothing; used to measure the machinery itself."""
    return {"noop": True}


def validate_sleep(params: dict[str, Any]) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    seconds = params.get("seconds", 1)
    if not isinstance(seconds, int | float) or not 0 <= seconds <= 3600:
        errors["seconds"] = ["Must be a number of seconds between 0 and 3600."]
    fail_attempts = params.get("fail_attempts", 0)
    if not isinstance(fail_attempts, int) or fail_attempts < 0:
        errors["fail_attempts"] = ["Must be a non-negative integer."]
    fail_mode = params.get("fail_mode", "transient")
    if fail_mode not in ("transient", "permanent"):
        errors["fail_mode"] = ["Must be 'transient' or 'permanent'."]
    unknown = set(params) - {"seconds", "fail_attempts", "fail_mode", "steps"}
    for name in unknown:
        errors[name] = ["Unknown field."]
    if errors:
        raise ValidationFailed("Invalid parameters for a sleep operation.", errors)
    return {"seconds": seconds, "fail_attempts": fail_attempts, "fail_mode": fail_mode}


@operation_kind("sleep", creatable=True, validate=validate_sleep)
def run_sleep(ctx: OperationContext) -> dict[str, Any]:
    """Sleep `seconds`, logging a line per step; fail the first `fail_attempts` attempts."""
    if ctx.attempt <= ctx.params["fail_attempts"]:
        message = f"planned failure on attempt {ctx.attempt}"
        if ctx.params["fail_mode"] == "permanent":
            raise PermanentError(message)
        raise TransientError(message)
    seconds = float(ctx.params["seconds"])
    steps = max(1, min(int(seconds * 4), 100))
    for step in range(1, steps + 1):
        ctx.wait(seconds / steps)
        ctx.log(f"slept {seconds * step / steps:.2f} of {seconds:g} s")
        ctx.progress(step / steps, f"step {step} of {steps}")
    return {"slept_seconds": seconds}
