"""Seed data shipped with Spectr (the starting catalog)."""
