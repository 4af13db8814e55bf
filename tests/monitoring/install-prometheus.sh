#!/bin/sh
# Install Debian's prometheus package (prometheus and promtool) for the monitoring tests, once;
# a no-op when both are there. The package's own service is not used: tests run their own
# Prometheus process on 127.0.0.1 with a throw-away data folder.
set -eu
if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d 101: do not start the packaged service inside a build or test machine.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    REMOVE_POLICY=1
fi
$SUDO apt-get -o DPkg::Lock::Timeout=300 update -q
$SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends prometheus
if [ "${REMOVE_POLICY:-0}" = 1 ]; then
    $SUDO rm -f /usr/sbin/policy-rc.d
fi
command -v prometheus >/dev/null && command -v promtool >/dev/null
