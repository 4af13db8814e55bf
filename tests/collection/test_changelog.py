"""spectr.core's changelog: antsibull-changelog accepts it, and galaxy.yml's version is released."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from packaging.version import Version

from tests.collection.galaxy import COLLECTION, collection_version

ANTSIBULL_CHANGELOG = Path(sys.executable).parent / "antsibull-changelog"


def releases() -> dict[str, dict]:
    return yaml.safe_load((COLLECTION / "changelogs" / "changelog.yaml").read_text())["releases"]


def test_antsibull_changelog_lint_finds_nothing() -> None:
    # Fragments and changelog.yaml alike: a malformed fragment would stop the next release.
    lint = subprocess.run([str(ANTSIBULL_CHANGELOG), "lint"], cwd=COLLECTION,
                          capture_output=True, text=True, timeout=60)  # fmt: skip

    assert (lint.returncode, lint.stdout + lint.stderr) == (0, "")


def test_the_galaxy_version_is_the_newest_release_with_its_changes() -> None:
    version = collection_version()

    release = releases().get(version)

    assert release is not None, f"galaxy.yml says {version}: run antsibull-changelog release"
    assert max(releases(), key=Version) == version
    assert release["release_date"] and release["changes"]["release_summary"]


def test_the_rendered_changelog_has_the_galaxy_version() -> None:
    rendered = (COLLECTION / "CHANGELOG.rst").read_text()

    assert f"\nv{collection_version()}\n" in rendered, "run antsibull-changelog generate"
