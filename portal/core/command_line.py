"""The one parser of command lines typed by people: forms, previews, the Run boxes and exec."""

from __future__ import annotations

import shlex

from portal.core.errors import ValidationFailed


def split_command(command: str) -> list[str]:
    """Split a command line into argv as a POSIX shell would (quotes, escapes), running none."""
    try:
        return shlex.split(command)
    except ValueError as exc:
        raise ValidationFailed(
            f"Cannot split the command: {exc}.", {"command": [str(exc)]}
        ) from None
