#!/usr/bin/env python
"""Build the Spectr agent as one runnable file (.pyz) for the spectr.core.agent role.

The agent needs only the standard library and pure-Python packages, so a zipapp runs on any
host with Python 3.9+ and no internet. Dependencies are copied from the Python environment that
runs this script (where the `spectr` project is installed), so the build works offline too:

    .venv/bin/python ansible_collections/spectr/core/scripts/build_agent_zipapp.py \\
        --source . --output dist/spectr-agent.pyz
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
import zipapp
from pathlib import Path

DEFAULT_DEPENDENCIES = ("prometheus_client",)
FIXED_MTIME = 315532800  # 1980-01-01, the earliest time a zip file can hold
MAIN = "import sys\nfrom agent.__main__ import main\nsys.exit(main())\n"


def package_dir(name: str) -> Path:
    """Return the folder of an installed top-level package."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"build_agent_zipapp: package {name!r} is not installed here")
    return Path(next(iter(spec.submodule_search_locations)))


# agent/ is also the spectr-agent distribution's folder: its tests, packaging files and build
# leftovers stay out of the zipapp, which holds the package alone.
NOT_PACKAGED = ("__pycache__", "*.pyc", "tests", "pyproject.toml", "*.md", "build", "*.egg-info")


def copy_package(source: Path, target: Path) -> None:
    """Copy a pure-Python package, refusing compiled extensions (they cannot load from a zip)."""
    compiled = [path.name for path in source.rglob("*") if path.suffix in (".so", ".pyd")]
    if compiled:
        raise SystemExit(f"build_agent_zipapp: {source.name} is not pure Python: {compiled[:3]}")
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*NOT_PACKAGED))


def build(source: Path, output: Path, dependencies: list[str]) -> None:
    """Assemble the agent package and its dependencies, then zip them with a __main__."""
    agent_dir = source / "agent"
    if not (agent_dir / "__main__.py").is_file():
        raise SystemExit(f"build_agent_zipapp: {agent_dir} has no __main__.py")
    with tempfile.TemporaryDirectory(prefix="spectr-agent-build-") as staging:
        root = Path(staging)
        copy_package(agent_dir, root / "agent")
        for name in dependencies:
            copy_package(package_dir(name), root / name)
        (root / "__main__.py").write_text(MAIN)
        # A fixed timestamp keeps the archive identical when nothing changed, so the role's
        # copy stays idempotent across rebuilds.
        for path in root.rglob("*"):
            os.utime(path, (FIXED_MTIME, FIXED_MTIME))
        output.parent.mkdir(parents=True, exist_ok=True)
        zipapp.create_archive(root, output, interpreter="/usr/bin/env python3", compressed=True)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and build the zipapp."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("."), help="checkout holding agent/")
    parser.add_argument("--output", type=Path, default=Path("dist/spectr-agent.pyz"))
    parser.add_argument("--dependency", action="append", dest="dependencies",
                        help="pure-Python package to bundle (repeatable)")  # fmt: skip
    args = parser.parse_args(argv)
    build(args.source.resolve(), args.output, args.dependencies or list(DEFAULT_DEPENDENCIES))
    print(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
