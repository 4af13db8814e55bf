# Copyright (c) Spectr authors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0
"""_model_cache: file lists, the host layout on a real folder, and the registry reader."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from ansible_collections.spectr.core.plugins.module_utils._model_cache import (
    OCI_MANIFEST,
    ModelCache,
    ModelCacheError,
    RegistryReader,
    check_relative_path,
    digest_hex,
    files_from_manifest,
    normalise_files,
    sha256_file,
)

MODEL = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32
TITLE = "org.opencontainers.image.title"


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def entry(path, data):
    return {"path": path, "digest": sha(data), "size": len(data)}


def model_manifest(files):
    """The OCI manifest the portal pushes for a model: one layer per file, titled by path."""
    return json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"digest": sha(b"{}"), "size": 2},
        "layers": [{"digest": sha(data), "size": len(data), "annotations": {TITLE: path}}
                   for path, data in files.items()],
    }).encode()


def cache_with_blobs(root, *blobs):
    cache = ModelCache(str(root))
    cache.make_dirs()
    for blob in blobs:
        with open(cache.blob(sha(blob)), "wb") as handle:
            handle.write(blob)
    return cache


def test_digest_hex_takes_sha256_digests_only():
    assert digest_hex(MODEL) == "ab" * 32
    for wrong in ("sha512:" + "ab" * 32, "sha256:" + "AB" * 32, "sha256:abc", "", None):
        with pytest.raises(ModelCacheError, match="not a sha256 digest"):
            digest_hex(wrong)


@pytest.mark.parametrize("path", ["", None, "/etc/passwd", "a/../b", "../x", "a//b", "./a", "a/",
                                  "a/\x00b"])
def test_paths_outside_the_model_folder_are_refused(path):
    with pytest.raises(ModelCacheError, match="refusing model file path"):
        check_relative_path(path)


def test_a_nested_relative_path_is_accepted():
    assert check_relative_path("weights/part-1.gguf") == "weights/part-1.gguf"


def test_files_are_checked_and_sorted_by_path():
    files = [entry("b", b"2"), entry("a/c", b"1")]

    assert normalise_files(files) == [entry("a/c", b"1"), entry("b", b"2")]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ([dict(entry("a", b"1"), size=-1)], "size must be a non-negative integer"),
        ([dict(entry("a", b"1"), size=True)], "size must be a non-negative integer"),
        ([dict(entry("a", b"1"), size="1")], "size must be a non-negative integer"),
        ([entry("a", b"1"), entry("a", b"2")], "listed twice"),
        ([entry("a", b"1"), entry("a/b", b"2")], "also a folder of another file"),
        ([dict(entry("a", b"1"), digest="md5:00")], "not a sha256 digest"),
    ],
)
def test_file_lists_that_cannot_be_laid_out_are_refused(files, message):
    with pytest.raises(ModelCacheError, match=message):
        normalise_files(files)


def test_files_come_from_the_titled_layers_of_the_manifest():
    body = model_manifest({"weights/model.gguf": b"weights", "config.json": b"{}"})

    assert files_from_manifest(body) == [entry("config.json", b"{}"),
                                         entry("weights/model.gguf", b"weights")]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>", "not JSON"),
        (b"[]", "has no layers list"),
        (b'{"layers": {}}', "has no layers list"),
        (b'{"layers": [{"digest": "sha256:x", "size": 1}]}', r"no org\.opencontainers\.image\.title"),
    ],
)
def test_manifests_that_do_not_describe_a_model_are_refused(body, message):
    with pytest.raises(ModelCacheError, match=message):
        files_from_manifest(body)


def test_a_manifest_cannot_place_a_file_outside_the_folder():
    with pytest.raises(ModelCacheError, match="refusing model file path '../escape'"):
        files_from_manifest(model_manifest({"../escape": b"x"}))


def test_sha256_of_a_file(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"x" * (3 * 1024 * 1024 + 5))  # more than one read chunk

    assert sha256_file(str(path)) == sha(b"x" * (3 * 1024 * 1024 + 5))


def test_layout_paths_follow_the_agents_layout(tmp_path):
    cache = ModelCache(str(tmp_path))

    assert cache.blob(MODEL) == str(tmp_path / "blobs" / "sha256" / ("ab" * 32))
    assert cache.partial(MODEL) == cache.blob(MODEL) + ".partial"
    assert cache.model_dir(MODEL) == str(tmp_path / ("sha256-" + "ab" * 32))
    assert cache.manifest_path(MODEL) == str(tmp_path / "manifests" / ("sha256-%s.json" % ("ab" * 32)))


def test_linked_files_are_the_blobs_themselves(tmp_path):
    cache = cache_with_blobs(tmp_path, b"one")

    cache.link(sha(b"one"), "a/one", MODEL)

    linked = os.path.join(cache.model_dir(MODEL), "a", "one")
    assert os.stat(linked).st_ino == os.stat(cache.blob(sha(b"one"))).st_ino
    assert cache.is_linked(sha(b"one"), "a/one", MODEL) is True
    assert cache.folder_files(MODEL) == ["a/one"]


def test_a_copy_or_a_symlink_is_not_a_linked_file(tmp_path):
    cache = cache_with_blobs(tmp_path, b"one")
    folder = cache.model_dir(MODEL)
    os.makedirs(folder)
    with open(os.path.join(folder, "copy"), "wb") as handle:
        handle.write(b"one")
    os.symlink(cache.blob(sha(b"one")), os.path.join(folder, "symlink"))

    assert cache.is_linked(sha(b"one"), "copy", MODEL) is False
    assert cache.is_linked(sha(b"one"), "symlink", MODEL) is False
    assert cache.is_linked(sha(b"one"), "missing", MODEL) is False


def test_link_replaces_what_is_in_the_way(tmp_path):
    cache = cache_with_blobs(tmp_path, b"new")
    os.makedirs(cache.model_dir(MODEL))
    stale = os.path.join(cache.model_dir(MODEL), "file")
    with open(stale, "wb") as handle:
        handle.write(b"stale")

    cache.link(sha(b"new"), "file", MODEL)

    with open(stale, "rb") as handle:
        assert handle.read() == b"new"


def test_the_manifest_is_written_whole_and_read_back(tmp_path):
    cache = cache_with_blobs(tmp_path)
    files = [entry("one", b"one")]

    cache.write_manifest(MODEL, "tiny", files)

    recorded = cache.read_manifest(MODEL)
    assert (recorded["digest"], recorded["name"], recorded["files"]) == (MODEL, "tiny", files)
    assert recorded["pulled_at"].endswith("+00:00")
    assert os.listdir(cache.manifest_dir) == [os.path.basename(cache.manifest_path(MODEL))]
    assert oct(os.stat(cache.manifest_path(MODEL)).st_mode & 0o777) == "0o644"


def test_a_missing_or_broken_manifest_reads_as_none(tmp_path):
    cache = cache_with_blobs(tmp_path)
    with open(cache.manifest_path(OTHER), "w") as handle:
        handle.write("{broken")

    assert cache.read_manifest(MODEL) is None
    assert cache.read_manifest(OTHER) is None


def test_blobs_in_use_are_those_of_the_other_recorded_models(tmp_path):
    cache = cache_with_blobs(tmp_path)
    cache.write_manifest(MODEL, "mine", [entry("one", b"one"), entry("shared", b"shared")])
    cache.write_manifest(OTHER, "theirs", [entry("shared", b"shared")])
    with open(os.path.join(cache.manifest_dir, "sha256-%s.json" % ("ef" * 32)), "w") as handle:
        handle.write('{"files": [{"no digest": 1}]}')  # broken: must not stop a removal

    assert cache.digests_in_use(except_digest=MODEL) == {sha(b"shared")}
    assert cache.digests_in_use() == {sha(b"one"), sha(b"shared")}
    assert ModelCache(str(tmp_path / "empty")).digests_in_use() == set()


def test_free_bytes_of_a_root_not_made_yet_is_that_of_its_parent(tmp_path, monkeypatch):
    asked = []
    real_statvfs = os.statvfs

    def statvfs(path):
        asked.append(path)
        return real_statvfs(path)

    monkeypatch.setattr(os, "statvfs", statvfs)

    free = ModelCache(str(tmp_path / "not" / "yet")).free_bytes()

    assert asked == [str(tmp_path)]
    stats = real_statvfs(str(tmp_path))
    assert 0 < free and abs(free - stats.f_bavail * stats.f_frsize) < 1024 ** 3  # others write too
    assert not (tmp_path / "not").exists()


def test_removal_takes_the_manifest_then_the_folder_then_blobs(tmp_path):
    cache = cache_with_blobs(tmp_path, b"one")
    cache.link(sha(b"one"), "one", MODEL)
    cache.write_manifest(MODEL, "tiny", [entry("one", b"one")])
    with open(cache.partial(sha(b"one")), "wb") as handle:
        handle.write(b"o")

    assert cache.remove_model(MODEL) is True
    assert cache.remove_blob(sha(b"one")) is True

    assert os.listdir(str(tmp_path / "blobs" / "sha256")) == []
    assert not os.path.exists(cache.model_dir(MODEL))
    assert cache.read_manifest(MODEL) is None
    assert (cache.remove_model(MODEL), cache.remove_blob(sha(b"one"))) == (False, False)


def test_reader_takes_http_urls_only():
    with pytest.raises(ModelCacheError, match="must start with https:// or http://"):
        RegistryReader("registry:5000", "models/tiny")


def test_reader_sends_basic_credentials_and_checks_the_manifest_digest(registry):
    body = model_manifest({"a": b"1"})
    digest = registry.add_manifest("models/tiny", "v1", OCI_MANIFEST, body)
    reader = RegistryReader(registry.url, "models/tiny", username="ops", password="s3cret")

    assert reader.manifest("v1") == (body, digest)
    assert reader.manifest(digest) == (body, digest)
    headers = registry.requests[-1][2]
    assert headers["Authorization"] == "Basic b3BzOnMzY3JldA=="
    assert OCI_MANIFEST in headers["Accept"]


def test_reader_refuses_a_manifest_that_is_not_the_digest_asked_for(registry):
    registry.add_manifest("models/tiny", "v1", OCI_MANIFEST, model_manifest({"a": b"1"}))
    # A registry (or something in the way) that answers a digest with other content.
    registry.manifests[("models/tiny", OTHER)] = (OCI_MANIFEST, model_manifest({"b": b"2"}))

    with pytest.raises(ModelCacheError, match="the registry sent manifest sha256:.* for " + OTHER):
        RegistryReader(registry.url, "models/tiny").manifest(OTHER)


def test_reader_errors_name_the_url_and_the_answer(registry):
    reader = RegistryReader(registry.url, "models/tiny")

    with pytest.raises(ModelCacheError, match=r"GET http://127\.0\.0\.1:\d+/v2/models/tiny/"
                                              r"manifests/v9 answered 404: .*MANIFEST_UNKNOWN"):
        reader.manifest("v9")


def test_fetch_writes_a_whole_blob(registry, tmp_path):
    data = b"weights" * 1000
    digest = registry.add_blob("models/tiny", data)
    target = str(tmp_path / "blob.partial")

    written = RegistryReader(registry.url, "models/tiny").fetch_blob(digest, target, 0)

    assert written == len(data)
    assert sha256_file(target) == digest
    assert "Range" not in registry.requests[-1][2]


def test_fetch_resumes_a_partial_download_with_a_range(registry, tmp_path):
    data = b"0123456789" * 100
    digest = registry.add_blob("models/tiny", data)
    target = tmp_path / "blob.partial"
    target.write_bytes(data[:300])

    written = RegistryReader(registry.url, "models/tiny").fetch_blob(digest, str(target), 300)

    assert written == 700
    assert target.read_bytes() == data
    assert registry.requests[-1][2]["Range"] == "bytes=300-"


def test_fetch_starts_again_when_the_partial_file_is_too_long(registry, tmp_path):
    data = b"short blob"
    digest = registry.add_blob("models/tiny", data)
    target = tmp_path / "blob.partial"
    target.write_bytes(b"x" * 50)  # longer than the blob: the registry answers 416

    written = RegistryReader(registry.url, "models/tiny").fetch_blob(digest, str(target), 50)

    assert written == len(data)
    assert target.read_bytes() == data


def test_credentials_are_not_sent_to_the_storage_a_registry_redirects_to(registry, tmp_path):
    data = b"blob from storage"
    digest = registry.add_blob("models/tiny", data)
    # The same server under another name: for the client, another host.
    registry.redirect_blobs_to = registry.url.replace("127.0.0.1", "localhost")
    target = tmp_path / "blob"

    RegistryReader(registry.url, "models/tiny", username="ops", password="s3cret").fetch_blob(
        digest, str(target), 0)

    assert target.read_bytes() == data
    first, redirected = registry.requests[-2:]
    assert first[1].startswith("/v2/models/tiny/blobs/") and "Authorization" in first[2]
    assert redirected[1].startswith("/redirected/") and "Authorization" not in redirected[2]


def test_an_unreachable_registry_fails_saying_so(tmp_path):
    reader = RegistryReader("http://127.0.0.1:9", "models/tiny", timeout=5)

    with pytest.raises(ModelCacheError, match=r"cannot reach http://127\.0\.0\.1:9/v2/"):
        reader.fetch_blob(MODEL, str(tmp_path / "x"), 0)
