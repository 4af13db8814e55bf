#!/usr/bin/env bash
# Build the postgres and redis images of deploy/compose.yaml from Debian bookworm's packages
# (deploy/services/*), for networks where the public postgres and redis images cannot be pulled.
# The base image's apt sources give the packages at build time; the images then run offline.
#
# Settings (environment):
#   SPECTR_SERVICES_BASE_IMAGE  a Debian bookworm image with working apt sources (default:
#                               SPECTR_BASE_IMAGE when set, else debian:bookworm-slim)
#   SPECTR_IMAGE_PREFIX         prefix of the image names (default "spectr-": spectr-postgres, ...)
#
# Each image is tagged with a hash of its folder and the base image's id: a rerun with nothing
# changed prints the same references within a second. A rebuilt or updated base image (e.g. for
# Debian's security updates) makes new images.
#
# Prints, on stdout, lines ready for compose's .env file:
#   POSTGRES_IMAGE=spectr-postgres:<hash>
#   REDIS_IMAGE=spectr-redis:<hash>
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
base=${SPECTR_SERVICES_BASE_IMAGE:-${SPECTR_BASE_IMAGE:-debian:bookworm-slim}}
prefix=${SPECTR_IMAGE_PREFIX:-spectr-}
say() { echo "build-service-images: $*" >&2; }

if ! docker image inspect "$base" >/dev/null 2>&1; then
  say "pulling $base"
  docker pull -q "$base" >&2
fi
base_id=$(docker image inspect -f '{{.Id}}' "$base")

for service in postgres redis; do
  folder=$repo/deploy/services/$service
  recipe_hash=$(
    cd "$folder"
    find . -type f | LC_ALL=C sort | while IFS= read -r path; do echo "$path"; cat "$path"; done
    echo "$base_id"
  )
  ref="${prefix}${service}:$(sha256sum <<<"$recipe_hash" | cut -c1-16)"
  if ! docker image inspect "$ref" >/dev/null 2>&1; then
    say "docker build $ref from Debian packages (first time: about half a minute)"
    log=$(mktemp)
    docker build -q --build-arg BASE_IMAGE="$base" -t "$ref" "$folder" >"$log" 2>&1 ||
      { cat "$log" >&2; rm -f "$log"; exit 1; }
    rm -f "$log"
  fi
  docker tag "$ref" "${prefix}${service}:latest"
  echo "${service^^}_IMAGE=$ref"
done
