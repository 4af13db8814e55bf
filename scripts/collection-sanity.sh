#!/usr/bin/env bash
# Run `ansible-test sanity` for the spectr.core collection, offline except for PyPI.
#
# ansible-test runs from a temporary copy of the collection (the files git tracks plus untracked
# ones it does not ignore), so its tests/output and __pycache__ never land in the repository and
# two runs at once do not share an output folder. It reuses the virtual environments it keeps in
# ~/.ansible/test/venv (one per sanity test), so only the first run installs from PyPI.
#
# Tests left out, and why:
#   shellcheck  only when `shellcheck` is on PATH (not installed here; the collection has no
#               shell scripts for it to check anyway)
#   pslint      only when `pwsh` is on PATH (no PowerShell here, and no .ps1/.psm1 files)
#   other Pythons  compile and import run for the venv's Python only (3.11 here); the versions a
#               target host may have (3.8-3.14 for ansible-core 2.19) are not installed
# pylint runs: ansible-test installs its pinned pylint from PyPI into a venv of its own.
# Extra arguments go to ansible-test, e.g. `--test validate-modules` or `-v`.
set -euo pipefail
source "$(dirname "$0")/lib/collection.sh"
python_version=$("$venv_bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

# ansible-test bootstraps pip in each virtual environment it creates with pypa's get-pip.py,
# downloaded from https://ci-files.testing.ansible.com/ansible-test/get-pip-<version>.py, a host
# this machine cannot reach; it reads the script from this cache path first when it is there.
# The stand-in gives the new environment a pip with ensurepip and then installs the pip version
# ansible-test asks for from PyPI, which is reachable.
pip_version=$("$venv_bin/python" -c 'import sys, types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version=sys.argv[1]))["pip"])' "$python_version")
get_pip="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
if [[ ! -s "$get_pip" ]]; then
  mkdir -p "$(dirname "$get_pip")"
  cat >"$get_pip.tmp" <<'EOF'
"""Stand-in for pypa's get-pip.py (written by scripts/collection-sanity.sh): ansible-test downloads
get-pip.py from a host not reachable here. ensurepip gives the venv a pip, then pip installs the
packages asked for (pip==<version>) from PyPI; --no-setuptools/--no-wheel are honoured."""
import importlib.util
import subprocess
import sys

args = sys.argv[1:]
pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
subprocess.check_call(pip + ["install"] + [arg for arg in args if not arg.startswith("-")])
importlib.invalidate_caches()
unwanted = [name for name in ("setuptools", "wheel")
            if "--no-" + name in args and importlib.util.find_spec(name) is not None]
if unwanted:
    subprocess.check_call(pip + ["uninstall", "--yes"] + unwanted)
EOF
  mv "$get_pip.tmp" "$get_pip"
  echo "collection-sanity: wrote the get-pip stand-in $get_pip"
fi

skips=()
command -v shellcheck >/dev/null || skips+=(--skip-test shellcheck)
command -v pwsh >/dev/null || skips+=(--skip-test pslint)

work=$(mktemp -d "${TMPDIR:-/tmp}/spectr-sanity.XXXXXX")
trap 'rm -rf "$work"' EXIT
copy_collection "$work"

export ANSIBLE_HOME="$work/ansible-home"
cd "$work/ansible_collections/spectr/core"
status=0
PATH="$venv_bin:$PATH" "$venv_bin/ansible-test" sanity --local --python "$python_version" \
  --color no "${skips[@]}" "$@" || status=$?
if [[ $status -ne 0 ]]; then
  echo "collection-sanity: FAILED (ansible-test exit $status)" >&2
  exit "$status"
fi
echo "collection-sanity: ansible-test sanity passed (python $python_version; skipped: ${skips[*]:-none})"
