#!/usr/bin/env bash
# Build the stand-in model server image (tests/images/model-server/server.py on the Debian
# base image): an OpenAI-compatible HTTP server that stands in for a real LLM server, which
# needs a GPU and weights this machine does not have. Tagged by a hash of its recipe and base.
# Prints the image reference (spectr-test-model-server:<hash>) on stdout.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
base=$("$here/build-base.sh")
recipe_hash=$(printf '%s\n' "$base" "$(cat "$here/build-model-server.sh" "$here/model-server/server.py")" \
  | sha256sum | cut -c1-12)
image="spectr-test-model-server:$recipe_hash"

if docker image inspect "$image" >/dev/null 2>&1; then
  echo "$image"
  exit 0
fi

context=$(mktemp -d /tmp/spectr-model-server.XXXXXX)
trap 'rm -rf "$context"' EXIT
cp "$here/model-server/server.py" "$context/server.py"
cat >"$context/Dockerfile" <<DOCKERFILE
FROM $base
COPY server.py /srv/server.py
EXPOSE 8000
CMD ["python3", "/srv/server.py", "--port", "8000"]
DOCKERFILE
docker build -q -t "$image" "$context" >/dev/null
echo "$image"
