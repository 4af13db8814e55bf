"""Unit tests of the registry client's parsing, paging and token flow, and archive names."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import httpx
import pytest

from portal.core.operations.kinds import PermanentError
from portal.registry.client import (
    Credentials,
    RegistryClient,
    next_last_from_link,
    parse_challenge,
)
from portal.registry.engine_images import archive_tags, repository_path, trust_registry_ca
from portal.registry.errors import RegistryAuthFailed


def test_parse_challenge_reads_bearer_parameters() -> None:
    scheme, params = parse_challenge(
        'Bearer realm="https://harbor.internal/service/token",service="harbor-registry",'
        'scope="repository:team/app:pull"'
    )
    assert scheme == "bearer"
    assert params == {"realm": "https://harbor.internal/service/token",
                      "service": "harbor-registry", "scope": "repository:team/app:pull"}  # fmt: skip


def test_next_page_cursor_comes_from_the_link_header() -> None:
    link = '</v2/team/app/tags/list?last=v19&n=20>; rel="next"'
    assert next_last_from_link(link) == "v19"
    assert next_last_from_link(None) is None
    assert next_last_from_link('</v2/_catalog?n=5>; rel="prev"') is None


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("nginx", ("nginx", "latest")),
        ("team/app:1.2", ("team/app", "1.2")),
        ("registry.internal:5000/team/app:v3", ("team/app", "v3")),
        ("localhost/tool:x", ("tool", "x")),
        ("127.0.0.1:5000/a:b", ("a", "b")),
    ],
)
def test_repository_path_drops_the_registry_part(reference: str, expected: tuple) -> None:
    assert repository_path(reference) == expected


def test_archive_tags_reads_manifest_json_and_rejects_other_files(tmp_path: Path) -> None:
    archive = tmp_path / "image.tar"
    manifest = json.dumps([{"Config": "c.json", "RepoTags": ["team/app:1", "team/app:latest"],
                            "Layers": []}]).encode()  # fmt: skip
    with tarfile.open(archive, "w") as packed:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        packed.addfile(info, io.BytesIO(manifest))
    assert archive_tags(archive) == ["team/app:1", "team/app:latest"]
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"\x00" * 10)
    with pytest.raises(PermanentError, match="not an image archive"):
        archive_tags(junk)


def test_trust_registry_ca_writes_certs_d_once(tmp_path: Path) -> None:
    assert "now trusts" in trust_registry_ca("10.0.0.5:5000", "PEM", certs_dir=tmp_path)
    assert (tmp_path / "10.0.0.5:5000" / "ca.crt").read_text() == "PEM"
    assert "already trusts" in trust_registry_ca("10.0.0.5:5000", "PEM", certs_dir=tmp_path)


def token_registry(accepted_password: str) -> httpx.MockTransport:
    """Stands in for Harbor / GitLab's registry and token service, which cannot run here."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/service/token":
            if (
                request.headers.get("authorization")
                != httpx.BasicAuth("robot", accepted_password)._auth_header
            ):
                return httpx.Response(401)
            scope = request.url.params["scope"]
            return httpx.Response(200, json={"token": f"token-for-{scope}"})
        if request.headers.get("authorization") == "Bearer token-for-repository:team/app:pull":
            return httpx.Response(200, json={"name": "team/app", "tags": ["v1", "v2", "v3"]})
        challenge = ('Bearer realm="https://harbor.test/service/token",service="harbor",'
                     'scope="repository:team/app:pull"')  # fmt: skip
        return httpx.Response(401, headers={"www-authenticate": challenge})

    return httpx.MockTransport(handle)


def client_with(transport: httpx.MockTransport, password: str) -> RegistryClient:
    client = RegistryClient(Credentials("https://harbor.test", "robot", password))
    client._http._transport = transport  # the stand-in above instead of the network
    return client


def test_bearer_token_flow_gets_a_scoped_token_and_pages_locally() -> None:
    with client_with(token_registry("right"), "right") as client:
        page = client.tags("team/app", n=2)
        assert page.items == ["v1", "v2"] and page.next_last == "v2"
        assert client.tags("team/app", n=2, last="v2").items == ["v3"]


def test_bearer_token_flow_with_a_wrong_password_says_401() -> None:
    client = client_with(token_registry("right"), "wrong")
    with client, pytest.raises(RegistryAuthFailed, match="refused the credentials"):
        client.tags("team/app")
