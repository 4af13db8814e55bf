#!/usr/bin/env bash
# Make sure `sshpass` is on this control node: Ansible needs it for hosts added with a password.
# Idempotent and quiet when it is already installed. Called by `make services`.
set -euo pipefail

if command -v sshpass >/dev/null 2>&1; then
  exit 0
fi
sudo_cmd=()
if [ "$(id -u)" != "0" ]; then
  sudo_cmd=(sudo)
fi
echo "ensure-sshpass: installing sshpass" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq sshpass >/dev/null
command -v sshpass >/dev/null
