#!/bin/sh
# Debian's OpenLDAP server and tools for the directory sign-in tests; nothing when present.
set -eu
if command -v slapd >/dev/null 2>&1 && command -v ldapsearch >/dev/null 2>&1; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq slapd ldap-utils
