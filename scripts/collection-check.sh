#!/usr/bin/env bash
# Lint the spectr.core collection (production profile) and check that it builds.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
collection="$root/ansible_collections/spectr/core"
venv_collections=$("$root/.venv/bin/python" -c 'import ansible_collections, os; print(os.path.dirname(ansible_collections.__path__[0]))')
export ANSIBLE_COLLECTIONS_PATH="$root:$venv_collections"
export ANSIBLE_HOME="${ANSIBLE_HOME:-$(mktemp -d)}"

cd "$collection"
"$root/.venv/bin/ansible-lint" --profile production --offline
out=$(mktemp -d)
"$root/.venv/bin/ansible-galaxy" collection build --output-path "$out" --force >/dev/null
echo "collection-check: ansible-lint clean; built $(ls "$out")"
rm -rf "$out"
