"""A real OpenID provider on 127.0.0.1: panva's oidc-provider (npm) on Debian's Node.js.

`install()` fetches it once into a cache folder (tests/support/oidc/install.sh). The provider's
signing key is made here, so a test can tell what the provider signs with; its accounts sign
in with any password at its development login form, and carry the groups the test gives them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from joserfc.jwk import RSAKey

from tests.support.process_group import stop_process_group

HERE = Path(__file__).resolve().parent / "oidc"
CLIENT_ID = "spectr-portal"
CLIENT_SECRET = "provider-client-secret-7"


def install() -> Path:
    """The folder whose node_modules holds oidc-provider."""
    done = subprocess.run([str(HERE / "install.sh")], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"could not install oidc-provider:\n{done.stderr}")
    return Path(done.stdout.strip().splitlines()[-1])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OidcProvider:
    """One `node provider.mjs` process; `issuer` is its URL."""

    def __init__(
        self,
        folder: Path,
        redirect_uris: list[str],
        logout_uris: list[str],
        accounts: dict[str, list[str]],
    ) -> None:
        self.folder = folder
        self.port = _free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        key = RSAKey.generate_key(2048, {"kid": uuid.uuid4().hex[:8], "use": "sig"}, private=True)
        self.env = {
            **os.environ,
            "PORT": str(self.port),
            "CLIENT": json.dumps(
                {
                    "id": CLIENT_ID,
                    "secret": CLIENT_SECRET,
                    "redirect_uris": redirect_uris,
                    "post_logout_redirect_uris": logout_uris,
                }
            ),
            "JWKS": json.dumps({"keys": [key.as_dict(private=True)]}),
            "ACCOUNTS": json.dumps({name: {"groups": g} for name, g in accounts.items()}),
            "NODE_ENV": "development",
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> OidcProvider:
        modules = install()
        script = modules / "provider.mjs"
        shutil.copy(HERE / "provider.mjs", script)  # imports resolve from its node_modules
        self.log = open(self.folder / "provider.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            ["node", str(script)],
            env=self.env,
            cwd=modules,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"provider exited:\n{self.read_log()}")
            try:
                httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=2)
                return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"provider did not answer:\n{self.read_log()}")

    def read_log(self) -> str:
        return (self.folder / "provider.log").read_text(errors="replace")

    def tamper(self, **what: str) -> None:
        """Make later ID tokens wrong (audience=..., signature=bad); nothing puts it right."""
        httpx.get(f"{self.issuer}/__test/tamper", params=what).raise_for_status()

    def stop(self) -> None:
        stop_process_group(self.process)
        if self.process:
            self.log.close()


def settings_for(provider: OidcProvider, **overrides: Any) -> dict[str, Any]:
    """Spectr's OpenID settings for this provider: group spectr-admins -> admin, and so on."""
    return {
        "oidc_enabled": True,
        "oidc_issuer": provider.issuer,
        "oidc_client_id": CLIENT_ID,
        "oidc_client_secret": CLIENT_SECRET,
        "oidc_scopes": "openid profile email groups",
        "oidc_roles_claim": "groups",
        "oidc_admin_values": "spectr-admins",
        "oidc_operator_values": "spectr-operators",
        "oidc_viewer_values": "spectr-viewers",
        **overrides,
    }


@contextlib.contextmanager
def running_provider(
    folder: Path, portal_url: str, accounts: dict[str, list[str]]
) -> Iterator[OidcProvider]:
    """The provider with the portal at `portal_url` as its client (its callback and logout
    pages) and these accounts (user -> groups); stopped afterwards."""
    started = OidcProvider(
        folder, [f"{portal_url}/login/sso/callback"], [f"{portal_url}/login"], accounts
    ).start()
    try:
        yield started
    finally:
        started.stop()
