#!/usr/bin/env bash
# Install one of Spectr's distributions (agent or proxy) alone in a clean venv and run its own
# test suite there, without the portal or its dependencies:
#
#   scripts/dist-alone.sh agent [pytest arguments...]
#   scripts/dist-alone.sh proxy -m "not slow"
#
# Prints what `pip install ./DIST` brought (pip freeze) before the tests, then installs the
# distribution's test extra and runs `pytest DIST/tests` with the venv's Python, in a venv at
# $SPECTR_DIST_VENV (default /tmp/spectr-dist-DIST), made anew each time. SPECTR_CONSTRAINTS:
# a pip constraints file (default: the versions in the repository's .venv, when there is one).
set -euo pipefail
dist=${1:?usage: $0 agent|proxy [pytest arguments...]}
shift
case "$dist" in agent | proxy) ;; *) echo "usage: $0 agent|proxy [pytest arguments...]" >&2; exit 2 ;; esac
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${SPECTR_DIST_VENV:-/tmp/spectr-dist-$dist}
python=${PYTHON:-python3.11}

# The versions the repository's own venv tested are the constraints (as deploy/build-images.sh
# does): unconstrained, pip gives up on proxy[test] (mitmproxy 11.0 caps h11 at 0.14, the
# newest httpcore needs 0.16, and the resolver does not backtrack out of it).
constraints=${SPECTR_CONSTRAINTS:-}
if [ -z "$constraints" ] && [ -x "$root/.venv/bin/pip" ]; then
  constraints=$(mktemp /tmp/spectr-dist-constraints.XXXXXX)
  "$root/.venv/bin/pip" freeze --exclude-editable --disable-pip-version-check |
    grep -v ' @ file:' >"$constraints"
fi
pip_install=("$venv/bin/pip" install -q --disable-pip-version-check ${constraints:+-c "$constraints"})

rm -rf "$venv"
"$python" -m venv "$venv"
"${pip_install[@]}" "$root/$dist"
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
"${pip_install[@]}" "$root/$dist[test]"
cd "$root/$dist"
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
