"""The configuration document: schema validation and the typed view the addons use."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from proxy.config import ConfigError, parse_config, schema

HASH = "a" * 64


def document(**overrides) -> dict:
    doc = {
        "version": 3,
        "etag": "abc",
        "pools": [{"name": "web", "replicas": [{"url": "http://10.0.0.1:8000"},
                                               {"url": "https://10.0.0.2", "id": "r2"}]}],
        "routes": [
            {"name": "catch-all", "pool": "web"},
            {"name": "api", "hosts": ["App.Example.com"], "path_prefix": "/api", "pool": "web"},
            {"name": "docs", "hosts": ["app.example.com"], "path_prefix": "/", "pool": "web"},
        ],
        "models": [{"name": "llama", "aliases": ["l3"], "replicas": [{"url": "http://10.0.0.3:8000"}]}],
        "keys": [{"id": "k1", "sha256": HASH, "models": ["llama"], "expires_at": "2030-01-01T00:00:00Z",
                  "rpm": 10, "budget": {"tokens": 1000, "period": "day"}}],
    }  # fmt: skip
    doc.update(overrides)
    return doc


def test_document_becomes_typed_config():
    config = parse_config(document())
    assert (config.version, config.etag) == (3, "abc")
    assert [r.name for r in config.routes] == ["api", "docs", "catch-all"]
    assert config.routes[0].hosts == ("app.example.com",)
    first, second = config.pools["web"].replicas
    assert (first.id, first.scheme, first.host, first.port) == (
        "http://10.0.0.1:8000",
        "http",
        "10.0.0.1",
        8000,
    )
    assert (second.id, second.port) == ("r2", 443)
    assert config.resolve_model("l3") is config.models["llama"]
    assert config.models["llama"].pool == "model:llama"
    key = config.keys_by_hash[HASH]
    assert key.expires_at == datetime(2030, 1, 1, tzinfo=UTC)
    assert key.allows("llama") and not key.allows("other")
    assert key.budget is not None and key.budget.period == "day"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"routes": [{"name": "r", "pool": "nowhere"}]}, "unknown pool 'nowhere'"),
        ({"keys": [{"id": "k", "sha256": "ABC"}]}, "keys/0/sha256"),
        ({"keys": [{"id": "k", "sha256": HASH, "expires_at": "2030-01-01T00:00:00"}]}, "time zone"),
        (
            {
                "models": [
                    {"name": "a", "aliases": ["b"], "replicas": []},
                    {"name": "b", "replicas": []},
                ]
            },
            "used twice",
        ),
        ({"models": [{"name": "a", "pool": "missing"}]}, "unknown pool 'missing'"),
        ({"models": [{"name": "a"}]}, "models/0"),
        ({"pools": [{"name": "p", "strategy": "random", "replicas": []}]}, "pools/0/strategy"),
        ({"models": [{"name": "a", "replicas": [], "fallbacks": ["a"]}]}, "fall back to itself"),
        ({"models": [{"name": "a", "replicas": [], "fallbacks": ["b"]}]}, "unknown model 'b'"),
        (
            {
                "models": [
                    {"name": "a", "replicas": [], "fallbacks": ["b"]},
                    {"name": "b", "aliases": ["bee"], "replicas": [], "fallbacks": ["c"]},
                    {"name": "c", "replicas": [], "fallbacks": ["bee"]},
                ]
            },
            "unknown model 'bee'",  # fallbacks name models, not aliases
        ),
        (
            {
                "models": [
                    {"name": "a", "replicas": [], "fallbacks": ["b"]},
                    {"name": "b", "replicas": [], "fallbacks": ["c"]},
                    {"name": "c", "replicas": [], "fallbacks": ["a"]},
                ]
            },
            "a cycle a -> b -> c -> a",
        ),
        (
            {
                "models": [
                    {"name": "a", "replicas": []},
                    {"name": "b", "replicas": [], "fallbacks": ["a", "a"]},
                ]
            },
            "models/1/fallbacks",
        ),
        ({"keys": [{"id": "k", "sha256": HASH, "project": "7"}]}, "keys/k/project: unknown"),
        ({"projects": [{"id": "7"}, {"id": "7", "rpm": 1}]}, "projects/7: the id is used twice"),
        ({"projects": [{"id": "7", "rpm": -1}]}, "projects/0/rpm"),
        ({"surprise": 1}, "Additional properties"),
        ({"version": "one"}, "version"),
    ],
)
def test_invalid_documents_say_what_is_wrong(change, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(document(**change))


def test_keys_name_their_project_and_its_quotas():
    keys = [{"id": "k1", "sha256": HASH, "rpm": 5, "project": "7"},
            {"id": "k2", "sha256": "b" * 64, "project": "7"}]  # fmt: skip
    projects = [{"id": "7", "name": "team-a", "rpm": 60, "tokens_per_day": 1000}]
    config = parse_config(document(keys=keys, projects=projects))
    one, two = config.keys_by_hash[HASH], config.keys_by_hash["b" * 64]
    assert one.project is two.project and one.project.name == "team-a"
    assert [q.counter for q in one.quotas] == ["limit:k1", "limit-project:7"]
    team = two.quotas[0]
    assert (team.rpm, team.tpm, team.project) == (60, None, "team-a")
    assert [(b.tokens, b.period) for b in team.budgets] == [(1000, "day")]


def test_fallbacks_are_kept_in_order():
    models = [
        {"name": "a", "replicas": [], "fallbacks": ["c", "b"]},
        {"name": "b", "replicas": [], "fallbacks": ["c"]},
        {"name": "c", "replicas": []},
    ]
    config = parse_config(document(models=models))
    assert config.models["a"].fallbacks == ("c", "b")
    assert config.models["c"].fallbacks == ()


def test_schema_in_the_package_is_the_one_in_the_repo():
    on_disk = json.loads((Path(__file__).parents[2] / "proxy" / "config.schema.json").read_text())
    assert schema() == on_disk
    assert on_disk["$defs"]["gateway_key"]["properties"]["sha256"]["pattern"] == "^[0-9a-f]{64}$"


def test_worker_command_replaces_workers_and_admin_port():
    from proxy.workers import worker_command

    argv = ["--config-file", "c.json", "--workers", "3", "--admin-port=9000", "--listen-port", "80"]
    command = worker_command(argv, 2, 9000)
    assert command[3:] == ["--config-file", "c.json", "--listen-port", "80", "--reuse-port",
                           "--admin-port", "9002", "--worker-index", "2"]  # fmt: skip


def test_a_document_of_another_contract_major_is_refused_before_its_schema():
    from proxy import CONFIG_CONTRACT

    assert parse_config(document(contract=CONFIG_CONTRACT)).version == 3
    assert parse_config(document(contract="1.7")).version == 3  # a newer minor only adds
    # a 2.0 document may not even match this schema: the contract is what the error names
    with pytest.raises(ConfigError, match=r"incompatible config document: contract 2\.0"):
        parse_config(document(contract="2.0", surprise=1))


def test_the_proxy_names_its_contract_and_refuses_a_portal_of_another_major():
    import httpx

    from proxy import CONFIG_CONTRACT
    from proxy.sources import CONTRACT_HEADER, PortalSource

    source = PortalSource("http://portal.invalid", "t", None, "c")
    assert source.headers[CONTRACT_HEADER] == CONFIG_CONTRACT
    request = httpx.Request("GET", "http://portal.invalid/api/v1/proxy/config")

    def answer(status: int, headers: dict[str, str], body: dict) -> httpx.Response:
        return httpx.Response(status, headers=headers, json=body, request=request)

    # a portal from before contracts (no header) and one of this major are followed
    assert source._accept(answer(200, {}, document())) is not None
    assert source._accept(answer(200, {CONTRACT_HEADER: "1.1"}, document())) is not None
    # a portal of another major, or one refusing this proxy (409), leaves the config as it is
    assert source._accept(answer(200, {CONTRACT_HEADER: "2.0"}, document())) is None
    assert source._accept(answer(409, {}, {"message": "Incompatible proxy"})) is None
