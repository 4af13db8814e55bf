"""Suite-wide settings: keep Ansible and mitmproxy state out of the home directory."""

from __future__ import annotations

import os
import tempfile

# Set before any test module imports ansible-runner or mitmproxy (MACHINE-NOTES: both write
# into ~ otherwise).
_state = tempfile.mkdtemp(prefix="spectr-test-home-")
os.environ.setdefault("ANSIBLE_LOCAL_TEMP", os.path.join(_state, "ansible-tmp"))
os.environ.setdefault("ANSIBLE_HOME", os.path.join(_state, "ansible"))
