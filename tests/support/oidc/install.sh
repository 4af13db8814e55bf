#!/bin/sh
# Node.js from Debian and oidc-provider from npm, in a cache folder kept between runs.
# Prints the folder that holds node_modules/oidc-provider.
set -eu
CACHE="${SPECTR_TEST_CACHE:-$HOME/.cache/spectr-test}/oidc-provider"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq nodejs npm >&2
fi
mkdir -p "$CACHE"
if [ ! -d "$CACHE/node_modules/oidc-provider" ]; then
  echo '{"name":"spectr-test-oidc","private":true,"type":"module"}' > "$CACHE/package.json"
  (cd "$CACHE" && npm install --no-audit --no-fund oidc-provider@8 >&2)
fi
echo "$CACHE"
