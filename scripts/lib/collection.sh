# Shared by the scripts that run ansible-test or build spectr.core (sourced, not run).
#   root          the checkout;  collection  ansible_collections/spectr/core in it
#   venv_bin      bin/ of the checkout's virtual environment (.venv, as `make install-dev` makes it)
#   copy_collection DEST   put the collection's files at DEST/ansible_collections/spectr/core:
#                 those git tracks plus untracked ones it does not ignore, so that test output,
#                 caches and __pycache__ of the checkout never go in, and nothing comes back.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
collection="$root/ansible_collections/spectr/core"
venv_bin="$root/.venv/bin"

copy_collection() {
  local copy="$1/ansible_collections/spectr/core"
  mkdir -p "$copy"
  (cd "$collection" && git ls-files -z --cached --others --exclude-standard -- . |
    while IFS= read -r -d '' file; do if [[ -e "$file" ]]; then printf '%s\0' "$file"; fi; done |
    tar --null -T - -cf -) | tar -xf - -C "$copy"
}

# The version in galaxy.yml, the one place it is kept.
collection_version() {
  "$venv_bin/python" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["version"])' \
    "$collection/galaxy.yml"
}
