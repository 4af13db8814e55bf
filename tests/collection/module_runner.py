"""Call an Ansible module's main() in-process, the way ansible-test units do."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout, suppress
from types import ModuleType
from typing import Any
from unittest import mock

from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes


def run_module(module: ModuleType, args: dict[str, Any], *, check_mode: bool = False,
               diff: bool = False) -> dict[str, Any]:  # fmt: skip
    """Run a module with these arguments and return what it printed as JSON."""
    payload = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff,
                   _ansible_remote_tmp="/tmp", _ansible_keep_remote_files=False)  # fmt: skip
    stdout = io.StringIO()
    with (
        mock.patch.object(
            basic, "_ANSIBLE_ARGS", to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": payload}))
        ),
        mock.patch.object(basic, "_ANSIBLE_PROFILE", "legacy", create=True),
        redirect_stdout(stdout),
        suppress(SystemExit),
    ):
        module.main()
    return json.loads(stdout.getvalue())
