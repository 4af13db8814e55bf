#!/usr/bin/python
# Copyright (c) Spectr authors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: proxy_route
short_description: Add or remove a route in a spectr_proxy config file
version_added: 0.1.0
description:
  - Edits the JSON config document spectr_proxy reads (C(proxy/config.schema.json) in Spectr's
    repository). A route C({name, hosts, path_prefix, strip_prefix, pool, timeout_s}) sends
    requests to a pool C({name, replicas}) of upstream URLs; the module writes both. Other keys (models,
    gateway keys, other routes) are kept as they are.
  - A route is identified by its O(name); a route or pool of that name is replaced when it
    differs. Each change increments the document's C(version).
  - Creates the file when it does not exist.
options:
  path:
    description: The config file on the host.
    type: path
    default: /etc/spectr-proxy/config.json
  name:
    description: Unique name of the route.
    type: str
    required: true
  state:
    description: Whether the route should be in the file.
    type: str
    choices: [present, absent]
    default: present
  hosts:
    description: Host names the route answers for; V(*) (the default) means any host.
    type: list
    elements: str
    default: ["*"]
  path_prefix:
    description: Requests whose path starts with this go to the route's upstreams.
    type: str
    default: /
  strip_prefix:
    description: Remove O(path_prefix) from the path before forwarding.
    type: bool
    default: false
  pool:
    description: Name of the pool of upstreams; defaults to O(name).
    type: str
  upstreams:
    description: Replicas of the pool; the proxy balances among them. Required when O(state=present).
    type: list
    elements: dict
    suboptions:
      url:
        description: Base URL of the replica, V(http(s\)://host:port) without a path.
        type: str
        required: true
  timeout_s:
    description: Seconds the proxy waits for an upstream answer.
    type: float
    default: 60
  mode:
    description: File mode when the file is created.
    type: raw
    default: "0640"
requirements:
  - Python 3 on the host, standard library only
notes:
  - Runs on the host that holds the config file; spectr_proxy re-reads the file when it
    changes, so no restart is needed.
  - The file is replaced atomically (written to a temporary file in the same folder, then
    renamed).
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff shows the config file before and after, as JSON.
  platform:
    platforms: posix
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
author:
  - Spectr authors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Route chat.example.com to the model server
  spectr.core.proxy_route:
    path: /etc/spectr-proxy/config.json
    name: llama-chat
    hosts: [chat.example.com]
    path_prefix: /v1/
    upstreams:
      - url: http://10.0.0.5:8000
    timeout_s: 300

- name: Remove the route
  spectr.core.proxy_route:
    name: llama-chat
    state: absent
"""

RETURN = r"""
route:
  description: The route as written, or null after removal.
  returned: always
  type: dict
  sample: {name: llama-chat, hosts: [chat.example.com], path_prefix: /v1/, strip_prefix: false,
           pool: llama-chat, timeout_s: 300}
pool:
  description: The route's pool as written, or null after removal.
  returned: always
  type: dict
  sample: {name: llama-chat, replicas: [{url: "http://10.0.0.5:8000"}]}
version:
  description: The document's version afterwards.
  returned: always
  type: int
routes_count:
  description: Number of routes in the file afterwards.
  returned: always
  type: int
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native
from ansible_collections.spectr.core.plugins.module_utils._proxy_config import (
    ProxyConfigError,
    build_pool,
    build_route,
    dump_config,
    find_pool,
    find_route,
    load_config,
    remove_route,
    upsert_route,
)


def read_config_text(path):
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return handle.read()


def write_config(module, path, text):
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        module.fail_json(msg="directory %s does not exist" % directory)
    handle, temp_path = tempfile.mkstemp(dir=directory, prefix=".proxy_route.")
    with os.fdopen(handle, "w") as temp_file:
        temp_file.write(text)
    created = not os.path.exists(path)
    module.atomic_move(temp_path, path)
    if created:
        module.set_mode_if_different(path, module.params["mode"], False)


def desired_config(module, config):
    params = module.params
    if params["state"] == "absent":
        return remove_route(config, params["name"])
    route = build_route(params["name"], params["hosts"], params["path_prefix"],
                        params["timeout_s"], params["pool"], params["strip_prefix"])
    return upsert_route(config, route, build_pool(route["pool"], params["upstreams"] or []))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", default="/etc/spectr-proxy/config.json"),
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            hosts=dict(type="list", elements="str", default=["*"]),
            path_prefix=dict(type="str", default="/"),
            strip_prefix=dict(type="bool", default=False),
            pool=dict(type="str"),
            upstreams=dict(type="list", elements="dict",
                           options=dict(url=dict(type="str", required=True))),
            timeout_s=dict(type="float", default=60),
            mode=dict(type="raw", default="0640"),
        ),
        required_if=[("state", "present", ["upstreams"])],
        supports_check_mode=True,
    )
    path = module.params["path"]
    try:
        before_text = read_config_text(path)
        config = load_config(before_text or "")
        after, changed = desired_config(module, config)
    except (ProxyConfigError, IOError, OSError) as error:
        module.fail_json(msg="%s: %s" % (path, to_native(error)))
    if before_text is None and module.params["state"] == "absent":
        changed = False  # nothing to remove and no reason to create the file
    route = find_route(after, module.params["name"])
    result = dict(changed=changed, route=route, routes_count=len(after["routes"]),
                  pool=find_pool(after, route["pool"]) if route else None,
                  version=after["version"])
    if changed and module._diff:
        result["diff"] = dict(before=before_text or "", after=dump_config(after),
                              before_header=path, after_header=path)
    if changed and not module.check_mode:
        try:
            write_config(module, path, dump_config(after))
        except (IOError, OSError) as error:
            module.fail_json(msg="cannot write %s: %s" % (path, to_native(error)))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
