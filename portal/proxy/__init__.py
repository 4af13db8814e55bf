"""The proxy context: routes, gateway models and keys, the proxy's config document, usage."""
