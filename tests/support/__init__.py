"""Shared helpers for Spectr's test suites (test hosts reached over SSH)."""
