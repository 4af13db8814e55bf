"""The portal fixtures for the entry point tests, and the recording engine package installed."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.portal.conftest import (  # noqa: F401 - fixtures shared with the portal's tests
    api_as,
    app,
    client,
    create_user,
    sqlite_template,
)

PACKAGE = Path(__file__).parent / "packages" / "spectr_recording_engine.py"
ENTRY_POINTS = """\
[spectr.engines]
recording = spectr_recording_engine:engine_for_host

[spectr.provisioners]
recording = spectr_recording_engine:RecordingProvisioner
"""


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The package as pip leaves it in site-packages: the module and its dist-info."""
    site = tmp_path / "site-packages"
    site.mkdir()
    shutil.copy(PACKAGE, site)
    dist_info = site / "spectr_recording_engine-0.1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: spectr-recording-engine\nVersion: 0.1.0\n"
    )
    (dist_info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(site))
    import spectr_recording_engine

    spectr_recording_engine.CALLS.clear()
    yield spectr_recording_engine
    sys.modules.pop("spectr_recording_engine", None)
