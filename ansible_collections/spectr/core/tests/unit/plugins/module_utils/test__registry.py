# Copyright (c) Spectr authors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""_registry's parsers, and its client and image copier against a registry on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import socket

import pytest

from ansible_collections.spectr.core.plugins.module_utils._registry import (
    ImageCopier,
    RegistryClient,
    RegistryError,
    child_manifests,
    manifest_blobs,
    normalise_registry_url,
    parse_challenge,
    parse_next_link,
    registry_auth_argument_spec,
)

IMAGE_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"


def push_image(registry, repository, tag, layers):
    """Put an image (a config and these layers) into a FakeRegistry; return its digest."""
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": IMAGE_TYPE,
        "config": {"digest": registry.add_blob(repository, config), "size": len(config)},
        "layers": [{"digest": registry.add_blob(repository, layer), "size": len(layer)}
                   for layer in layers],
    }
    return registry.add_manifest(repository, tag, IMAGE_TYPE, json.dumps(manifest).encode())


def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_bearer_challenge_is_split_into_scheme_and_parameters():
    header = ('Bearer realm="https://auth.example.com/token",service="registry.example.com",'
              'scope="repository:a/b:pull"')

    assert parse_challenge(header) == ("bearer", {
        "realm": "https://auth.example.com/token",
        "service": "registry.example.com",
        "scope": "repository:a/b:pull",
    })


def test_basic_challenge_and_a_missing_header():
    assert parse_challenge('Basic realm="spectr-registry"') == ("basic", {"realm": "spectr-registry"})
    assert parse_challenge(None) == ("", {})


def test_next_link_of_a_paginated_catalog():
    assert parse_next_link('</v2/_catalog?last=b&n=2>; rel="next"') == "/v2/_catalog?last=b&n=2"
    assert parse_next_link("</v2/_catalog?last=b&n=2>; rel=next") == "/v2/_catalog?last=b&n=2"
    assert parse_next_link("") is None and parse_next_link(None) is None


def test_manifest_blobs_are_the_config_then_the_layers():
    manifest = {"config": {"digest": "sha256:c", "size": 10},
                "layers": [{"digest": "sha256:l1", "size": 100}, {"digest": "sha256:l2"}]}

    assert manifest_blobs(json.dumps(manifest).encode()) == [
        ("sha256:c", 10), ("sha256:l1", 100), ("sha256:l2", 0)]


def test_child_manifests_of_an_index():
    index = {"manifests": [{"digest": "sha256:amd64"}, {"digest": "sha256:arm64"}]}

    assert child_manifests(json.dumps(index).encode()) == ["sha256:amd64", "sha256:arm64"]


def test_registry_url_needs_a_scheme_and_loses_its_trailing_slash():
    assert normalise_registry_url("https://r:5000/") == "https://r:5000"
    with pytest.raises(RegistryError, match="must start with https:// or http://"):
        normalise_registry_url("r:5000")


def test_credentials_in_the_argument_spec_are_never_logged():
    spec = registry_auth_argument_spec()

    assert spec["password"]["no_log"] is True and spec["token"]["no_log"] is True
    assert spec["registry_url"]["required"] is True


def test_catalog_follows_every_page(registry):
    for name in ("alpha", "beta", "gamma", "team/delta", "zeta"):
        push_image(registry, name, "1", [b"layer of " + name.encode()])

    names = RegistryClient(registry.url).repositories(page_size=2)

    assert names == ["alpha", "beta", "gamma", "team/delta", "zeta"]
    catalog_calls = [path for method, path, headers in registry.requests if "_catalog" in path]
    assert len(catalog_calls) == 3


def test_tags_are_sorted_and_a_missing_repository_has_none(registry):
    for tag in ("v2", "latest", "v1"):
        push_image(registry, "app", tag, [b"x"])
    client = RegistryClient(registry.url)

    assert client.tags("app") == ["latest", "v1", "v2"]
    assert client.tags("nothing-here") == []


def test_manifest_answers_media_type_body_and_digest(registry):
    digest = push_image(registry, "app", "v1", [b"x"])

    media_type, body, found = RegistryClient(registry.url).manifest("app", "v1")

    assert (media_type, found) == (IMAGE_TYPE, digest)
    assert digest_of(body) == digest
    assert RegistryClient(registry.url).manifest("app", "v9") is None


def test_basic_credentials_are_sent_after_the_challenge(registry):
    registry.users = {"ops": "s3cret"}
    push_image(registry, "app", "v1", [b"x"])

    assert RegistryClient(registry.url, username="ops", password="s3cret").tags("app") == ["v1"]
    first, second = registry.requests[-2:]
    assert "Authorization" not in first[2]
    assert second[2]["Authorization"].startswith("Basic ")


def test_a_wrong_password_fails_with_the_registry_answer(registry):
    registry.users = {"ops": "s3cret"}

    with pytest.raises(RegistryError, match=r"GET http://127\.0\.0\.1:\d+/v2/ answered 401"):
        RegistryClient(registry.url, username="ops", password="wrong").ping()


def test_bearer_token_is_fetched_with_the_scope_and_reused(registry):
    registry.users = {"ops": "s3cret"}
    registry.token_realm = True
    push_image(registry, "team/app", "v1", [b"x"])
    client = RegistryClient(registry.url, username="ops", password="s3cret")

    assert client.tags("team/app") == ["v1"]
    assert client.tags("team/app") == ["v1"]

    token_calls = [path for method, path, headers in registry.requests if path.startswith("/token")]
    assert token_calls == ["/token?service=fake&scope=repository%3Ateam%2Fapp%3Apull"]
    assert registry.requests[-1][2]["Authorization"] == "Bearer issued-token"


def test_a_refused_static_token_is_not_retried(registry):
    registry.users = {"ops": "s3cret"}
    registry.token_realm = True

    with pytest.raises(RegistryError, match="answered 401"):
        RegistryClient(registry.url, token="stale").ping()
    assert [path for method, path, headers in registry.requests] == ["/v2/"]


def test_an_unreachable_registry_fails_saying_why():
    client = RegistryClient("http://127.0.0.1:%d" % free_port(), timeout=5)

    with pytest.raises(RegistryError, match=r"cannot reach http://127\.0\.0\.1:\d+/v2/: .*refused"):
        client.ping()


def test_copy_between_registries_moves_every_blob_then_the_manifest(make_registry):
    source, destination = make_registry(), make_registry()
    digest = push_image(source, "app", "v1", [b"layer one", b"layer two"])

    copier = ImageCopier(RegistryClient(source.url), RegistryClient(destination.url))
    copied = copier.copy("app", "v1", "mirror/app", "stable")

    assert copied == digest
    assert copier.blobs_copied == 3
    assert destination.manifests[("mirror/app", "stable")] == source.manifests[("app", "v1")]
    body = source.manifests[("app", "v1")][1]
    assert all(destination.blobs[("mirror/app", blob)] == source.blobs[("app", blob)]
               for blob, size in manifest_blobs(body))


def test_a_second_copy_uploads_nothing(make_registry):
    source, destination = make_registry(), make_registry()
    push_image(source, "app", "v1", [b"layer"])
    ImageCopier(RegistryClient(source.url), RegistryClient(destination.url)).copy(
        "app", "v1", "app", "v1")

    seen = len(destination.requests)

    again = ImageCopier(RegistryClient(source.url), RegistryClient(destination.url))
    again.copy("app", "v1", "app", "v1")

    assert again.blobs_copied == 0
    methods = [method for method, path, headers in destination.requests[seen:]]
    assert methods == ["HEAD", "HEAD", "PUT"]  # both blobs are there; the tag is put again


def test_copy_inside_one_registry_mounts_blobs_instead_of_downloading(registry):
    push_image(registry, "app", "v1", [b"big layer"])
    client = RegistryClient(registry.url)

    copier = ImageCopier(client, client)
    copier.copy("app", "v1", "other", "v1")

    assert copier.same_registry is True and copier.blobs_copied == 2
    methods = [(method, path.split("?")[0]) for method, path, headers in registry.requests]
    assert ("GET", "/v2/app/blobs/%s" % digest_of(b"big layer")) not in methods
    assert registry.blobs[("other", digest_of(b"big layer"))] == b"big layer"


def test_copy_of_an_index_copies_each_platform_first(make_registry):
    source, destination = make_registry(), make_registry()
    amd64 = push_image(source, "app", "amd64", [b"amd64 layer"])
    arm64 = push_image(source, "app", "arm64", [b"arm64 layer"])
    index = json.dumps({"schemaVersion": 2, "mediaType": INDEX_TYPE,
                        "manifests": [{"digest": amd64}, {"digest": arm64}]}).encode()
    source.add_manifest("app", "v1", INDEX_TYPE, index)

    ImageCopier(RegistryClient(source.url), RegistryClient(destination.url)).copy(
        "app", "v1", "app", "v1")

    assert destination.manifests[("app", "v1")] == (INDEX_TYPE, index)
    assert ("app", amd64) in destination.manifests and ("app", arm64) in destination.manifests
    puts = [path for method, path, headers in destination.requests if method == "PUT"
            and "/manifests/" in path]
    assert puts[-1] == "/v2/app/manifests/v1"


def test_copy_of_a_missing_image_fails_naming_it(make_registry):
    source, destination = make_registry(), make_registry()

    with pytest.raises(RegistryError, match=r"/app:v1 does not exist"):
        ImageCopier(RegistryClient(source.url), RegistryClient(destination.url)).copy(
            "app", "v1", "app", "v1")


def test_delete_manifest_removes_every_tag_of_the_digest(registry):
    digest = push_image(registry, "app", "v1", [b"x"])
    registry.add_manifest("app", "latest", IMAGE_TYPE, registry.manifests[("app", "v1")][1])
    client = RegistryClient(registry.url)

    client.delete_manifest("app", digest)

    assert client.tags("app") == []
    with pytest.raises(RegistryError, match="answered 404"):
        client.delete_manifest("app", digest)
