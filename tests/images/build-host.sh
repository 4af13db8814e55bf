#!/usr/bin/env bash
# Build a Spectr test-host image on top of the base image (tests/images/build-base.sh).
#   build-host.sh plain   sshd entrypoint (host-init.sh) only
#   build-host.sh dind    plus docker.io, python3-apt, python3-requests, docker-registry, cron
#                         and prometheus: a host that can run its own Docker engine
#                         (Docker-in-Docker) and that the registry and monitoring roles find
#                         ready (their packages are present, so no test host needs a mirror)
# Tagged with a hash of the recipe and the base image, so an unchanged rerun returns at once.
# Prints the image reference on stdout; progress goes to stderr.
set -euo pipefail

variant=${1:-plain}
here=$(cd "$(dirname "$0")" && pwd)
base=$("$here/build-base.sh")
case "$variant" in
  plain) packages="" ;;
  dind) packages="docker.io python3-apt python3-requests docker-registry apache2-utils cron prometheus" ;;
  *) echo "build-host: unknown variant '$variant' (plain|dind)" >&2; exit 2 ;;
esac

context=$(mktemp -d /tmp/spectr-host-image.XXXXXX)
trap 'rm -rf "$context"' EXIT
cp "$here/host-init.sh" "$context/host-init.sh"
{
  echo "FROM $base"
  if [ -n "$packages" ]; then
    echo "RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \\"
    echo "      --no-install-recommends $packages >/dev/null \\"
    echo " && rm -f /var/cache/apt/archives/*.deb"
    # Debian's packages start their own services; test hosts start what they need.
    echo "RUN rm -f /etc/init.d/docker-registry /etc/init.d/docker /etc/init.d/prometheus"
  fi
  echo "COPY host-init.sh /usr/local/sbin/spectr-test-init"
  echo 'VOLUME ["/var/lib/docker"]'
  echo 'CMD ["/usr/local/sbin/spectr-test-init"]'
} >"$context/Dockerfile"

recipe_hash=$(cat "$context/Dockerfile" "$context/host-init.sh" "$here/build-host.sh" | sha256sum | cut -c1-12)
image="spectr-test-$variant:$recipe_hash"
if docker image inspect "$image" >/dev/null 2>&1; then
  echo "$image"
  exit 0
fi
echo "build-host: building $image (first time: ~1-3 min)" >&2
DOCKER_BUILDKIT=0 docker build -q -t "$image" "$context" >/dev/null
docker tag "$image" "spectr-test-$variant:latest"
echo "$image"
