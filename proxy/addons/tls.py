"""TLS termination: give mitmproxy the certificate configured for each route's hosts."""

from __future__ import annotations

import logging
from pathlib import Path

from mitmproxy import ctx

from proxy.config import ProxyConfig
from proxy.state import ProxyState

logger = logging.getLogger(__name__)


class TlsTermination:
    """Serve each route's hosts with its certificate (mitmproxy's `certs` option)."""

    def __init__(self, state: ProxyState, cert_dir: Path) -> None:
        self.state = state
        self.cert_dir = cert_dir
        self._current: list[str] = []
        self._running = False
        state.listeners.append(self.on_config)

    def running(self) -> None:
        self._running = True
        self.on_config(self.state.config)

    def on_config(self, config: ProxyConfig) -> None:
        """Rebuild the certs option when the routes' certificates change."""
        if not self._running:
            return
        specs = []
        for route in config.routes:
            if route.tls is None:
                continue
            try:
                bundle = self._bundle(route.name, route.tls.cert_file, route.tls.key_file)
            except OSError as exc:
                logger.error("route %s: cannot read its certificate: %s", route.name, exc)
                continue
            specs += [f"{host}={bundle}" for host in route.hosts]
        if specs != self._current:
            self._current = specs
            ctx.options.update(certs=specs)

    def _bundle(self, route: str, cert_file: str, key_file: str) -> Path:
        # mitmproxy wants key and certificate in one PEM file.
        pem = Path(key_file).read_text() + "\n" + Path(cert_file).read_text()
        self.cert_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        bundle = self.cert_dir / f"{route.replace('/', '_')}.pem"
        bundle.touch(mode=0o600)
        bundle.write_text(pem)
        return bundle
