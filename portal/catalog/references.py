"""Parse and check Docker image references, saying exactly what is wrong with a bad one.

Grammar (distribution/reference): `[registry[:port]/]path[:tag][@algorithm:hex]`, where the path
is lowercase components of `[a-z0-9]` joined by `.`, `_`, `__` or dashes. The first component is
a registry when it has a dot or a port, or is `localhost`; otherwise the image is on Docker Hub.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from portal.core.errors import ValidationFailed

DEFAULT_REGISTRY = "docker.io"
MAX_NAME_LENGTH = 255
PATH_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
DOMAIN = re.compile(
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"(?::[0-9]{1,5})?$"
)
TAG = re.compile(r"^[\w][\w.-]{0,127}$")
DIGEST = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-fA-F0-9]{32,}$")


@dataclass(frozen=True)
class ImageReference:
    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def canonical(self) -> str:
        """Return the reference with the registry spelled out and :latest when no tag."""
        text = f"{self.registry}/{self.repository}"
        if self.tag or not self.digest:
            text += f":{self.tag or 'latest'}"
        return text + (f"@{self.digest}" if self.digest else "")


def parse_image_reference(text: str, field: str = "image") -> ImageReference:
    """Split a reference into its parts, or raise ValidationFailed saying why it is invalid."""
    reason = _problem(text)
    if reason:
        raise ValidationFailed(f"Invalid image reference '{text}': {reason}.", {field: [reason]})
    rest, _, digest = text.partition("@")
    name, tag = _split_tag(rest)
    registry, repository = _split_registry(name)
    return ImageReference(registry, repository, tag, digest or None)


def _problem(text: str) -> str | None:
    if not text or not text.strip():
        return "it is empty"
    if text != text.strip() or any(ch.isspace() for ch in text):
        return "it contains whitespace"
    if text.count("@") > 1:
        return "it has more than one '@'"
    rest, at, digest = text.partition("@")
    if at and not DIGEST.match(digest):
        return "the digest must look like sha256:<64 hex digits>"
    name, tag = _split_tag(rest)
    if tag is not None and not TAG.match(tag):
        return "the tag may only hold letters, digits, '_', '.', '-' (up to 128, not starting with '.' or '-')"
    if len(name) > MAX_NAME_LENGTH:
        return f"the name is longer than {MAX_NAME_LENGTH} characters"
    registry, repository = _split_registry(name)
    if registry != DEFAULT_REGISTRY and not DOMAIN.match(registry):
        return f"'{registry}' is not a valid registry host[:port]"
    for component in repository.split("/"):
        if not PATH_COMPONENT.match(component):
            return (
                f"repository component '{component}' must be lowercase letters and digits, "
                "separated by '.', '_', '__' or '-'"
            )
    return None


def _split_tag(name_and_tag: str) -> tuple[str, str | None]:
    slash = name_and_tag.rfind("/")
    colon = name_and_tag.rfind(":")
    if colon > slash:
        return name_and_tag[:colon], name_and_tag[colon + 1 :]
    return name_and_tag, None


def _split_registry(name: str) -> tuple[str, str]:
    first, slash, remainder = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        return first, remainder
    repository = name if "/" in name else f"library/{name}"
    return DEFAULT_REGISTRY, repository
