"""Unit tests of the registry client's parsing and the registry modules' argument handling."""

from __future__ import annotations

import json

import pytest

from ansible_collections.spectr.core.plugins.module_utils._registry import (
    RegistryError,
    child_manifests,
    manifest_blobs,
    normalise_registry_url,
    parse_challenge,
    parse_next_link,
)
from ansible_collections.spectr.core.plugins.modules import registry_image, registry_info
from tests.collection.module_runner import run_module


def test_parse_bearer_challenge() -> None:
    header = 'Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull"'

    assert parse_challenge(header) == (
        "bearer",
        {
            "realm": "https://auth.example.com/token",
            "service": "registry.example.com",
            "scope": "repository:a/b:pull",
        },
    )


def test_parse_basic_challenge() -> None:
    assert parse_challenge('Basic realm="spectr-registry"') == (
        "basic",
        {"realm": "spectr-registry"},
    )


def test_parse_next_link_of_a_paginated_catalog() -> None:
    assert parse_next_link('</v2/_catalog?last=b&n=2>; rel="next"') == "/v2/_catalog?last=b&n=2"
    assert parse_next_link("") is None


def test_manifest_blobs_lists_config_then_layers() -> None:
    manifest = {
        "config": {"digest": "sha256:c", "size": 10},
        "layers": [{"digest": "sha256:l1", "size": 100}, {"digest": "sha256:l2", "size": 200}],
    }

    assert manifest_blobs(json.dumps(manifest).encode()) == [
        ("sha256:c", 10),
        ("sha256:l1", 100),
        ("sha256:l2", 200),
    ]


def test_child_manifests_of_an_index() -> None:
    index = {"manifests": [{"digest": "sha256:amd64"}, {"digest": "sha256:arm64"}]}

    assert child_manifests(json.dumps(index).encode()) == ["sha256:amd64", "sha256:arm64"]


def test_registry_url_needs_a_scheme() -> None:
    assert normalise_registry_url("https://r:5000/") == "https://r:5000"
    with pytest.raises(RegistryError, match="must start with https://"):
        normalise_registry_url("r:5000")


def test_registry_image_present_without_source_fails_naming_it() -> None:
    result = run_module(registry_image, {"registry_url": "https://127.0.0.1:1", "repository": "a"})

    assert result["failed"] is True
    assert "source" in result["msg"]


def test_registry_info_refuses_token_with_username() -> None:
    result = run_module(
        registry_info,
        {"registry_url": "https://127.0.0.1:1", "token": "s3cr3t-token", "username": "ops"},
    )

    assert result["failed"] is True
    assert "mutually exclusive: token|username" in result["msg"]
    assert "s3cr3t-token" not in json.dumps(result)


def test_unreachable_registry_fails_with_the_connection_error() -> None:
    # Port 1 on 127.0.0.1 has no listener: the module must report why, not crash.
    result = run_module(registry_info, {"registry_url": "http://127.0.0.1:1", "timeout": 5})

    assert result["failed"] is True
    assert "cannot reach http://127.0.0.1:1/v2/_catalog" in result["msg"]
    assert "refused" in result["msg"].lower()
