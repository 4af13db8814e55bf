"""The registry context: Spectr's own registry, external registries, browsing, images in."""
