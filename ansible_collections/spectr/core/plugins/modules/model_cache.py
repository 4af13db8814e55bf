#!/usr/bin/python
# Copyright (c) Spectr authors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: model_cache
short_description: Put a model from Spectr's registry into a host's model cache, or remove it
version_added: 0.2.0
description:
  - Keeps one model in the host's model cache, in the layout the Spectr agent uses too
    (C(blobs/sha256/<hex>), the model folder C(sha256-<manifest hex>/) of hard links, and
    C(manifests/sha256-<manifest hex>.json) written last to mark the model complete).
  - With O(state=present), checks the free disk space first, fetches missing blobs from the
    registry (resuming C(.partial) files with an HTTP Range request), verifies each blob's
    sha256 and size, hard-links the files into the model folder and writes the manifest json.
    It reports a change only when it fetched, repaired, linked, removed or wrote something.
  - The model's files come from its OCI manifest in the registry (O(reference)), or are given
    in O(files) with the manifest O(digest).
  - With O(state=absent), deletes the manifest json and the model folder, then every blob of
    the model that no other model on the host uses.
  - Needs only the Python standard library on the host.
options:
  digest:
    description:
      - Digest of the model's OCI manifest (C(sha256:<hex>)); it names the model on the host.
      - Required with O(files). With O(reference), the manifest read must have this digest.
      - With O(state=absent), removes this model without asking the registry.
    type: str
  name:
    description:
      - Model name recorded in the manifest json.
      - Defaults to O(repository) without its C(models/) prefix.
    type: str
  files:
    description:
      - The model's files, instead of reading them from the manifest at O(reference).
    type: list
    elements: dict
    suboptions:
      path:
        description: Relative POSIX path in the model folder (no C(..), not absolute).
        type: str
        required: true
      digest:
        description: sha256 digest of the file (its blob in the registry).
        type: str
        required: true
      size:
        description: Size in bytes.
        type: int
        required: true
  registry_url:
    description: Base URL of the registry the blobs come from (C(https://host:port)).
    type: str
  repository:
    description: Repository of the model in the registry (C(models/<model name>)).
    type: str
  reference:
    description: Tag (C(r<revision>)) or digest of the model's manifest.
    type: str
    aliases: [tag]
  registry_username:
    description: User name for HTTP Basic auth.
    type: str
  registry_password:
    description: Password of O(registry_username).
    type: str
  registry_ca_pem:
    description: PEM text of the CA that signed the registry's certificate.
    type: str
  registry_ca_path:
    description: PEM file on the host of the CA that signed the registry's certificate.
    type: path
  validate_certs:
    description: Verify the registry's TLS certificate.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for each HTTP answer.
    type: int
    default: 60
  root:
    description: Root folder of the host's model cache.
    type: path
    default: /var/lib/spectr/models
  state:
    description: V(present) puts the model in the cache; V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  verify:
    description:
      - Re-hash every cached blob of the model and fetch again those that do not match.
      - With V(false), a cached blob of the right size is trusted.
    type: bool
    default: true
requirements:
  - Python 3 on the host, standard library only (no C(requests), no Docker engine)
notes:
  - Runs on the managed host, which fetches the blobs from the registry itself; the host needs
    a route to O(registry_url), the control node does not.
  - The cache layout is shared with the Spectr agent; do not change O(root) on a host the agent
    serves models from without setting the agent's C(models_dir) too.
attributes:
  check_mode:
    support: full
    details: Reads the registry and the cache (hashing blobs when O(verify=true)), changes nothing.
  diff_mode:
    support: full
    details: The diff lists the files of the model folder before and after.
  platform:
    platforms: posix
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
author:
  - Spectr authors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Put revision 3 of a model on the host
  spectr.core.model_cache:
    registry_url: https://registry.internal:5000
    repository: models/qwen2.5-7b-instruct
    reference: r3
    registry_username: spectr
    registry_password: "{{ registry_password }}"
    registry_ca_pem: "{{ lookup('ansible.builtin.file', 'pki/ca.crt') }}"

- name: Remove it again
  spectr.core.model_cache:
    digest: sha256:4bc453b53cb3d914b45f4b250294236adba2c0e09ff6f03793949e7e39fd4cc1
    state: absent
"""

RETURN = r"""
digest:
  description: Digest of the model's manifest.
  returned: always
  type: str
  sample: sha256:4bc453b53cb3d914b45f4b250294236adba2c0e09ff6f03793949e7e39fd4cc1
path:
  description: The model folder (what runtimes mount read-only).
  returned: always
  type: str
  sample: /var/lib/spectr/models/sha256-4bc453b53cb3d914b45f4b250294236adba2c0e09ff6f03793949e7e39fd4cc1
bytes_fetched:
  description: Bytes downloaded from the registry by this run (0 in check mode).
  returned: always
  type: int
size_bytes:
  description: Total size of the model's files.
  returned: always
  type: int
files:
  description:
    - The model's files with what this run did (or would do, in check mode) to each.
    - O(state=present) statuses are C(present), C(fetched), C(repaired) and C(linked);
      O(state=absent) statuses are C(removed) and C(absent).
  returned: always
  type: list
  elements: dict
  sample: [{path: config.json, digest: "sha256:...", size: 651, status: fetched}]
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.spectr.core.plugins.module_utils._model_cache import (
    DEFAULT_ROOT,
    ModelCache,
    ModelCacheError,
    RegistryReader,
    digest_hex,
    files_from_manifest,
    normalise_files,
    sha256_file,
)

FILE_SPEC = dict(
    path=dict(type="str", required=True),
    digest=dict(type="str", required=True),
    size=dict(type="int", required=True),
)


class ModelCacheManager(object):
    """Bring one model in a host's cache to the wanted state."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.cache = ModelCache(self.params["root"])
        self.reader = None
        if self.params["registry_url"]:
            self.reader = RegistryReader(
                self.params["registry_url"], self.params["repository"],
                username=self.params["registry_username"],
                password=self.params["registry_password"],
                ca_pem=self.params["registry_ca_pem"], ca_path=self.params["registry_ca_path"],
                validate_certs=self.params["validate_certs"], timeout=self.params["timeout"],
            )
        self.result = dict(changed=False, digest=None, path=None, bytes_fetched=0,
                           size_bytes=0, files=[])

    # -- what the model is -------------------------------------------------------------------
    def _model(self):
        """Return (digest, files) from the given files or the registry's manifest."""
        wanted = self.params["digest"]
        if wanted:
            digest_hex(wanted)
        if self.params["files"] is not None:
            return wanted, normalise_files(self.params["files"])
        body, digest = self.reader.manifest(self.params["reference"])
        if wanted and wanted != digest:
            raise ModelCacheError("%s:%s is %s, not the digest given (%s)" % (
                self.params["repository"], self.params["reference"], digest, wanted))
        return digest, files_from_manifest(body)

    def _name(self):
        if self.params["name"]:
            return self.params["name"]
        repository = self.params["repository"] or ""
        return repository[len("models/"):] if repository.startswith("models/") else repository

    def _describe(self, digest, files):
        self.result.update(digest=digest, path=self.cache.model_dir(digest),
                           size_bytes=sum(entry["size"] for entry in files))

    def _set_diff(self, before, after):
        if self.module._diff:
            self.result["diff"] = dict(
                before_header=self.result["path"], after_header=self.result["path"],
                before="".join(path + "\n" for path in before),
                after="".join(path + "\n" for path in after),
            )

    # -- present -----------------------------------------------------------------------------
    def _blob_state(self, entry):
        """Return what a blob needs: 'present', 'fetch' or 'repair'."""
        blob = self.cache.blob(entry["digest"])
        if not os.path.isfile(blob):
            return "fetch"
        if os.path.getsize(blob) != entry["size"]:
            return "repair"
        if self.params["verify"] and sha256_file(blob) != entry["digest"]:
            return "repair"
        return "present"

    def _plan(self, digest, files):
        """Return {blob digest: need} and each file with its status."""
        needs = {}
        for entry in files:
            if entry["digest"] not in needs:
                needs[entry["digest"]] = self._blob_state(entry)
        planned = []
        for entry in files:
            status = {"fetch": "fetched", "repair": "repaired"}.get(needs[entry["digest"]])
            if status is None:
                linked = self.cache.is_linked(entry["digest"], entry["path"], digest)
                status = "present" if linked else "linked"
            planned.append(dict(entry, status=status))
        return needs, planned

    def _bytes_to_fetch(self, needs, files):
        sizes = dict((entry["digest"], entry["size"]) for entry in files)
        total = 0
        for blob_digest, need in needs.items():
            if need == "present":
                continue
            partial = self.cache.partial(blob_digest)
            have = os.path.getsize(partial) if need == "fetch" and os.path.isfile(partial) else 0
            total += max(sizes[blob_digest] - min(have, sizes[blob_digest]), 0)
        return total

    def _check_space(self, needed):
        free = self.cache.free_bytes()
        if needed > free:
            raise ModelCacheError("the model needs %d bytes, %d free under %s" % (
                needed, free, self.cache.root))

    def _fetch(self, blob_digest, size, fresh):
        """Download one blob into .partial (resuming it), verify it, move it into place."""
        if self.reader is None:
            raise ModelCacheError("blob %s is not cached and no registry_url was given" % blob_digest)
        partial = self.cache.partial(blob_digest)
        if fresh and os.path.lexists(partial):
            os.unlink(partial)
        offset = os.path.getsize(partial) if os.path.isfile(partial) else 0
        if offset > size:
            os.unlink(partial)
            offset = 0
        if offset < size or not os.path.isfile(partial):
            self.result["bytes_fetched"] += self.reader.fetch_blob(blob_digest, partial, offset)
        got_size, got = os.path.getsize(partial), sha256_file(partial)
        if (got_size, got) != (size, blob_digest):
            os.unlink(partial)
            if offset:  # the kept part was bad: one more try from the start
                return self._fetch(blob_digest, size, True)
            raise ModelCacheError("blob %s from the registry has %s and %d bytes, not %d" % (
                blob_digest, got, got_size, size))
        os.chmod(partial, 0o644)
        os.rename(partial, self.cache.blob(blob_digest))
        return None

    def _relink_other_models(self, blob_digest, model_digest):
        """After a repair the blob is a new file: point other models' links at it too."""
        for name in os.listdir(self.cache.manifest_dir):
            if not name.startswith("sha256-") or not name.endswith(".json"):
                continue
            other = "sha256:" + name[len("sha256-"):-len(".json")]
            recorded = self.cache.read_manifest(other) if other != model_digest else None
            for entry in (recorded or {}).get("files") or []:
                if entry.get("digest") == blob_digest:
                    if not self.cache.is_linked(blob_digest, entry["path"], other):
                        self.cache.link(blob_digest, entry["path"], other)

    def _stray_files(self, digest, files):
        wanted = set(entry["path"] for entry in files)
        return [path for path in self.cache.folder_files(digest) if path not in wanted]

    def _manifest_current(self, digest, name, files):
        recorded = self.cache.read_manifest(digest) or {}
        return (recorded.get("digest"), recorded.get("name"), recorded.get("files")) == (
            digest, name, files)

    def present(self):
        digest, files = self._model()
        self._describe(digest, files)
        name = self._name()
        before = self.cache.folder_files(digest)
        needs, planned = self._plan(digest, files)
        stray = self._stray_files(digest, files)
        write_manifest = not self._manifest_current(digest, name, files)
        self.result["files"] = planned
        self.result["changed"] = bool(
            stray or write_manifest or any(entry["status"] != "present" for entry in planned))
        self._set_diff(before, sorted(entry["path"] for entry in files))
        self._check_space(self._bytes_to_fetch(needs, files))
        if self.module.check_mode or not self.result["changed"]:
            return
        self.cache.make_dirs()
        sizes = dict((entry["digest"], entry["size"]) for entry in files)
        for blob_digest, need in sorted(needs.items()):
            if need != "present":
                self._fetch(blob_digest, sizes[blob_digest], need == "repair")
            if need == "repair":
                self._relink_other_models(blob_digest, digest)
        for entry in planned:
            if entry["status"] != "present":
                self.cache.link(entry["digest"], entry["path"], digest)
        for path in stray:
            os.unlink(os.path.join(self.cache.model_dir(digest), *path.split("/")))
        if write_manifest or any(entry["status"] != "present" for entry in planned):
            self.cache.write_manifest(digest, name, files)

    # -- absent ------------------------------------------------------------------------------
    def absent(self):
        if self.params["digest"] and self.params["files"] is None:
            digest, files = self.params["digest"], None
            digest_hex(digest)
        else:
            digest, files = self._model()
        recorded = self.cache.read_manifest(digest)
        if recorded and isinstance(recorded.get("files"), list):
            files = normalise_files(recorded["files"])
        files = files or []
        self._describe(digest, files)
        before = self.cache.folder_files(digest)
        in_use = self.cache.digests_in_use(except_digest=digest)
        removable = set(entry["digest"] for entry in files) - in_use
        blobs_there = [d for d in removable if os.path.lexists(self.cache.blob(d))
                       or os.path.lexists(self.cache.partial(d))]
        model_there = os.path.lexists(self.cache.manifest_path(digest)) or os.path.isdir(
            self.cache.model_dir(digest))
        self.result["files"] = [
            dict(entry, status="removed" if entry["path"] in before else "absent")
            for entry in files
        ]
        self.result["changed"] = bool(model_there or blobs_there)
        self._set_diff(before, [])
        if self.module.check_mode:
            return
        self.cache.remove_model(digest)
        for blob_digest in blobs_there:
            self.cache.remove_blob(blob_digest)


def main():
    argument_spec = dict(
        digest=dict(type="str"),
        name=dict(type="str"),
        files=dict(type="list", elements="dict", options=FILE_SPEC),
        registry_url=dict(type="str"),
        repository=dict(type="str"),
        reference=dict(type="str", aliases=["tag"]),
        registry_username=dict(type="str"),
        registry_password=dict(type="str", no_log=True),
        registry_ca_pem=dict(type="str"),
        registry_ca_path=dict(type="path"),
        validate_certs=dict(type="bool", default=True),
        timeout=dict(type="int", default=60),
        root=dict(type="path", default=DEFAULT_ROOT),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        verify=dict(type="bool", default=True),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=[("files", "reference"), ("registry_ca_pem", "registry_ca_path")],
        required_together=[("registry_url", "repository")],
        required_by={"files": "digest", "reference": ("registry_url", "repository")},
        required_if=[
            ("state", "present", ("reference", "files"), True),
            ("state", "absent", ("reference", "files", "digest"), True),
        ],
        supports_check_mode=True,
    )
    manager = None
    try:
        manager = ModelCacheManager(module)
        getattr(manager, module.params["state"])()
    except (ModelCacheError, OSError) as error:
        known = dict(manager.result) if manager is not None else {}
        module.fail_json(msg=str(error), **known)
    module.exit_json(**manager.result)


if __name__ == "__main__":
    main()
