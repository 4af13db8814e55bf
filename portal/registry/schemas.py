"""Marshmallow schemas of the registry API. Passwords are load-only, never dumped."""

from __future__ import annotations

import marshmallow as ma

from portal.core.addresses import validate_base_url
from portal.core.converters import MAX_DATABASE_ID
from portal.core.fields import PartialLoad, UtcDateTime

NAME = ma.validate.Regexp(
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$",
    error="Use letters, digits, '.', '_' and '-' (up to 120), starting with a letter or digit.",
)
URL = validate_base_url
# Docker's repository grammar: lowercase path components separated by '/'.
REPOSITORY_PATTERN = r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$"
REPOSITORY_ERROR = "Not a repository name (lowercase letters, digits, '.', '_', '-', '/')."
REPOSITORY = ma.validate.Regexp(REPOSITORY_PATTERN, error=REPOSITORY_ERROR)
REFERENCE_PATTERN = r"^[\w][\w.-]{0,127}$|^sha256:[a-f0-9]{64}$"
REFERENCE_ERROR = "Give a tag or a sha256 digest."
IMAGE = ma.validate.Regexp(
    r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,510}$", error="Give an image reference like name:tag."
)


def _pem(value: str) -> None:
    if "-----BEGIN CERTIFICATE-----" not in value:
        raise ma.ValidationError("Paste the CA certificate in PEM form (-----BEGIN CERTIFICATE).")


class RegistryWriteSchema(ma.Schema):
    name = ma.fields.String(required=True, validate=NAME)
    url = ma.fields.String(required=True, validate=URL)
    username = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=255))
    password = ma.fields.String(
        allow_none=True, load_only=True, validate=ma.validate.Length(max=1024)
    )
    ca_pem = ma.fields.String(allow_none=True, validate=_pem)

    @ma.post_load
    def strip_url(self, data: dict, **_: object) -> dict:
        if "url" in data:
            data["url"] = data["url"].rstrip("/")
        return data


class RegistryPatchSchema(PartialLoad, RegistryWriteSchema):
    """Every field optional: a PATCH changes only what it names."""


class RegistrySchema(ma.Schema):
    id = ma.fields.Integer()
    name = ma.fields.String()
    kind = ma.fields.String(metadata={"description": "spectr (deployed by Spectr) or external"})
    url = ma.fields.String()
    address = ma.fields.String()
    username = ma.fields.String(allow_none=True)
    has_password = ma.fields.Boolean()
    ca_pem = ma.fields.String(allow_none=True)
    deployed_on_host_id = ma.fields.Integer(allow_none=True)
    last_checked_at = UtcDateTime(allow_none=True)
    last_check_ok = ma.fields.Boolean(allow_none=True)
    last_check_message = ma.fields.String(allow_none=True)
    created_at = UtcDateTime()


class CheckResultSchema(ma.Schema):
    ok = ma.fields.Boolean()
    message = ma.fields.String()
    api_version = ma.fields.String(allow_none=True)
    checked_at = UtcDateTime()


class CursorQuerySchema(ma.Schema):
    n = ma.fields.Integer(load_default=100, validate=ma.validate.Range(1, 1000))
    last = ma.fields.String(load_default=None, validate=ma.validate.Length(max=512))


class RepositoryPathSchema(ma.Schema):
    repository = ma.fields.String(required=True, validate=REPOSITORY)


class NamesPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.String())
    next_last = ma.fields.String(
        allow_none=True, metadata={"description": "pass as `last` for the next page"}
    )


class ManifestSchema(ma.Schema):
    repository = ma.fields.String()
    reference = ma.fields.String()
    digest = ma.fields.String()
    media_type = ma.fields.String()
    size = ma.fields.Integer(metadata={"description": "bytes of config and layers"})
    created = ma.fields.String(allow_none=True)
    platforms = ma.fields.List(ma.fields.String())
    layers = ma.fields.Integer()


class DeletedTagSchema(ma.Schema):
    repository = ma.fields.String()
    tag = ma.fields.String()
    digest = ma.fields.String()


class DeploySchema(ma.Schema):
    host_id = ma.fields.Integer(
        required=True,
        validate=ma.validate.Range(1, MAX_DATABASE_ID),
        metadata={"description": "the host to run it on (the Spectr node is host 'spectr-node')"},
    )
    address = ma.fields.String(
        load_default=None,
        validate=ma.validate.Regexp(r"^[A-Za-z0-9.-]+:\d{1,5}$", error="Give host:port."),
        metadata={"description": "host:port hosts pull from (default: the host's address)"},
    )
    port = ma.fields.Integer(load_default=5000, validate=ma.validate.Range(1, 65535))
    service_name = ma.fields.String(load_default="spectr-registry", validate=NAME)
    config_dir = ma.fields.String(
        load_default="/etc/spectr-registry", validate=ma.validate.Regexp(r"^/[\w./-]+$")
    )
    storage_path = ma.fields.String(
        load_default="/var/lib/spectr-registry", validate=ma.validate.Regexp(r"^/[\w./-]+$")
    )
    service_manager = ma.fields.String(
        load_default="auto", validate=ma.validate.OneOf(("auto", "systemd", "direct"))
    )
    gc_schedule = ma.fields.String(
        load_default="30 3 * * 0", validate=ma.validate.Regexp(r"^[\d*/,\- ]*$")
    )
    extra_names = ma.fields.List(
        ma.fields.String(validate=ma.validate.Regexp(r"^[A-Za-z0-9.:-]+$")), load_default=list
    )


class MirrorSchema(ma.Schema):
    source = ma.fields.String(
        required=True,
        validate=IMAGE,
        metadata={"description": "repository:tag in the source registry, or a local image"},
    )
    source_registry_id = ma.fields.Integer(
        load_default=None, metadata={"description": "empty: the Spectr node's Docker engine"}
    )
    target = ma.fields.String(
        load_default=None, validate=IMAGE, metadata={"description": "repository:tag in Spectr's"}
    )


class ImportQuerySchema(ma.Schema):
    repository = ma.fields.String(
        load_default=None,
        validate=REPOSITORY,
        metadata={"description": "push under this repository instead of the archive's names"},
    )
    keep_local = ma.fields.Boolean(load_default=False)


class AccessSchema(ma.Schema):
    host_ids = ma.fields.List(
        ma.fields.Integer(validate=ma.validate.Range(1, 2**63 - 1)),
        required=True,
        validate=ma.validate.Length(1, 500),
    )
