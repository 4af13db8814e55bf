"""Model artifacts: import weights, store them in Spectr's registry, put them on hosts."""
