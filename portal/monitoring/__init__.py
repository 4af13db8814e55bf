"""Monitoring: Prometheus metrics and service discovery, events and webhooks, the fleet overview."""
