#!/usr/bin/env python3
"""spectr-setup: the one-shot step before the portal and workers start (compose's `migrate`).

1. `spectr db upgrade`: the database schema, every time (a no-op when it is current);
2. `spectr init`: the first admin, when SPECTR_ADMIN_PASSWORD (or its _FILE) is set;
3. when SPECTR_PROXY_TOKEN_PATH is set and that file is empty or missing: an `operator` user
   (SPECTR_PROXY_USER, default `proxy`) and an API token for it, written there (0600) for
   spectr-proxy to read.

The `spectr` commands run in this one process, on one app: as separate processes each would
pay Python's and the portal's start again (seconds apiece on a small machine).
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import sys
from pathlib import Path

import click
from flask.cli import ScriptInfo

from portal.app import create_app
from portal.cli import cli

APP = create_app()


def spectr(*args: str, quiet: bool = False) -> str:
    """Run one `spectr` command here and return its standard output (echoed unless quiet)."""
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        cli.main(list(args), prog_name="spectr", standalone_mode=False,
                 obj=ScriptInfo(create_app=lambda: APP))  # fmt: skip
    if not quiet:
        sys.stdout.write(captured.getvalue())
    return captured.getvalue()


def write_proxy_token(path: Path) -> None:
    user = os.environ.get("SPECTR_PROXY_USER", "proxy")
    names = [line.split()[1] for line in spectr("user", "list", quiet=True).splitlines()]
    if user not in names:
        # Nobody logs in as this user: its password is random and forgotten at once.
        os.environ["SPECTR_NEW_USER_PASSWORD"] = secrets.token_urlsafe(32)
        spectr("user", "create", user, "--role", "operator")
    token = spectr("token", "create", user, "--name", "spectr-proxy", "--days", "3650", quiet=True)
    fresh = path.with_name(path.name + ".new")
    fresh.unlink(missing_ok=True)
    with os.fdopen(os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
        handle.write(token.strip() + "\n")
    fresh.replace(path)
    print(f"spectr-setup: wrote a token for '{user}' to {path}", file=sys.stderr)


def main() -> int:
    try:
        spectr("db", "upgrade")
        if os.environ.get("SPECTR_ADMIN_PASSWORD"):
            spectr("init", "--admin", os.environ.get("SPECTR_ADMIN_USER", "admin"))
        else:
            print("spectr-setup: SPECTR_ADMIN_PASSWORD is not set; no admin created "
                  "(later: docker compose run --rm migrate spectr init)", file=sys.stderr)  # fmt: skip
        token_path = os.environ.get("SPECTR_PROXY_TOKEN_PATH")
        if token_path and not (Path(token_path).exists() and Path(token_path).stat().st_size):
            write_proxy_token(Path(token_path))
    except click.ClickException as exc:
        print(f"spectr-setup: {exc.format_message()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
