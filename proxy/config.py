"""The proxy's configuration document: validation against the JSON schema and typed views."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache, cached_property
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import jsonschema

from proxy import CONFIG_CONTRACT_MAJORS


class ConfigError(ValueError):
    """The configuration document is invalid."""


@dataclass(frozen=True)
class Replica:
    id: str
    scheme: str
    host: str
    port: int
    health: str = "unknown"

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def hostport(self) -> str:
        """Return the Host header for this replica (port omitted when it is the default)."""
        default = 443 if self.scheme == "https" else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class HealthCheck:
    path: str = "/health"
    interval_s: float = 2.0
    timeout_s: float = 1.0


@dataclass(frozen=True)
class Pool:
    name: str
    replicas: tuple[Replica, ...]
    strategy: str = "round_robin"
    health_check: HealthCheck | None = None
    down_for_s: float = 5.0


@dataclass(frozen=True)
class TlsCert:
    cert_file: str
    key_file: str


@dataclass(frozen=True)
class Route:
    name: str
    pool: str
    hosts: tuple[str, ...] = ("*",)
    path_prefix: str = "/"
    strip_prefix: bool = False
    timeout_s: float = 60.0
    retries: int = 1
    tls: TlsCert | None = None


@dataclass(frozen=True)
class Model:
    name: str
    pool: str
    upstream_model: str
    # Other models tried, in order, when every replica of this one failed or answered 429.
    fallbacks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Budget:
    tokens: int
    period: str


@dataclass(frozen=True)
class Quota:
    """Limits counted together in Redis: a key's own, or a project's that all its keys share.

    None is no limit; 0 (a project's) allows nothing.
    """

    counter: str  # the counters' name under the prefix: "limit:<key id>", "limit-project:<id>"
    rpm: int | None = None
    tpm: int | None = None
    budgets: tuple[Budget, ...] = ()
    project: str = ""  # the project's name, when this is a project's quota

    @property
    def limited(self) -> bool:
        return self.rpm is not None or self.tpm is not None or bool(self.budgets)


@dataclass(frozen=True)
class Project:
    """A project owning keys, with the gateway quotas its keys share."""

    id: str
    name: str = ""
    rpm: int | None = None
    tokens_per_day: int | None = None
    tokens_per_month: int | None = None

    @cached_property
    def quota(self) -> Quota:
        tokens = ((self.tokens_per_day, "day"), (self.tokens_per_month, "month"))
        budgets = tuple(Budget(limit, period) for limit, period in tokens if limit is not None)
        return Quota(f"limit-project:{self.id}", self.rpm, None, budgets, self.name or self.id)


@dataclass(frozen=True)
class GatewayKey:
    id: str
    sha256: str
    user: str = ""
    models: frozenset[str] = frozenset({"*"})
    expires_at: datetime | None = None
    rpm: int | None = None
    tpm: int | None = None
    budget: Budget | None = None
    project: Project | None = None

    def allows(self, model: str) -> bool:
        return "*" in self.models or model in self.models

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    @cached_property
    def own_quota(self) -> Quota:
        budgets = (self.budget,) if self.budget else ()
        return Quota(f"limit:{self.id}", self.rpm, self.tpm, budgets)

    @cached_property
    def quotas(self) -> tuple[Quota, ...]:
        """The limits a request of this key counts against: its own, then its project's."""
        found = (self.own_quota, self.project.quota if self.project else Quota(""))
        return tuple(quota for quota in found if quota.limited)


@dataclass(frozen=True)
class Gateway:
    hosts: tuple[str, ...] = ("*",)
    timeout_s: float = 600.0
    retries: int = 1
    tls: TlsCert | None = None


@dataclass(frozen=True)
class ProxyConfig:
    version: int
    etag: str = ""
    gateway: Gateway = field(default_factory=Gateway)
    pools: dict[str, Pool] = field(default_factory=dict)
    routes: tuple[Route, ...] = ()
    models: dict[str, Model] = field(default_factory=dict)
    model_names: dict[str, str] = field(default_factory=dict)
    keys_by_hash: dict[str, GatewayKey] = field(default_factory=dict)

    def resolve_model(self, requested: str) -> Model | None:
        """Return the model a name or alias refers to."""
        name = self.model_names.get(requested)
        return self.models[name] if name else None


@cache
def schema() -> dict[str, Any]:
    """Return the JSON schema of the configuration document."""
    text = resources.files("proxy").joinpath("config.schema.json").read_text()
    return json.loads(text)


def contract_problem(contract: str | None, what: str = "config document") -> str | None:
    """Why this proxy refuses a document (or a portal) of this contract; None when it speaks it.

    No contract means 1.0: documents and portals from before contracts were versioned.
    """
    contract = contract or "1.0"
    major, _, minor = contract.partition(".")
    if major.isdigit() and minor.isdigit() and int(major) in CONFIG_CONTRACT_MAJORS:
        return None
    speaks = ", ".join(f"{m}.x" for m in CONFIG_CONTRACT_MAJORS)
    return (
        f"incompatible {what}: contract {contract[:20]}, this proxy speaks {speaks}; "
        "install the proxy of the portal's version"
    )


def parse_config(document: dict[str, Any]) -> ProxyConfig:
    """Validate a configuration document and build its typed view."""
    problem = contract_problem(document.get("contract"))
    if problem:  # checked first: a document of another major may not match this schema at all
        raise ConfigError(problem)
    errors = sorted(
        jsonschema.Draft202012Validator(schema()).iter_errors(document), key=lambda e: e.path
    )
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "(document)"
        raise ConfigError(f"{where}: {errors[0].message}")
    pools = {p["name"]: _pool(p) for p in document.get("pools", [])}
    models: dict[str, Model] = {}
    for raw in document.get("models", []):
        model = _model(raw, pools)
        models[model.name] = model
    _check_fallbacks(models)
    routes = tuple(_route(r) for r in document.get("routes", []))
    for route in routes:
        if route.pool not in pools:
            raise ConfigError(f"routes/{route.name}: unknown pool {route.pool!r}")
    projects = _projects(document.get("projects", []))
    keys = [_key(k, projects) for k in document.get("keys", [])]
    return ProxyConfig(
        version=document["version"],
        etag=document.get("etag", ""),
        gateway=_gateway(document.get("gateway", {})),
        pools=pools,
        routes=_by_specificity(routes),
        models=models,
        model_names=_model_names(document.get("models", [])),
        keys_by_hash={k.sha256: k for k in keys},
    )


def _replica(raw: dict[str, Any]) -> Replica:
    url = urlsplit(raw["url"])
    port = url.port or (443 if url.scheme == "https" else 80)
    return Replica(
        id=raw.get("id") or raw["url"].rstrip("/"),
        scheme=url.scheme,
        host=url.hostname or "",
        port=port,
        health=raw.get("health", "unknown"),
    )


def _pool(raw: dict[str, Any]) -> Pool:
    check = raw.get("health_check")
    return Pool(
        name=raw["name"],
        replicas=tuple(_replica(r) for r in raw["replicas"]),
        strategy=raw.get("strategy", "round_robin"),
        health_check=HealthCheck(**check) if check is not None else None,
        down_for_s=raw.get("down_for_s", 5.0),
    )


def _model(raw: dict[str, Any], pools: dict[str, Pool]) -> Model:
    if "replicas" in raw:
        pool_name = f"model:{raw['name']}"
        pools[pool_name] = Pool(
            name=pool_name,
            replicas=tuple(_replica(r) for r in raw["replicas"]),
            strategy=raw.get("strategy", "least_connections"),
        )
    else:
        pool_name = raw["pool"]
        if pool_name not in pools:
            raise ConfigError(f"models/{raw['name']}: unknown pool {pool_name!r}")
    return Model(
        raw["name"],
        pool_name,
        raw.get("upstream_model", raw["name"]),
        tuple(raw.get("fallbacks", ())),
    )


def _check_fallbacks(models: dict[str, Model]) -> None:
    """Refuse fallbacks that name no model (aliases do not count), the model itself, or a cycle."""
    for model in models.values():
        for name in model.fallbacks:
            if name == model.name:
                raise ConfigError(
                    f"models/{model.name}/fallbacks: a model cannot fall back to itself"
                )
            if name not in models:
                raise ConfigError(f"models/{model.name}/fallbacks: unknown model {name!r}")
    cycle = fallback_cycle({m.name: m.fallbacks for m in models.values()})
    if cycle:
        raise ConfigError(f"models/{cycle[0]}/fallbacks: a cycle {' -> '.join(cycle)}")


def fallback_cycle(fallbacks: dict[str, tuple[str, ...]]) -> list[str]:
    """Return one cycle among the models' fallbacks (its names, the first repeated last), or []."""
    done: set[str] = set()
    path: list[str] = []

    def visit(name: str) -> list[str]:
        path.append(name)
        for after in fallbacks.get(name, ()):
            if after in path:
                return [*path[path.index(after) :], after]
            if after not in done:
                found = visit(after)
                if found:
                    return found
        path.pop()
        done.add(name)
        return []

    for name in fallbacks:
        found = [] if name in done else visit(name)
        if found:
            return found
    return []


def _model_names(raw_models: list[dict[str, Any]]) -> dict[str, str]:
    names: dict[str, str] = {}
    for raw in raw_models:
        for name in [raw["name"], *raw.get("aliases", [])]:
            if name in names:
                raise ConfigError(f"models/{raw['name']}: name or alias {name!r} is used twice")
            names[name] = raw["name"]
    return names


def _route(raw: dict[str, Any]) -> Route:
    tls = raw.get("tls")
    return Route(
        name=raw["name"],
        pool=raw["pool"],
        hosts=tuple(h.lower() for h in raw.get("hosts", ["*"])),
        path_prefix=raw.get("path_prefix", "/"),
        strip_prefix=raw.get("strip_prefix", False),
        timeout_s=raw.get("timeout_s", 60.0),
        retries=raw.get("retries", 1),
        tls=TlsCert(**tls) if tls else None,
    )


def _by_specificity(routes: tuple[Route, ...]) -> tuple[Route, ...]:
    """Order routes so the first match is the most specific (exact host, longest prefix)."""
    return tuple(sorted(routes, key=lambda r: ("*" in r.hosts, -len(r.path_prefix))))


def _projects(raw_projects: list[dict[str, Any]]) -> dict[str, Project]:
    projects: dict[str, Project] = {}
    for raw in raw_projects:
        if raw["id"] in projects:
            raise ConfigError(f"projects/{raw['id']}: the id is used twice")
        projects[raw["id"]] = Project(**raw)
    return projects


def _key(raw: dict[str, Any], projects: dict[str, Project]) -> GatewayKey:
    budget = raw.get("budget")
    expires = raw.get("expires_at")
    project = raw.get("project")
    if project is not None and project not in projects:
        raise ConfigError(f"keys/{raw['id']}/project: unknown project {project!r}")
    return GatewayKey(
        id=raw["id"],
        sha256=raw["sha256"],
        user=raw.get("user", ""),
        models=frozenset(raw.get("models", ["*"])),
        expires_at=_timestamp(expires, raw["id"]) if expires else None,
        rpm=raw.get("rpm"),
        tpm=raw.get("tpm"),
        budget=Budget(**budget) if budget else None,
        project=projects[project] if project is not None else None,
    )


def _timestamp(text: str, key_id: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"keys/{key_id}/expires_at: not an ISO 8601 time: {text!r}") from exc
    if value.tzinfo is None:
        raise ConfigError(f"keys/{key_id}/expires_at: needs a time zone: {text!r}")
    return value


def _gateway(raw: dict[str, Any]) -> Gateway:
    tls = raw.get("tls")
    return Gateway(
        hosts=tuple(h.lower() for h in raw.get("hosts", ["*"])),
        timeout_s=raw.get("timeout_s", 600.0),
        retries=raw.get("retries", 1),
        tls=TlsCert(**tls) if tls else None,
    )
