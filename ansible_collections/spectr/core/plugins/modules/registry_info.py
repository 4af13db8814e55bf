#!/usr/bin/python
# Copyright (c) Spectr authors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: registry_info
short_description: List the repositories and tags of a Docker registry
version_added: 0.1.0
description:
  - Reads a registry through the Docker Registry HTTP API v2 (distribution).
  - Authenticates with Basic credentials, or with Bearer tokens from the registry's token
    service (using O(username) and O(password)), or with a static O(token).
options:
  registry_url:
    description: Base URL of the registry, for example V(https://registry.example.com:5000).
    type: str
    required: true
  repository:
    description: Only this repository; when omitted, every repository of the catalog.
    type: str
  tags:
    description: Also list the tags of each repository.
    type: bool
    default: true
  username:
    description: User name for Basic auth or for the token service.
    type: str
  password:
    description: Password of O(username).
    type: str
  token:
    description: A Bearer token to send as it is.
    type: str
  ca_path:
    description: PEM file of the CA that signed the registry's certificate.
    type: path
  validate_certs:
    description: Verify the registry's TLS certificate.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for each HTTP answer.
    type: int
    default: 60
requirements:
  - Python 3 on the host that runs it, standard library only; no Docker engine
notes:
  - Runs on the managed host (or on the control node with C(delegate_to)); that host needs a
    route to the registry.
  - The catalog lists every repository the user may see; with token auth that depends on the
    scopes the token service grants.
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
author:
  - Spectr authors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: List what Spectr's registry holds
  spectr.core.registry_info:
    registry_url: https://registry.example.com:5000
    username: spectr
    password: "{{ registry_password }}"
    ca_path: /etc/spectr/registry-ca.pem
  register: registry
"""

RETURN = r"""
repositories:
  description: Repositories with their tags (tags omitted when O(tags=false)).
  returned: always
  type: list
  elements: dict
  sample: [{name: library/alpine, tags: ["3.20", latest]}]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.spectr.core.plugins.module_utils._registry import (
    RegistryClient,
    RegistryError,
    registry_auth_argument_spec,
)


def client_from_params(params):
    return RegistryClient(
        params["registry_url"], username=params["username"], password=params["password"],
        token=params["token"], ca_path=params["ca_path"],
        validate_certs=params["validate_certs"], timeout=params["timeout"],
    )


def main():
    argument_spec = registry_auth_argument_spec()
    argument_spec.update(
        repository=dict(type="str"),
        tags=dict(type="bool", default=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           mutually_exclusive=[("token", "username")])
    params = module.params
    try:
        client = client_from_params(params)
        names = [params["repository"]] if params["repository"] else client.repositories()
        repositories = []
        for name in names:
            entry = {"name": name}
            if params["tags"]:
                entry["tags"] = client.tags(name)
            repositories.append(entry)
    except RegistryError as error:
        module.fail_json(msg=str(error))
    module.exit_json(changed=False, repositories=repositories)


if __name__ == "__main__":
    main()
