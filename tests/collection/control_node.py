"""A bare control node: a fresh Python environment with only the packages a README lists.

The packages are not downloaded: each one, and every package it requires, is linked from the
Python environment running the tests (where `pip install -e .[dev]` put them), so a README
that forgets a package fails here as it would for ops with a clean virtual environment.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

BASE_PYTHON = Path(getattr(sys, "_base_executable", sys.executable))


class MissingPackage(AssertionError):
    """A listed package, or one it requires, is not installed where the tests run."""


def pip_install_requirements(command: str) -> list[Requirement]:
    """Return the requirements of a `pip install ...` (or `python3 -m pip install ...`) line."""
    words = shlex.split(command, comments=True)
    if "install" not in words:
        raise ValueError(f"not a pip install command: {command!r}")
    arguments = words[words.index("install") + 1 :]
    return [Requirement(word) for word in arguments if not word.startswith("-")]


def _closure(requirements: list[Requirement]) -> dict[str, metadata.Distribution]:
    """Return every installed distribution the requirements need, by canonical name."""
    found: dict[str, metadata.Distribution] = {}
    pending = [(requirement, "") for requirement in requirements]
    while pending:
        requirement, extra = pending.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        if name in found:
            continue
        try:
            distribution = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError as error:
            raise MissingPackage(f"{requirement} is not installed here") from error
        if not requirement.specifier.contains(distribution.version, prereleases=True):
            raise MissingPackage(f"{requirement}: {distribution.version} is installed here")
        found[name] = distribution
        for line in distribution.requires or []:
            nested = Requirement(line)
            for wanted_extra in requirement.extras or {""}:
                pending.append((nested, wanted_extra))
    return found


def _top_level_entries(distribution: metadata.Distribution) -> set[str]:
    entries = set()
    for file in distribution.files or []:
        parts = Path(str(file)).parts
        if parts and parts[0] != ".." and not parts[0].endswith(".pth"):
            entries.add(parts[0])
    return entries


@dataclass(frozen=True)
class ControlNode:
    """A virtual environment holding only the listed packages and what they require."""

    root: Path
    packages: tuple[str, ...]

    @property
    def bin(self) -> Path:
        """Folder of python3 and the packages' commands (ansible-playbook, ...)."""
        return self.root / "bin"

    def environment(self, home: Path, **extra: str) -> dict[str, str]:
        """Environment of a shell on this control node: its commands first, then the system's."""
        system_path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        keep = {key: os.environ[key] for key in ("LANG", "TERM", "TMPDIR") if key in os.environ}
        return {
            **keep,
            "HOME": str(home),
            "USER": os.environ.get("USER", "root"),
            "PATH": f"{self.bin}:{system_path}",
            "VIRTUAL_ENV": str(self.root),
            **extra,
        }


def make_control_node(root: Path, requirements: list[Requirement]) -> ControlNode:
    """Create a virtual environment at `root` with the requirements linked in, no index used."""
    subprocess.run(
        [str(BASE_PYTHON), "-m", "venv", "--without-pip", str(root)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    site = Path(
        subprocess.run(
            [
                str(root / "bin" / "python"),
                "-c",
                "import sysconfig; print(sysconfig.get_path('purelib'))",
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.strip()
    )
    distributions = _closure(requirements)
    for distribution in distributions.values():
        origin = Path(str(distribution.locate_file("")))
        for entry in _top_level_entries(distribution):
            link = site / entry
            if not link.exists():
                link.symlink_to(origin / entry)
        for entry_point in distribution.entry_points.select(group="console_scripts"):
            _write_script(root, entry_point)
    return ControlNode(root, tuple(sorted(distributions)))


def _write_script(root: Path, entry_point: metadata.EntryPoint) -> None:
    module, _, attribute = entry_point.value.partition(":")
    script = root / "bin" / entry_point.name
    script.write_text(
        f"#!{root / 'bin' / 'python'}\n"
        "import sys\n"
        f"from {module} import {attribute.split('.')[0]}\n"
        f"sys.exit({attribute}())\n"
    )
    script.chmod(0o755)
