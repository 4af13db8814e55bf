#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine; install and start one when it does not.
# Used by `make test`, `.ci/run` and the test fixtures. Idempotent and quiet when Docker is up.
set -euo pipefail

if docker info >/dev/null 2>&1; then
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  echo "ensure-docker: installing docker.io" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io >/dev/null
fi

# Only daemons of this machine's own PID namespace count: pgrep also sees the dockerd and
# containerd inside Docker-in-Docker test containers (Molecule's, or those a stopped run left),
# which serve only their container.
running_here() { pgrep --ns $$ --nslist pid -x "$1" >/dev/null; }

mkdir -p /var/log/spectr-ci
if ! running_here containerd; then
  nohup containerd >/var/log/spectr-ci/containerd.log 2>&1 &
  sleep 1
fi
if ! running_here dockerd; then
  nohup dockerd --host=unix:///var/run/docker.sock >/var/log/spectr-ci/dockerd.log 2>&1 &
fi

for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    echo "ensure-docker: engine up ($(docker version --format '{{.Server.Version}}'))" >&2
    exit 0
  fi
  sleep 1
done
echo "ensure-docker: dockerd did not answer within 60 s; see /var/log/spectr-ci/dockerd.log" >&2
tail -20 /var/log/spectr-ci/dockerd.log >&2 || true
exit 1
