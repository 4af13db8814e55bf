#!/usr/bin/env bash
# The test part of `make test`: the whole pytest suite and every Molecule scenario, side by side.
# Both mostly wait (on containers, SSH, Ansible, sleeps) rather than compute, so running them at
# once keeps CI inside its budget on 2 cores; each has been run under heavier load than the other
# adds. Molecule's output goes to a log, printed after pytest's so the two never interleave.
# Exit status: non-zero when either failed.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
log=$(mktemp /tmp/spectr-molecule.XXXXXX.log)

# Both sides start test hosts from these images: build them once, before either starts.
tests/images/build-host.sh plain >/dev/null || exit 1
tests/images/build-host.sh dind >/dev/null || exit 1

tests/collection/run-molecule.sh >"$log" 2>&1 &
molecule_pid=$!
trap 'kill "$molecule_pid" 2>/dev/null' INT TERM

.venv/bin/pytest -q -p no:cacheprovider --durations=20 "$@"
pytest_status=$?

wait "$molecule_pid"
molecule_status=$?
echo "=== Molecule (log: $log)"
grep -E '^=== |^molecule: ' "$log"
if [ "$molecule_status" -ne 0 ]; then
  tail -150 "$log"
fi
echo "pytest exit $pytest_status; molecule exit $molecule_status"
[ "$pytest_status" -eq 0 ] && [ "$molecule_status" -eq 0 ]
