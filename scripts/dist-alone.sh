#!/usr/bin/env bash
# Install one of Spectr's distributions (agent or proxy) alone in a clean venv and run its own
# test suite there, without the portal or its dependencies:
#
#   scripts/dist-alone.sh agent [pytest arguments...]
#   scripts/dist-alone.sh proxy -m "not slow"
#
# Prints what `pip install ./DIST` brought (pip freeze) before the tests, then installs the
# distribution's test extra and runs `pytest DIST/tests` with the venv's Python. The venv is
# kept at $SPECTR_DIST_VENV (default /tmp/spectr-dist-DIST) so a rerun only tests.
set -euo pipefail
dist=${1:?usage: $0 agent|proxy [pytest arguments...]}
shift
case "$dist" in agent | proxy) ;; *) echo "usage: $0 agent|proxy [pytest arguments...]" >&2; exit 2 ;; esac
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${SPECTR_DIST_VENV:-/tmp/spectr-dist-$dist}
python=${PYTHON:-python3.11}

rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check "$root/$dist"
echo "== pip install ./$dist brought:"
"$venv/bin/pip" freeze --disable-pip-version-check
# The same check the packaging test makes: nothing the portal alone needs came along. (Flask is
# not in the list: mitmproxy itself requires it, for mitmweb.)
for portal_only in flask-smorest flask-sqlalchemy sqlalchemy alembic psycopg huey ansible-core \
  ansible-runner gunicorn boto3 docker marshmallow spectr; do
  if "$venv/bin/pip" show -q "$portal_only" >/dev/null 2>&1; then
    echo "dist-alone: $portal_only (a portal dependency) was installed with $dist" >&2
    exit 1
  fi
done
"$venv/bin/pip" install -q --disable-pip-version-check "$root/$dist[test]"
cd "$root/$dist"
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
