#!/usr/bin/env bash
# The test part of `make test`: the whole pytest suite, every Molecule scenario and the
# collection's own checks, in three streams side by side:
#   1. pytest, every folder but the two below
#   2. pytest tests/collection and tests/deploy (Ansible runs, SSH hosts, image builds: long, and
#      sharing no database, queue or Redis prefix with the rest), then
#      scripts/collection-test.sh: ansible-test sanity and units of spectr.core and its Galaxy
#      tarball, left at dist/spectr-core-<version>.tar.gz (1.5-2 min, 5-7 min on a fresh
#      machine), then pytest agent/tests and proxy/tests: the two components' own suites (their
#      own processes, free ports and Redis prefixes; ~590 tests, 6-8 minutes that stream 1, the
#      longest by far, no longer carries).
#   3. tests/collection/run-molecule.sh, then pytest tests/browser (Chromium against its own
#      `spectr run` on SQLite: no database or Redis shared with stream 1; about 10 minutes that
#      made stream 1 the longest by far when it ran them)
# All three mostly wait (on containers, SSH, Ansible, sleeps), so side by side they keep CI inside
# its budget on 2 cores; the suite has passed under heavier load than this. Streams 2 and 3 write
# to logs printed after stream 1, so nothing interleaves. Exit status: non-zero when any failed.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
logs=$(mktemp -d /tmp/spectr-tests.XXXXXX)
pytest=(.venv/bin/pytest -q -p no:cacheprovider --durations=15)
separate=(tests/collection tests/deploy)
components=(agent/tests proxy/tests)
browser=(tests/browser)

# What the kernel says from here on, and the machine's free memory every 10 s: a process of a test
# that died of a signal (an OOM kill, a segfault) is reported with the kernel's line about it.
kernel_lines=$(dmesg 2>/dev/null | wc -l)
while sleep 10; do awk '/^MemAvailable:/ {print int($2 / 1024)}' /proc/meminfo; done \
  >"$logs/memory-available-mib.log" &
memory_sampler=$!
trap 'kill "$memory_sampler" 2>/dev/null' EXIT

# Test hosts of every stream start from these images: build them once, before any stream starts.
tests/images/build-host.sh plain >/dev/null || exit 1
tests/images/build-host.sh dind >/dev/null || exit 1
# The llama.cpp runtime compiles for 5-15 minutes the first time on a machine (then it is
# cached): start it now, beside the streams; the tests that need it wait for it (flock).
tests/images/build-llama-server.sh >"$logs/llama-server.log" 2>&1 &

# Stream 2 records each part's exit status in a file; a TERM (the trap below) stops its child.
stream2() {
  local child
  trap 'kill "$child" 2>/dev/null; exit 143' TERM
  "${pytest[@]}" "${separate[@]}" >"$logs/pytest-ansible.log" 2>&1 &
  child=$!
  wait "$child"
  echo $? >"$logs/pytest-ansible.status"
  scripts/collection-test.sh >"$logs/collection.log" 2>&1 &
  child=$!
  wait "$child"
  echo $? >"$logs/collection.status"
  "${pytest[@]}" "${components[@]}" >"$logs/pytest-components.log" 2>&1 &
  child=$!
  wait "$child"
  echo $? >"$logs/pytest-components.status"
}
stream3() {
  local child
  trap 'kill "$child" 2>/dev/null; exit 143' TERM
  tests/collection/run-molecule.sh >"$logs/molecule.log" 2>&1 &
  child=$!
  wait "$child"
  echo $? >"$logs/molecule.status"
  "${pytest[@]}" "${browser[@]}" >"$logs/pytest-browser.log" 2>&1 &
  child=$!
  wait "$child"
  echo $? >"$logs/pytest-browser.status"
}
stream2 &
ansible_pid=$!
stream3 &
molecule_pid=$!
trap 'kill "$ansible_pid" "$molecule_pid" 2>/dev/null' INT TERM

# tests/ alone: agent/tests and proxy/tests are testpaths of their own, which --ignore does not
# take out (it only skips what is collected below the paths given).
"${pytest[@]}" tests "${separate[@]/#/--ignore=}" "${browser[@]/#/--ignore=}"
main_status=$?

wait "$ansible_pid"
ansible_status=$(cat "$logs/pytest-ansible.status" 2>/dev/null || echo 1)
collection_status=$(cat "$logs/collection.status" 2>/dev/null || echo 1)
components_status=$(cat "$logs/pytest-components.status" 2>/dev/null || echo 1)
echo "=== pytest ${separate[*]} (log: $logs/pytest-ansible.log)"
cat "$logs/pytest-ansible.log"
echo "=== spectr.core: ansible-test sanity, units, tarball (log: $logs/collection.log)"
if [ "$collection_status" -eq 0 ]; then
  grep -E '^=== |^collection-' "$logs/collection.log"
else
  cat "$logs/collection.log"
fi

wait "$molecule_pid"
molecule_status=$(cat "$logs/molecule.status" 2>/dev/null || echo 1)
browser_status=$(cat "$logs/pytest-browser.status" 2>/dev/null || echo 1)
echo "=== pytest ${components[*]} (log: $logs/pytest-components.log)"
cat "$logs/pytest-components.log"

echo "=== Molecule (log: $logs/molecule.log)"
grep -E '^=== |^molecule: ' "$logs/molecule.log"
if [ "$molecule_status" -ne 0 ]; then
  tail -150 "$logs/molecule.log"
fi
echo "=== pytest ${browser[*]} (log: $logs/pytest-browser.log)"
cat "$logs/pytest-browser.log"

echo "=== llama.cpp runtime image (log: $logs/llama-server.log)"
tail -3 "$logs/llama-server.log"
echo "=== machine: least memory available during the run: $(sort -n "$logs/memory-available-mib.log" | head -1) MiB"
dmesg 2>/dev/null | tail -n +"$((kernel_lines + 1))" |
  grep -iE 'out of memory|killed process|segfault|general protection|traps:|oom' || true
echo "exit status: pytest $main_status, pytest ${separate[*]} $ansible_status," \
  "spectr.core checks $collection_status, pytest ${components[*]} $components_status," \
  "molecule $molecule_status, pytest ${browser[*]} $browser_status"
[ "$main_status" -eq 0 ] && [ "$ansible_status" -eq 0 ] && [ "$collection_status" -eq 0 ] &&
  [ "$components_status" -eq 0 ] && [ "$molecule_status" -eq 0 ] && [ "$browser_status" -eq 0 ]
