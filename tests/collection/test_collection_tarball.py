"""spectr.core's Galaxy tarball holds the collection and none of a developer's leftovers."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.collection.galaxy import COLLECTION, collection_version, tarball_name

# Left behind by tests and tools in a working checkout (relative to the collection's root).
LEFTOVERS = [
    "plugins/module_utils/__pycache__/_registry.cpython-311.pyc",
    "tests/unit/plugins/module_utils/__pycache__/conftest.cpython-311-pytest-9.2.0.pyc",
    "plugins/modules/host_facts.pyc",
    "plugins/modules/host_facts.pyo",
    "tests/output/junit/python3.11-module_utils-units.xml",
    "tests/output/.tmp/sanity/x",
    ".ansible/collections/ansible_collections/x",
    "roles/app/.ansible/roles/x",
    ".pytest_cache/v/cache/lastfailed",
    "tests/unit/.pytest_cache/v/cache/nodeids",
    ".mypy_cache/3.11/x.json",
    ".ruff_cache/0.17.6/x",
    "changelogs/.plugin-cache.yaml",
    "spectr-core-0.0.1.tar.gz",
]
# A member that is, or is inside, one of those (the same rule as scripts/collection-build.sh).
UNWANTED = re.compile(
    r"(^|/)(__pycache__|\.pytest_cache|\.mypy_cache|\.ruff_cache|\.ansible|\.tox)(/|$)"
    r"|\.py[co]$|^tests/output(/|$)|\.tar\.gz$|^changelogs/\.plugin-cache\.yaml$"
)
MAX_BYTES = 200 * 1024  # about 90 KiB today; a jump means something large slipped in


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the collection from a copy of this checkout with leftovers added to it."""
    work = tmp_path_factory.mktemp("tarball")
    copy = work / "ansible_collections" / "spectr" / "core"
    shutil.copytree(COLLECTION, copy)
    for leftover in LEFTOVERS:
        (copy / leftover).parent.mkdir(parents=True, exist_ok=True)
        (copy / leftover).write_bytes(b"leftover")
    galaxy = Path(sys.executable).parent / "ansible-galaxy"
    subprocess.run([str(galaxy), "collection", "build", str(copy), "--output-path", str(work)],
                   check=True, capture_output=True, timeout=120,
                   env=dict(os.environ, ANSIBLE_HOME=str(work / "ansible-home")))  # fmt: skip
    return work / tarball_name()


def test_no_leftover_goes_into_the_tarball(tarball: Path) -> None:
    with tarfile.open(tarball) as archive:
        names = archive.getnames()

    assert [name for name in names if UNWANTED.search(name)] == []
    assert all(UNWANTED.search(leftover) for leftover in LEFTOVERS)  # the rule sees each one


def test_the_tarball_stays_small(tarball: Path) -> None:
    assert tarball.stat().st_size < MAX_BYTES


def test_the_tarball_holds_the_collection_at_the_galaxy_version(tarball: Path) -> None:
    with tarfile.open(tarball) as archive:
        names = set(archive.getnames())
        manifest = json.load(archive.extractfile("MANIFEST.json"))  # type: ignore[arg-type]

    assert manifest["collection_info"]["version"] == collection_version()
    assert {
        "plugins/modules/host_facts.py",
        "plugins/module_utils/_registry.py",
        "roles/app/tasks/main.yml",
        "playbooks/deploy_app.yml",
        "meta/runtime.yml",
        "README.md",
        "CHANGELOG.rst",
        "changelogs/changelog.yaml",
        "tests/unit/plugins/module_utils/test__registry.py",
        "FILES.json",
    } <= names
