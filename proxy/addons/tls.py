"""TLS termination: give mitmproxy the certificate configured for each route's hosts."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from mitmproxy import ctx

from proxy.config import ProxyConfig, TlsCert
from proxy.state import ProxyState

logger = logging.getLogger(__name__)


class TlsTermination:
    """Serve each route's (and the gateway's) hosts with its certificate (`certs` option)."""

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
        """Rebuild the certs option when a certificate or its hosts change."""
        if not self._running:
            return
        sites = [(route.name, route.hosts, route.tls) for route in config.routes]
        sites.append(("gateway", config.gateway.hosts, config.gateway.tls))
        specs = []
        for name, hosts, tls in sites:
            if tls is None:
                continue
            try:
                bundle = self._bundle(name, tls)
            except OSError as exc:
                logger.error("%s: cannot read its certificate: %s", name, exc)
                continue
            specs += [f"{host}={bundle}" for host in hosts]
        if specs != self._current:
            self._current = specs
            ctx.options.update(certs=specs)

    def _bundle(self, name: str, tls: TlsCert) -> Path:
        # mitmproxy wants key and certificate in one PEM file; naming it by its content makes a
        # renewed certificate a new path, which is what makes mitmproxy load it again.
        pem = Path(tls.key_file).read_text() + "\n" + Path(tls.cert_file).read_text()
        digest = hashlib.sha256(pem.encode()).hexdigest()[:16]
        self.cert_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        bundle = self.cert_dir / f"{name.replace('/', '_')}-{digest}.pem"
        if not bundle.exists():
            bundle.touch(mode=0o600)
            bundle.write_text(pem)
        return bundle
