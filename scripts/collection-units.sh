#!/usr/bin/env bash
# Run `ansible-test units` for the spectr.core collection (tests/unit: the module utils), offline
# except for PyPI, the way scripts/collection-sanity.sh runs sanity.
#
# ansible-test runs from a temporary copy of the collection (lib/collection.sh), so its
# tests/output and __pycache__ never land in the repository and two runs do not share them.
# The tests run under a Python of their own, a virtual environment with what ansible-test asks
# for unit tests (pytest, pytest-xdist, pytest-mock, mock, pyyaml: its requirements/units.txt
# under its constraints.txt), kept in ~/.ansible/test/venv/spectr-units/<python>/<hash of those
# two files>: only the first run (or a new ansible-core) installs from PyPI. `ansible-test units
# --venv` would rebuild its environment inside the copy, from PyPI, on every run.
# Extra arguments go to ansible-test, e.g. `-v` or a test file.
set -euo pipefail
source "$(dirname "$0")/lib/collection.sh"
python_version=$("$venv_bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
requirements=$("$venv_bin/python" -c 'import ansible_test, os
print(os.path.join(os.path.dirname(ansible_test.__file__), "_data", "requirements"))')
hash=$(cat "$requirements/units.txt" "$requirements/constraints.txt" | sha256sum | cut -c1-12)
units_venv="$HOME/.ansible/test/venv/spectr-units/$python_version/$hash"

mkdir -p "$(dirname "$units_venv")"
(
  flock 9  # another run may be making the same environment
  if [[ ! -e "$units_venv/ready" ]]; then
    echo "collection-units: making $units_venv (from PyPI)"
    rm -rf "$units_venv"
    "$venv_bin/python" -m venv "$units_venv"
    "$units_venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      -r "$requirements/units.txt" -c "$requirements/constraints.txt"
    touch "$units_venv/ready"
  fi
) 9>"$units_venv.lock"

work=$(mktemp -d "${TMPDIR:-/tmp}/spectr-units.XXXXXX")
trap 'rm -rf "$work"' EXIT
copy_collection "$work"

export ANSIBLE_HOME="$work/ansible-home"
cd "$work/ansible_collections/spectr/core"
status=0
PATH="$venv_bin:$PATH" "$venv_bin/ansible-test" units --python "$python_version" \
  --python-interpreter "$units_venv/bin/python" --color no "$@" || status=$?
if [[ $status -ne 0 ]]; then
  echo "collection-units: FAILED (ansible-test exit $status)" >&2
  exit "$status"
fi
echo "collection-units: ansible-test units passed (python $python_version)"
