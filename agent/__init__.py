"""Spectr agent: a thin HTTPS service over a host's Docker engine."""

__version__ = "0.2.0"
