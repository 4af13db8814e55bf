"""spectr.core.distribute_model (module model_cache) against a real registry and SSH test host.

A docker-registry (TLS, htpasswd) runs on this machine's docker0 address, which the plain test
host reaches; models are pushed to it as OCI artifacts in the portal's format
(HELPERS-CONTRACT.md). The real ansible-playbook runs the playbook against the host over SSH.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.tests.registry_process import RegistryProcess, start_registry
from agent.tests.registry_seed import OCI_MANIFEST_TYPE, push_model
from tests.collection.ansible_runs import AnsibleEnvironment, PlaybookRun
from tests.collection.tls import TestCA
from tests.support.testhosts import TestHost, cleanup_key_pair, free_local_port, start_test_host

pytestmark = [pytest.mark.slow, pytest.mark.docker]

ROOT = "/var/lib/spectr/models"
TASK = "Bring the model to the wanted state in the host's cache"
PLAYBOOK = "spectr.core.distribute_model"
USER, PASSWORD = "spectr", "spectr-model-registry-pw"
SHARED = b'{"tokenizer": "shared by both models"}'
TINY = {
    "config.json": b'{"architecture": "tiny"}',
    "weights/model.safetensors": os.urandom(3 * 1024 * 1024 + 17),
    "tokenizer/tokenizer.json": SHARED,
    "LICENSE": b"Apache-2.0\n",
    "docs/LICENSE": b"Apache-2.0\n",  # same blob as LICENSE: two links to one file
}
OTHER = {"config.json": b'{"architecture": "other"}', "tokenizer.json": SHARED}


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Model:
    repository: str
    tag: str
    digest: str
    files: dict[str, bytes]

    @property
    def folder(self) -> str:
        return f"{ROOT}/sha256-{self.digest.removeprefix('sha256:')}"

    @property
    def manifest_json(self) -> str:
        return f"{ROOT}/manifests/sha256-{self.digest.removeprefix('sha256:')}.json"


def bridge_gateway() -> str:
    """This machine's address on Docker's default bridge (docker0): what test hosts reach."""
    out = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "docker0"], capture_output=True, text=True, check=True
    ).stdout
    return out.split(" inet ", 1)[1].split("/", 1)[0]


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


@pytest.fixture(scope="module")
def registry(ca: TestCA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    gateway = bridge_gateway()
    cert = ca.issue(extra_ips=(gateway,))
    process = start_registry(tmp_path_factory.mktemp("model-registry"), cert.cert_pem,
                             cert.key_pem, ca.cert_pem, USER, PASSWORD, listen=gateway)  # fmt: skip
    yield process
    process.stop()


@pytest.fixture(scope="module")
def models(registry: RegistryProcess) -> dict[str, Model]:
    pushed = {}
    with registry.http() as client:
        for name, files in (("tiny", TINY), ("other", OTHER)):
            repository = f"models/{name}"
            digest = push_model(client, repository, "r1", files)
            pushed[name] = Model(repository, "r1", digest, files)
    return pushed


@pytest.fixture(scope="module")
def host() -> Iterator[TestHost]:
    test_host = start_test_host("model-cache")
    yield test_host
    test_host.remove()
    cleanup_key_pair(test_host.key_pair)


@pytest.fixture(scope="module")
def inventory(ansible_env: AnsibleEnvironment, host: TestHost) -> Path:
    return ansible_env.write_inventory({"testhost": host.inventory_vars()}, "model-cache")


@pytest.fixture
def distribute(
    ansible_env: AnsibleEnvironment, inventory: Path, registry: RegistryProcess, ca: TestCA
) -> Any:
    """Run the playbook for a model; return the run."""

    def run(model: Model, state: str = "present", **options: Any) -> PlaybookRun:
        extra_vars = {
            "model_registry_url": registry.url,
            "model_repository": model.repository,
            "model_reference": model.tag,
            "model_registry_username": USER,
            "model_registry_password": PASSWORD,
            "model_registry_ca_pem": ca.cert_pem,
            "model_state": state,
        }
        return ansible_env.run_playbook(PLAYBOOK, inventory, extra_vars, **options)

    return run


def tree(host: TestHost) -> str:
    """Every path under the cache root with inode, link count, size and mtime."""
    return host.exec(
        "sh", "-c", f"find {ROOT} -printf '%p %i %n %s %T@\\n' 2>/dev/null | sort; true"
    )


def host_sha(host: TestHost, path: str) -> str:
    return "sha256:" + host.exec("sha256sum", path).split()[0]


def blob_path(data: bytes) -> str:
    return f"{ROOT}/blobs/sha256/{sha(data).removeprefix('sha256:')}"


def assert_model_complete(host: TestHost, model: Model) -> None:
    for path, data in model.files.items():
        assert host_sha(host, f"{model.folder}/{path}") == sha(data), path
        inode_file = host.exec("stat", "-c", "%i", f"{model.folder}/{path}").strip()
        inode_blob = host.exec("stat", "-c", "%i", blob_path(data)).strip()
        assert inode_file == inode_blob, f"{path} is not a hard link to its blob"
    recorded = json.loads(host.exec("cat", model.manifest_json))
    assert recorded["digest"] == model.digest
    assert {(f["path"], f["digest"], f["size"]) for f in recorded["files"]} == {
        (path, sha(data), len(data)) for path, data in model.files.items()
    }


def test_registry_accepts_the_model_artifact(
    registry: RegistryProcess, models: dict[str, Model]
) -> None:
    with registry.http() as client:
        answer = client.get(
            f"/v2/models/tiny/manifests/{models['tiny'].digest}",
            headers={"Accept": OCI_MANIFEST_TYPE},
        )
    assert answer.status_code == 200
    assert answer.headers["content-type"] == OCI_MANIFEST_TYPE
    assert answer.json()["artifactType"] == "application/vnd.spectr.model.v1"
    assert sha(answer.content) == models["tiny"].digest


def test_first_run_puts_the_model_then_nothing_changes(
    distribute: Any, host: TestHost, models: dict[str, Model]
) -> None:
    tiny = models["tiny"]

    first = distribute(tiny, diff=True).task(TASK)
    second = distribute(tiny).task(TASK)

    assert first["changed"] is True, first
    assert first["path"] == tiny.folder
    assert first["bytes_fetched"] == sum(len(data) for data in {*tiny.files.values()})
    assert first["size_bytes"] == sum(len(data) for data in tiny.files.values())
    assert {f["path"]: f["status"] for f in first["files"]} == dict.fromkeys(tiny.files, "fetched")
    assert first["diff"]["before"] == ""
    assert first["diff"]["after"] == "".join(f"{path}\n" for path in sorted(tiny.files))
    assert_model_complete(host, tiny)
    assert host.exec("stat", "-c", "%h", blob_path(b"Apache-2.0\n")).strip() == "3"
    assert host.exec("stat", "-c", "%a", blob_path(b"Apache-2.0\n")).strip() == "644"
    assert second["changed"] is False, second
    assert second["bytes_fetched"] == 0
    assert {f["status"] for f in second["files"]} == {"present"}


def test_corrupted_blob_is_fetched_again(
    distribute: Any, host: TestHost, models: dict[str, Model]
) -> None:
    tiny = models["tiny"]
    distribute(tiny)
    weights = TINY["weights/model.safetensors"]
    # Same size, other bytes: only re-hashing (verify, the default) finds it.
    host.exec("sh", "-c", f"printf XXXX | dd of={blob_path(weights)} bs=1 seek=1000 conv=notrunc")
    assert host_sha(host, f"{tiny.folder}/weights/model.safetensors") != sha(weights)

    repaired = distribute(tiny).task(TASK)
    again = distribute(tiny).task(TASK)

    assert repaired["changed"] is True
    statuses = {f["path"]: f["status"] for f in repaired["files"]}
    assert statuses["weights/model.safetensors"] == "repaired"
    assert statuses["config.json"] == "present"
    assert repaired["bytes_fetched"] == len(weights)
    assert_model_complete(host, tiny)
    assert again["changed"] is False


def test_partial_download_is_resumed_with_a_range_request(
    distribute: Any, host: TestHost, models: dict[str, Model]
) -> None:
    tiny = models["tiny"]
    distribute(tiny)
    weights = TINY["weights/model.safetensors"]
    kept = 1024 * 1024
    host.exec(
        "rm", tiny.manifest_json, f"{tiny.folder}/weights/model.safetensors", blob_path(weights)
    )
    host.exec("sh", "-c", f"cat > {blob_path(weights)}.partial", stdin=weights[:kept])

    resumed = distribute(tiny).task(TASK)

    assert resumed["changed"] is True
    assert resumed["bytes_fetched"] == len(weights) - kept
    assert {f["path"]: f["status"] for f in resumed["files"]}[
        "weights/model.safetensors"
    ] == "fetched"
    assert_model_complete(host, tiny)
    assert "partial" not in tree(host)


def test_check_mode_on_a_new_model_changes_nothing_on_the_host(
    distribute: Any, host: TestHost, models: dict[str, Model]
) -> None:
    distribute(models["tiny"])  # shares tokenizer.json with `other`
    before = tree(host)

    run = distribute(models["other"], check=True, diff=True).task(TASK)

    assert run["changed"] is True
    assert run["bytes_fetched"] == 0
    statuses = {f["path"]: f["status"] for f in run["files"]}
    assert statuses == {"config.json": "fetched", "tokenizer.json": "linked"}
    assert run["diff"]["after"] == "config.json\ntokenizer.json\n"
    assert tree(host) == before


def test_absent_removes_the_model_and_its_unshared_blobs_twice(
    distribute: Any, host: TestHost, models: dict[str, Model]
) -> None:
    tiny, other = models["tiny"], models["other"]
    distribute(tiny)
    distribute(other)

    first = distribute(tiny, "absent", diff=True).task(TASK)
    second = distribute(tiny, "absent").task(TASK)

    assert (first["changed"], second["changed"]) == (True, False)
    assert first["diff"]["after"] == ""
    listing = tree(host)
    assert tiny.folder not in listing and tiny.manifest_json not in listing
    assert blob_path(TINY["weights/model.safetensors"]) not in listing
    assert blob_path(b"Apache-2.0\n") not in listing
    assert blob_path(SHARED) in listing  # `other` still uses it
    assert_model_complete(host, other)

    distribute(other, "absent")
    assert host.exec("ls", "-A", f"{ROOT}/blobs/sha256", f"{ROOT}/manifests").split() == [
        f"{ROOT}/blobs/sha256:",
        f"{ROOT}/manifests:",
    ]


def test_missing_model_repository_fails_before_touching_any_host(
    ansible_env: AnsibleEnvironment, host: TestHost, registry: RegistryProcess
) -> None:
    # A second host nobody listens for: any connection attempt would make it unreachable.
    nowhere = {**host.inventory_vars(), "ansible_port": free_local_port()}
    inventory = ansible_env.write_inventory(
        {"testhost": host.inventory_vars(), "nowhere": nowhere}, "model-two-hosts"
    )
    extra_vars = {"model_registry_url": registry.url, "model_reference": "r1",
                  "model_root": "/var/lib/spectr/never"}  # fmt: skip

    run = ansible_env.run_playbook(PLAYBOOK, inventory, extra_vars, expect_failure=True)

    for name in ("testhost", "nowhere"):
        result = run.task("Check that model_repository is set", name)
        assert result["failed"] is True and not result.get("unreachable")
        assert "model_repository is required" in result["msg"]
        with pytest.raises(KeyError):
            run.task(TASK, name)
    assert run.stats["nowhere"]["unreachable"] == 0
    assert (
        host.exec("sh", "-c", "test -e /var/lib/spectr/never && echo yes || echo no").strip()
        == "no"
    )
