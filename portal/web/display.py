"""How pages show values: timestamps to the second, errors as "field: message" lines."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from markupsafe import Markup, escape

SECONDS = "%Y-%m-%d %H:%M:%S"
# Messages that only list the wrong fields: the lines under them say the same, better.
GENERIC_MESSAGES = ("Invalid input", "Invalid value", "Some fields are invalid", "Check the form")


def when(moment: datetime | None, fmt: str = SECONDS, default: str = "—") -> Markup:
    """A stored UTC timestamp shown to the second; the full value is in the tooltip."""
    if moment is None:
        return Markup(escape(default))
    full = moment.isoformat(sep=" ") + " UTC"
    stamp = moment.isoformat(timespec="seconds") + "Z"
    return Markup('<time datetime="{}" title="{}">{}</time>').format(
        stamp, full, moment.strftime(fmt)
    )


def error_lines(details: Mapping[str, Any] | None) -> list[str]:
    """Marshmallow's nested error messages as lines like "upstreams[0].url: Not a valid URL."."""
    return _lines(details, "")


def _lines(details: Mapping[str, Any] | None, sentence: str) -> list[str]:
    lines: list[str] = []
    for path, message in _leaves(details or {}, ""):
        line = f"{path}: {message}" if path else message
        if line not in lines and message not in sentence:
            lines.append(line)
    return lines


def _leaves(errors: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(errors, Mapping):
        for key, value in errors.items():
            yield from _leaves(value, _join(path, key))
    elif isinstance(errors, list | tuple):
        for item in errors:
            yield from _leaves(item, path)
    else:
        yield path, str(errors)


def _join(path: str, key: Any) -> str:
    if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
        return f"{path}[{key}]"
    if key == "_schema":
        return path
    return f"{path}.{key}" if path else str(key)


def describe_error(message: str, details: Mapping[str, Any] | None) -> str:
    """One text for a flash message: the sentence, then each wrong field on its own line, once."""
    lines = _lines(details, message)  # what the sentence already says is not said again
    if not lines:
        return message
    heading = "Check these fields:" if message.startswith(GENERIC_MESSAGES) else message
    return "\n".join([heading, *lines])
