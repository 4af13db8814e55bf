#!/usr/bin/env bash
# Build spectr.core's Galaxy tarball into dist/ (`make collection`) and check it as an operator
# would use it: dist/spectr-core-<galaxy.yml version>.tar.gz holds no test output, cache or
# bytecode, installs with `ansible-galaxy collection install --offline` (its dependencies,
# community.docker and ansible.posix, come with the `ansible` package), and ansible-doc reads
# spectr.core.host_facts from that installation, not from this checkout.
# The tarball is built from the collection folder itself, as the README says: galaxy.yml's
# build_ignore is what keeps a developer's leftovers out of it.
set -euo pipefail
source "$(dirname "$0")/lib/collection.sh"
version=$(collection_version)
dist="$root/dist"
tarball="$dist/spectr-core-$version.tar.gz"

work=$(mktemp -d "${TMPDIR:-/tmp}/spectr-collection.XXXXXX")
trap 'rm -rf "$work"' EXIT
export ANSIBLE_HOME="$work/ansible-home" ANSIBLE_NOCOLOR=1

# Built aside and moved into dist/ once checked: a tarball that fails a check is not left there.
"$venv_bin/ansible-galaxy" collection build "$collection" --output-path "$work/build" >/dev/null
built="$work/build/$(basename "$tarball")"

# Leftovers of tests and tools that must never ship (tests/collection/test_collection_tarball.py
# checks build_ignore against each of them).
unwanted='(^|/)(__pycache__|\.pytest_cache|\.mypy_cache|\.ruff_cache|\.ansible|\.tox)(/|$)|\.py[co]$|^tests/output(/|$)|\.tar\.gz$|^changelogs/\.plugin-cache\.yaml$'
if tar -tzf "$built" | grep -E "$unwanted"; then
  echo "collection-build: FAILED: the tarball holds the files above; see galaxy.yml's build_ignore" >&2
  exit 1
fi

cd "$work"  # not inside the checkout, so ansible cannot find the collection there
ANSIBLE_COLLECTIONS_PATH="$work/collections" "$venv_bin/ansible-galaxy" collection install --offline \
  -p "$work/collections" "$built" >/dev/null
doc=$(ANSIBLE_COLLECTIONS_PATH="$work/collections" "$venv_bin/ansible-doc" -t module \
  spectr.core.host_facts)
installed="$work/collections/ansible_collections/spectr/core/plugins/modules/host_facts.py"
if ! grep -qF "spectr.core.host_facts ($installed)" <<<"$doc"; then
  echo "collection-build: FAILED: ansible-doc did not read host_facts from the installed tarball:" >&2
  head -5 <<<"$doc" >&2
  exit 1
fi
mkdir -p "$dist"
mv -f "$built" "$tarball"
echo "collection-build: $tarball ($(du -k "$tarball" | cut -f1) KiB, $(tar -tzf "$tarball" | wc -l) members): installs offline, ansible-doc reads host_facts from it"
