#!/usr/bin/env bash
# Build the Debian bookworm base image every test host and test container starts from.
# No public registry is reachable, so the root file system comes from debootstrap and the
# machine's apt mirror, then `docker import`. The image is tagged with a hash of this script,
# so a rerun with an unchanged recipe returns at once.
# Prints the image reference (spectr-test-base:<hash>) on stdout.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
mirror=${SPECTR_TEST_APT_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
packages=openssh-server,python3,sudo,procps,iproute2,ca-certificates,curl
recipe_hash=$(printf '%s\n' "$(cat "$here/build-base.sh")" "$mirror" | sha256sum | cut -c1-12)
image="spectr-test-base:$recipe_hash"

if docker image inspect "$image" >/dev/null 2>&1; then
  echo "$image"
  exit 0
fi

command -v debootstrap >/dev/null || {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}

root=$(mktemp -d /tmp/spectr-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "build-base: debootstrap $suite into $root (about a minute)" >&2
debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >/tmp/spectr-debootstrap.log 2>&1 || {
  tail -30 /tmp/spectr-debootstrap.log >&2
  exit 1
}
# sshd needs its privilege-separation directory; host keys are made per container at start.
mkdir -p "$root/run/sshd"
rm -f "$root"/etc/ssh/ssh_host_*
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
tar -C "$root" -c . | docker import \
  --change 'CMD ["/bin/bash"]' \
  --change 'ENV LANG=C.UTF-8' \
  - "$image" >/dev/null
docker tag "$image" spectr-test-base:latest
echo "$image"
