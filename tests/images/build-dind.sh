#!/usr/bin/env bash
# Build (or reuse) the Docker-in-Docker test-host image; prints its reference.
# See build-host.sh; start such hosts with tests/support/testhosts.py (start_test_host(dind=True)).
set -euo pipefail
exec "$(cd "$(dirname "$0")" && pwd)/build-host.sh" dind
