"""Monitoring settings: SPECTR_MONITORING_* variables (or the test config), with defaults."""

from __future__ import annotations

from typing import Any

from flask import current_app

DEFAULTS: dict[str, Any] = {
    # How often the event detectors look at hosts, containers, GPUs and operations.
    "MONITORING_EVENT_INTERVAL_SECONDS": 15.0,
    # A container.restarting event closes once its container has run this long without a crash.
    "MONITORING_STEADY_SECONDS": 60.0,
    # GPU memory use (used / total) above which a gpu.memory_high event opens.
    "MONITORING_GPU_MEMORY_RATIO": 0.9,
    # Proxies not seen fetching their config for this long leave the scrape targets.
    "MONITORING_PROXY_STALE_SECONDS": 3600,
    # Address Prometheus scrapes the portal on ("" = the host of the SD request).
    "MONITORING_PORTAL_TARGET": "",
    "MONITORING_WEBHOOK_TIMEOUT_SECONDS": 5.0,
    "MONITORING_WEBHOOK_MAX_ATTEMPTS": 6,
}


def monitoring_setting(name: str) -> Any:
    """Return SPECTR_<name> from the app config, falling back to the built-in default."""
    config = current_app.config
    # Flask's from_prefixed_env strips "SPECTR_"; a test config may use either spelling.
    for key in (f"SPECTR_{name}", name):
        if key in config:
            return config[key]
    return DEFAULTS[name]
