"""Settings from SPECTR_* environment variables, on top of embedded defaults.

With nothing set, Spectr runs embedded: SQLite database, SQLite huey queue and a secret key in
the instance folder, and the worker inside the web process. Every variable is listed in the
README's configuration table; `DEFAULTS` is that table's source of truth.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask

DEFAULTS: dict[str, Any] = {
    "DATABASE_URL": None,  # default: sqlite:///<instance>/spectr.db
    "REDIS_URL": None,  # default: embedded SqliteHuey at <instance>/queue.db
    "QUEUE_NAME": "spectr",
    "EMBEDDED_WORKER": None,  # default: on when REDIS_URL is unset
    "WORKER_THREADS": 4,
    "OPERATION_LEASE_SECONDS": 30,
    "OPERATION_REQUEUE_AFTER_SECONDS": 30,
    "OPERATION_MAX_ATTEMPTS": 3,
    "OPERATION_RETRY_BASE_SECONDS": 2.0,
    "OPERATION_RETRY_MAX_SECONDS": 300.0,
    "RECOVERY_INTERVAL_SECONDS": 5.0,
    "CALLBACK_TIMEOUT_SECONDS": 5.0,
    # Callbacks and webhooks never go to link-local / cloud metadata, multicast, unspecified or
    # reserved networks; an allow-list, when set, is the only place they may go.
    "OUTBOUND_DENY_NETWORKS": "169.254.0.0/16,fe80::/10,100.100.100.200/32,fd00:ec2::254/128,"
    "0.0.0.0/8,::/128,224.0.0.0/4,ff00::/8,240.0.0.0/4",
    "OUTBOUND_ALLOW_NETWORKS": "",
    "TOKEN_DEFAULT_DAYS": 90,
    "PROXY_REDIS_PREFIX": "spectr:",
    "LOG_LEVEL": "INFO",
    "SESSION_COOKIE_SECURE": False,
    "ENCRYPTION_KEYS": None,  # default: a generated encryption.key in the instance folder
    "MODELS_DIR": "/var/lib/spectr/models",  # the Spectr node's own model cache
    "MODEL_DISTRIBUTION_PARALLEL": 4,  # hosts fetching a model at the same time
    "MAX_REQUEST_BYTES": 1024 * 1024,  # request bodies, except the streaming uploads
    # Quiet Server-Sent Events streams (followed logs, live status) send a comment this often;
    # one read from an engine's log may wait this long before the follower opens it again.
    "SSE_HEARTBEAT_SECONDS": 15.0,
    "LOG_READ_TIMEOUT_SECONDS": 60.0,
    "CONSOLE_IDLE_SECONDS": 900.0,
    "GPU_HISTORY_HOURS": 24.0,  # GPU readings of each sweep kept this long for the host charts
    # Which ContainerEngine reaches a host, by host name: "gpu-7=podman,*=agent" (`*`: every
    # SSH host not named). Unset: the Spectr node's local socket, the agent everywhere else.
    # Names other than docker and agent come from installed packages (portal/core/plugins.py).
    "HOST_ENGINES": "",
    "PROVISIONER": "ansible-runner",  # runs the collection's playbooks
    # Where Spectr's registry (images and model artifacts) stores blobs: filesystem or s3, an
    # S3-compatible bucket (AWS, MinIO, Ceph); read when the registry is deployed.
    "REGISTRY_STORAGE": "filesystem",
    "REGISTRY_S3_BUCKET": "",
    "REGISTRY_S3_ENDPOINT": "",  # unset for AWS
    "REGISTRY_S3_REGION": "us-east-1",
    "REGISTRY_S3_ACCESS_KEY": "",
    "REGISTRY_S3_SECRET_KEY": "",
}


def load_config(app: Flask, test_config: dict[str, Any] | None) -> None:
    """Fill app.config: defaults, then SPECTR_* variables, then the test mapping."""
    for name, value in DEFAULTS.items():
        app.config.setdefault(f"SPECTR_{name}", value)
    app.config.from_prefixed_env("SPECTR", loads=_parse_env_value)
    # from_prefixed_env strips the prefix; keep both spellings reachable under SPECTR_*.
    for name in DEFAULTS:
        if name in app.config:
            app.config[f"SPECTR_{name}"] = app.config.pop(name)
    if test_config:
        app.config.update(test_config)
    _apply_embedded_defaults(app)
    from portal.core.outbound import check_settings

    check_settings(app.config)


def _parse_env_value(raw: str) -> Any:
    """Read numbers and booleans from the environment; leave other text as it is."""
    lowered = raw.strip().lower()
    if lowered in {"true", "yes", "on"}:
        return True
    if lowered in {"false", "no", "off"}:
        return False
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            continue
    return raw


def _apply_embedded_defaults(app: Flask) -> None:
    instance = Path(app.instance_path)
    app.config["SPECTR_INSTANCE_PATH_RESOLVED"] = str(instance)
    instance.mkdir(parents=True, exist_ok=True, mode=0o700)
    cfg = app.config
    if not cfg.get("SPECTR_DATABASE_URL"):
        cfg["SPECTR_DATABASE_URL"] = default_database_url(instance)
    cfg["SQLALCHEMY_DATABASE_URI"] = cfg["SPECTR_DATABASE_URL"]
    cfg.setdefault("SQLALCHEMY_ENGINE_OPTIONS", _engine_options(cfg["SPECTR_DATABASE_URL"]))
    if cfg.get("SPECTR_EMBEDDED_WORKER") is None:
        cfg["SPECTR_EMBEDDED_WORKER"] = not cfg.get("SPECTR_REDIS_URL")
    if not cfg.get("SECRET_KEY"):
        cfg["SECRET_KEY"] = read_or_create_instance_key(instance / "secret_key")
    cfg.setdefault("SESSION_COOKIE_HTTPONLY", True)
    # Flask's defaults hold the key (None), so setdefault would keep None.
    cfg["SESSION_COOKIE_SAMESITE"] = cfg.get("SESSION_COOKIE_SAMESITE") or "Lax"
    cfg["SESSION_COOKIE_SECURE"] = bool(cfg.get("SPECTR_SESSION_COOKIE_SECURE"))
    cfg.setdefault("WTF_CSRF_CHECK_DEFAULT", False)  # checked in core.security for sessions only
    cfg.setdefault("WTF_CSRF_TIME_LIMIT", None)


def default_database_url(instance: Path) -> str:
    """The embedded database: a SQLite file in the instance folder."""
    return f"sqlite:///{instance / 'spectr.db'}"


def _engine_options(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # Several worker threads share the file; wait on locks instead of failing at once.
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    # Recycling instead of pre-ping: a ping per checkout was a round trip per statement batch;
    # core/db_outage drops connections the server closed (a restart) with a poll() instead.
    return {"pool_recycle": 1800, "pool_size": 10, "max_overflow": 20}


def read_or_create_instance_key(path: Path) -> str:
    """Return the instance's secret key, creating it (mode 0600) on first start."""
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key
