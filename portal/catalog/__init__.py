"""Catalog context: Docker images, LLM models, serving runtimes, VRAM estimates, placement."""
