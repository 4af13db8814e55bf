"""Writing a streamed request body (an image archive, model files) to a file, chunk by chunk.

The body never sits in memory: 1 MiB at a time goes to disk. The disk is checked first against
the announced length, and a body that ends short of it is refused and removed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import IO

from flask import current_app

from portal.core.errors import PayloadTooLarge, ValidationFailed

CHUNK = 1024 * 1024
FREE_SPACE_MARGIN = 512 * 1024 * 1024  # keep room for the database, logs and unpacking


def uploads_folder() -> Path:
    """The instance's folder for request bodies and what is unpacked from them (0700)."""
    folder = Path(current_app.instance_path) / "uploads"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def receive_body(stream: IO[bytes], expected_size: int | None, target: Path, what: str) -> int:
    """Write the body to `target` (created, 0600); return its size. `what` names it in errors."""
    free = shutil.disk_usage(target.parent).free
    if expected_size is not None and expected_size + FREE_SPACE_MARGIN > free:
        raise PayloadTooLarge(
            f"The {what} ({expected_size} bytes) does not fit: {free} bytes are free in "
            f"{target.parent}, and importing it needs room too."
        )
    received = 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            while chunk := stream.read(CHUNK):
                handle.write(chunk)
                received += len(chunk)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    if received == 0 or (expected_size is not None and received != expected_size):
        target.unlink(missing_ok=True)
        raise ValidationFailed(
            f"The upload ended after {received} bytes"
            + (f" of {expected_size}." if expected_size else ".")
            + f" Send the {what} as the request body."
        )
    return received
