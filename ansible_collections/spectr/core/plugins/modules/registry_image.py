#!/usr/bin/python
# Copyright (c) Spectr authors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: registry_image
short_description: Copy an image between Docker registries, or delete a tag
version_added: 0.1.0
description:
  - With O(state=present), makes O(repository):O(tag) in the registry at O(registry_url) the same
    image (same manifest digest) as O(source) — copying blobs registry to registry through the
    control path, without a Docker engine. Multi-platform indexes are copied whole.
  - With O(state=absent), deletes the manifest O(tag) points at. Every other tag of the same
    digest goes with it (the registry API deletes by digest); the registry must allow deletes.
  - Speaks the Docker Registry HTTP API v2 with Basic or Bearer (token service) auth.
options:
  registry_url:
    description: Base URL of the destination registry.
    type: str
    required: true
  repository:
    description: Repository in the destination registry.
    type: str
    required: true
  tag:
    description: Tag in the destination registry.
    type: str
    default: latest
  state:
    description: V(present) copies the image there; V(absent) deletes the tag.
    type: str
    choices: [present, absent]
    default: present
  source:
    description: Where the image comes from; required when O(state=present).
    type: dict
    suboptions:
      registry_url:
        description: Base URL of the source registry; defaults to O(registry_url).
        type: str
      repository:
        description: Source repository.
        type: str
        required: true
      reference:
        description: Source tag or digest.
        type: str
        default: latest
      username:
        description: Source user name.
        type: str
      password:
        description: Source password.
        type: str
      token:
        description: Source Bearer token.
        type: str
      ca_path:
        description: CA file for the source registry.
        type: path
      validate_certs:
        description: Verify the source's TLS certificate.
        type: bool
        default: true
  username:
    description: User name for the destination.
    type: str
  password:
    description: Password of O(username).
    type: str
  token:
    description: A Bearer token for the destination, sent as it is.
    type: str
  ca_path:
    description: PEM file of the CA that signed the destination's certificate.
    type: path
  validate_certs:
    description: Verify the destination's TLS certificate.
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
    route to both registries. Within one registry, blobs are mounted; between two, each blob
    is downloaded to a temporary file on that host and uploaded from it.
  - Deleting needs the registry's C(storage.delete.enabled) (spectr.core.registry sets it); the
    space is freed by the registry's garbage collection, not by this module.
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff shows the manifest digest the tag points at before and after.
  platform:
    platforms: posix
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
author:
  - Spectr authors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Mirror a model server image into Spectr's registry
  spectr.core.registry_image:
    registry_url: https://registry.internal:5000
    repository: vllm/vllm-openai
    tag: v0.6.3
    username: spectr
    password: "{{ registry_password }}"
    ca_path: /etc/spectr/registry-ca.pem
    source:
      registry_url: https://staging-registry.internal:5000
      repository: vllm/vllm-openai
      reference: v0.6.3

- name: Delete a tag
  spectr.core.registry_image:
    registry_url: https://registry.internal:5000
    repository: vllm/vllm-openai
    tag: v0.6.2
    state: absent
"""

RETURN = r"""
digest:
  description: Digest of the manifest the tag points at afterwards (null after deletion).
  returned: always
  type: str
  sample: sha256:4bc453b53cb3d914b45f4b250294236adba2c0e09ff6f03793949e7e39fd4cc1
blobs_copied:
  description: Number of blobs uploaded or mounted into the destination.
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.spectr.core.plugins.module_utils._registry import (
    ImageCopier,
    RegistryClient,
    RegistryError,
    registry_auth_argument_spec,
)

SOURCE_SPEC = dict(
    registry_url=dict(type="str"),
    repository=dict(type="str", required=True),
    reference=dict(type="str", default="latest"),
    username=dict(type="str"),
    password=dict(type="str", no_log=True),
    token=dict(type="str", no_log=True),
    ca_path=dict(type="path"),
    validate_certs=dict(type="bool", default=True),
)


class RegistryImageManager(object):
    """Bring one tag of a registry to the wanted state."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.destination = self._client(self.params)
        self.result = dict(changed=False, digest=None, blobs_copied=0)

    def _client(self, params, fallback_url=None):
        return RegistryClient(
            params.get("registry_url") or fallback_url, username=params.get("username"),
            password=params.get("password"), token=params.get("token"),
            ca_path=params.get("ca_path"), validate_certs=params.get("validate_certs", True),
            timeout=self.params["timeout"],
        )

    def _current_digest(self):
        found = self.destination.manifest(self.params["repository"], self.params["tag"])
        return found[2] if found else None

    def _set_diff(self, before, after):
        self.result["changed"] = before != after
        if self.module._diff:
            self.result["diff"] = dict(before={"digest": before}, after={"digest": after})

    def present(self):
        source_params = self.params["source"]
        source = self._client(source_params, fallback_url=self.params["registry_url"])
        found = source.manifest(source_params["repository"], source_params["reference"])
        if found is None:
            raise RegistryError("source %s/%s:%s does not exist" % (
                source.base_url, source_params["repository"], source_params["reference"]))
        wanted = found[2]
        before = self._current_digest()
        self._set_diff(before, wanted)
        self.result["digest"] = wanted
        if self.result["changed"] and not self.module.check_mode:
            copier = ImageCopier(source, self.destination)
            copier.copy(source_params["repository"], source_params["reference"],
                        self.params["repository"], self.params["tag"])
            self.result["blobs_copied"] = copier.blobs_copied

    def absent(self):
        before = self._current_digest()
        self._set_diff(before, None)
        if before and not self.module.check_mode:
            self.destination.delete_manifest(self.params["repository"], before)


def main():
    argument_spec = registry_auth_argument_spec()
    argument_spec.update(
        repository=dict(type="str", required=True),
        tag=dict(type="str", default="latest"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        source=dict(type="dict", options=SOURCE_SPEC),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_if=[("state", "present", ["source"])],
        mutually_exclusive=[("token", "username")],
        supports_check_mode=True,
    )
    try:
        manager = RegistryImageManager(module)
        getattr(manager, module.params["state"])()
    except RegistryError as error:
        module.fail_json(msg=str(error))
    module.exit_json(**manager.result)


if __name__ == "__main__":
    main()
