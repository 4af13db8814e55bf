"""Unit tests of model_cache: paths, manifest parsing, space check, and a run on a local root."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from unittest import mock

import pytest

from agent.tests.registry_seed import model_manifest
from ansible_collections.spectr.core.plugins.module_utils._model_cache import (
    ModelCache,
    ModelCacheError,
    check_relative_path,
    files_from_manifest,
)
from ansible_collections.spectr.core.plugins.modules import model_cache
from tests.collection.module_runner import run_module

MODEL = "sha256:" + "ab" * 32


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def seed_blobs(root: Path, *blobs: bytes) -> None:
    folder = root / "blobs" / "sha256"
    folder.mkdir(parents=True, exist_ok=True)
    for blob in blobs:
        (folder / sha(blob).removeprefix("sha256:")).write_bytes(blob)


@pytest.mark.parametrize("path", ["", "/etc/passwd", "a/../b", "../x", "a//b", "./a", "a/"])
def test_refuses_paths_outside_the_model_folder(path: str) -> None:
    with pytest.raises(ModelCacheError, match="refusing"):
        check_relative_path(path)


def test_reads_files_from_the_portal_manifest() -> None:
    files = {"weights/model.gguf": b"weights", "config.json": b"{}"}

    parsed = files_from_manifest(model_manifest(files, b"{}"))

    assert parsed == [
        {"path": "config.json", "digest": sha(b"{}"), "size": 2},
        {"path": "weights/model.gguf", "digest": sha(b"weights"), "size": 7},
    ]


def test_refuses_a_layer_without_title() -> None:
    manifest = json.loads(model_manifest({"a": b"x"}, b"{}"))
    del manifest["layers"][0]["annotations"]

    with pytest.raises(ModelCacheError, match=r"no org\.opencontainers\.image\.title"):
        files_from_manifest(json.dumps(manifest).encode())


def test_links_cached_blobs_and_writes_the_manifest_last(tmp_path: Path) -> None:
    seed_blobs(tmp_path, b"one", b"two")
    files = [{"path": "a/one", "digest": sha(b"one"), "size": 3},
             {"path": "two", "digest": sha(b"two"), "size": 3}]  # fmt: skip
    args = {"root": str(tmp_path), "digest": MODEL, "name": "tiny", "files": files}

    first = run_module(model_cache, args)
    second = run_module(model_cache, args)

    assert first["changed"] is True and second["changed"] is False
    assert {f["status"] for f in first["files"]} == {"linked"}
    folder = Path(first["path"])
    assert (folder / "a" / "one").stat().st_ino == (
        Path(ModelCache(str(tmp_path)).blob(sha(b"one")))
    ).stat().st_ino
    recorded = json.loads((tmp_path / "manifests" / f"sha256-{'ab' * 32}.json").read_text())
    assert (recorded["name"], recorded["files"]) == ("tiny", files)


def test_removes_stray_files_from_the_model_folder(tmp_path: Path) -> None:
    seed_blobs(tmp_path, b"one")
    args = {"root": str(tmp_path), "digest": MODEL, "name": "tiny",
            "files": [{"path": "one", "digest": sha(b"one"), "size": 3}]}  # fmt: skip
    run_module(model_cache, args)
    stray = tmp_path / f"sha256-{'ab' * 32}" / "stray.txt"
    stray.write_text("not part of the model")

    result = run_module(model_cache, args, diff=True)

    assert result["changed"] is True
    assert result["diff"]["before"] == "one\nstray.txt\n"
    assert not stray.exists()


def test_missing_blob_without_registry_fails(tmp_path: Path) -> None:
    args = {"root": str(tmp_path), "digest": MODEL, "name": "tiny",
            "files": [{"path": "one", "digest": sha(b"one"), "size": 3}]}  # fmt: skip

    result = run_module(model_cache, args)

    assert result["failed"] is True
    assert "no registry_url" in result["msg"]


def test_fails_before_fetching_when_the_disk_is_too_small(tmp_path: Path) -> None:
    args = {"root": str(tmp_path / "models"), "digest": MODEL, "name": "big",
            "files": [{"path": "big", "digest": sha(b"x"), "size": 5000}]}  # fmt: skip

    with mock.patch.object(ModelCache, "free_bytes", return_value=1000):
        result = run_module(model_cache, args)

    assert result["failed"] is True
    assert result["msg"].startswith("the model needs 5000 bytes, 1000 free")
    assert not (tmp_path / "models").exists()


def test_absent_keeps_blobs_other_models_use(tmp_path: Path) -> None:
    seed_blobs(tmp_path, b"one", b"shared")
    other = "sha256:" + "cd" * 32
    mine = [{"path": "one", "digest": sha(b"one"), "size": 3},
            {"path": "shared", "digest": sha(b"shared"), "size": 6}]  # fmt: skip
    theirs = [{"path": "shared", "digest": sha(b"shared"), "size": 6}]
    run_module(model_cache, {"root": str(tmp_path), "digest": MODEL, "name": "m", "files": mine})
    run_module(model_cache, {"root": str(tmp_path), "digest": other, "name": "o", "files": theirs})

    check = run_module(model_cache, {"root": str(tmp_path), "digest": MODEL, "state": "absent"},
                       check_mode=True)  # fmt: skip
    gone = run_module(model_cache, {"root": str(tmp_path), "digest": MODEL, "state": "absent"})
    again = run_module(model_cache, {"root": str(tmp_path), "digest": MODEL, "state": "absent"})

    assert check["changed"] is True and gone["changed"] is True and again["changed"] is False
    cache = ModelCache(str(tmp_path))
    assert not Path(cache.blob(sha(b"one"))).exists()
    assert Path(cache.blob(sha(b"shared"))).exists()
    assert Path(cache.model_dir(other), "shared").exists()
