"""Spectr portal: the control plane's web UI, REST API, models, services and workers."""

__version__ = "0.1.0"
