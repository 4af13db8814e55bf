#!/bin/bash
# Entrypoint of Spectr's test hosts: a container that behaves like a small server reached by SSH.
# Environment (all optional):
#   SPECTR_TEST_AUTHORIZED_KEY  public key authorised for root and for SPECTR_TEST_USER
#   SPECTR_TEST_USER            a sudo user (NOPASSWD) made at start, default "ops"
#   SPECTR_TEST_PASSWORD        password for that user; enables SSH password login
#   SPECTR_TEST_START_DOCKER    "1" starts containerd + dockerd (DinD image only)
set -euo pipefail

user=${SPECTR_TEST_USER:-ops}

# Docker-in-Docker needs writable cgroup v1 hierarchies; docker mounts them read-only.
if [ -d /sys/fs/cgroup ]; then
  awk '$3 == "cgroup" {print $2}' /proc/self/mounts | while read -r mount_point; do
    mount -o remount,bind,rw "$mount_point" 2>/dev/null || true
  done
fi

# Docker API clients cannot ask for systempaths=unconfined (a docker CLI option); a DinD host
# started through the API (Molecule) gets a writable /proc/sys this way instead.
if command -v dockerd >/dev/null; then
  mount -o remount,rw /proc/sys 2>/dev/null || true
fi

if ! id "$user" >/dev/null 2>&1; then
  useradd --create-home --shell /bin/bash "$user"
  echo "$user ALL=(ALL) NOPASSWD:ALL" >"/etc/sudoers.d/90-$user"
  chmod 0440 "/etc/sudoers.d/90-$user"
fi
if [ -n "${SPECTR_TEST_AUTHORIZED_KEY:-}" ]; then
  for home in /root "/home/$user"; do
    install -d -m 0700 "$home/.ssh"
    printf '%s\n' "$SPECTR_TEST_AUTHORIZED_KEY" >"$home/.ssh/authorized_keys"
    chmod 0600 "$home/.ssh/authorized_keys"
  done
  chown -R "$user:$user" "/home/$user/.ssh"
fi
if [ -n "${SPECTR_TEST_PASSWORD:-}" ]; then
  echo "$user:$SPECTR_TEST_PASSWORD" | chpasswd
  echo "PasswordAuthentication yes" >/etc/ssh/sshd_config.d/50-spectr-test.conf
fi

ssh-keygen -A >/dev/null
mkdir -p /run/sshd

if [ "${SPECTR_TEST_START_DOCKER:-0}" = "1" ] && command -v dockerd >/dev/null; then
  mkdir -p /var/log/spectr-test
  start-stop-daemon --start --background --make-pidfile --pidfile /run/containerd.pid \
    --output /var/log/spectr-test/containerd.log --exec /usr/bin/containerd
  start-stop-daemon --start --background --make-pidfile --pidfile /run/dockerd.pid \
    --output /var/log/spectr-test/dockerd.log --exec /usr/sbin/dockerd -- \
    --host=unix:///var/run/docker.sock
fi

exec /usr/sbin/sshd -D -e
