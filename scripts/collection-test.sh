#!/usr/bin/env bash
# What CI checks of spectr.core beyond pytest and Molecule, one after the other: ansible-test
# sanity, ansible-test units, and the Galaxy tarball (left at dist/spectr-core-<version>.tar.gz).
# Each runs even when one before it failed, so one run shows every failure. It prints a
# "=== <check> passed|FAILED in N s" line per check; exit status: non-zero when any failed.
# First run on a machine 5-7 minutes (ansible-test's environments come from PyPI), then
# 1.5-2 minutes (measured beside a CI run); scripts/run-tests.sh runs it in `make test`.
set -uo pipefail
scripts=$(cd "$(dirname "$0")" && pwd)
failed=()
for check in sanity units build; do
  echo "=== collection-$check"
  start=$SECONDS
  if "$scripts/collection-$check.sh"; then
    echo "=== collection-$check passed in $((SECONDS - start)) s"
  else
    echo "=== collection-$check FAILED in $((SECONDS - start)) s"
    failed+=("$check")
  fi
done
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "collection-test: FAILED: ${failed[*]}"
  exit 1
fi
echo "collection-test: sanity, units and the tarball passed"
