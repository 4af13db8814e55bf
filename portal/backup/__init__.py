"""Backup and restore of Spectr's own state: database, instance keys, CA, registry metadata.

A context of its own rather than part of `registry`: it saves every context's data, and the
CLI restores it on a stopped portal.
"""
