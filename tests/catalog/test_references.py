"""Image references: parsed into their parts, or refused with the reason."""

from __future__ import annotations

import pytest

from portal.catalog.references import parse_image_reference
from portal.core.errors import ValidationFailed

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("redis", "docker.io", "library/redis", None, None),
        ("redis:7.2", "docker.io", "library/redis", "7.2", None),
        ("vllm/vllm-openai:v0.8.5", "docker.io", "vllm/vllm-openai", "v0.8.5", None),
        (
            "ghcr.io/ggml-org/llama.cpp:server-cuda",
            "ghcr.io",
            "ggml-org/llama.cpp",
            "server-cuda",
            None,
        ),
        ("localhost:5000/team/app", "localhost:5000", "team/app", None, None),
        (f"registry.local:5000/app@{DIGEST}", "registry.local:5000", "app", None, DIGEST),
        (f"app:1@{DIGEST}", "docker.io", "library/app", "1", DIGEST),
    ],
)
def test_valid_references_are_split(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    parsed = parse_image_reference(text)
    assert (parsed.registry, parsed.repository, parsed.tag, parsed.digest) == (
        registry,
        repository,
        tag,
        digest,
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("redis 7", "whitespace"),
        ("Redis:7", "lowercase"),
        ("redis:-bad", "tag"),
        ("redis@sha256:xyz", "digest"),
        ("team//app", "component ''"),
        ("a" * 300, "longer than 255"),
        ("bad_host.example:99999999/app", "registry"),
        ("redis@a@b", "more than one"),
    ],
)
def test_invalid_references_say_why(text: str, reason: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_image_reference(text)
    assert reason in caught.value.message
    assert caught.value.details["image"]


def test_canonical_form_spells_out_registry_and_tag() -> None:
    assert parse_image_reference("redis").canonical == "docker.io/library/redis:latest"
