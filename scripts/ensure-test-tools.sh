#!/usr/bin/env bash
# Make sure the Debian tools the tests run on this machine are installed; a fresh machine may
# lack some. Idempotent and quiet when all are present. Called by `make services`.
#   docker-registry   local registries for the agent, catalog, registry and collection tests
#   gcc + libc6-dev   a static binary for the tiny runnable image of the registry Done-when test
#   postgresql-client pg_dump / pg_restore for backups of a Postgres portal
#   redis-server      private Redis processes the recovery tests kill and restart
#   openssh-client    ssh-keyscan / ssh-keygen for host keys
#   debootstrap       the Debian root file system of every test image
set -euo pipefail

declare -A package_of=(
  [docker-registry]=docker-registry [gcc]=gcc [pg_dump]=postgresql-client
  [redis-server]=redis-server [ssh-keyscan]=openssh-client [debootstrap]=debootstrap
)
missing=()
for tool in "${!package_of[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${package_of[$tool]}")
done
dpkg-query -W -f='${Status}' libc6-dev 2>/dev/null | grep -q "ok installed" || missing+=(libc6-dev)
[ ${#missing[@]} -eq 0 ] && exit 0

echo "ensure-test-tools: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Packages such as docker-registry start their own service on install; tests start their own.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT
apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 || {
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
}
