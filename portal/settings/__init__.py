"""Typed, validated settings that operators change at run time (not deployment config)."""
