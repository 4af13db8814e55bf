#!/bin/sh
# Install Debian's chromium for the browser tests, once; a no-op when it is already there.
# apt's own lock serialises parallel callers, so two test sessions cannot corrupt the install.
set -eu
CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get -o DPkg::Lock::Timeout=300 update -q
$SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends chromium
test -x "$CHROMIUM"
