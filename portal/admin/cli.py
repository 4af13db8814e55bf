"""`spectr user ...` and `spectr token ...`: people and their API tokens, from a shell.

A password is never taken from the command line itself (it would sit in the shell's history
and in `ps`): it comes from a prompt, an environment variable or standard input.
"""

from __future__ import annotations

import getpass
import os
import sys
from datetime import datetime

import click
from flask import current_app
from flask.cli import AppGroup

from portal.admin import passwords, service, totp
from portal.admin.models import ApiToken
from portal.core.security import ROLES
from portal.core.timeutil import utcnow


@click.group("user", cls=AppGroup)
def user_group() -> None:
    """Users: create, list, set a role or a password."""


@user_group.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), default="viewer", show_default=True)
@click.password_option(envvar="SPECTR_NEW_USER_PASSWORD")
def user_create(username: str, role: str, password: str) -> None:
    """Create a user (the password is asked twice, or read from SPECTR_NEW_USER_PASSWORD)."""
    service.create_user(username, password, role)
    click.echo(f"Created {role} '{username}'.")


@user_group.command("list")
def user_list() -> None:
    """List users: id, name, role, active or disabled."""
    for user in service.list_users():
        state = "active" if user.active else "disabled"
        click.echo(f"{user.id:>4}  {user.username:<24} {user.role:<9} {state}")


@user_group.command("set-role")
@click.argument("username")
@click.argument("role", type=click.Choice(ROLES))
def user_set_role(username: str, role: str) -> None:
    """Change a user's role."""
    service.update_user(service.get_user_by_name(username), role=role)
    click.echo(f"'{username}' is now {role}.")


@user_group.command("turn-off-totp")
@click.argument("username")
def user_turn_off_totp(username: str) -> None:
    """Turn off a user's TOTP (a lost phone, the only admin): the password alone signs in."""
    totp.disable(service.get_user_by_name(username), None, by_admin=True)
    click.echo(f"Two-factor sign-in of '{username}' is off.")


@user_group.command("set-password")
@click.argument("username")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)
def user_set_password(username: str, password_stdin: bool) -> None:
    """Set a user's password and sign out all of the user's browser sessions.

    The password comes from --password-stdin, else SPECTR_NEW_PASSWORD, else it is asked
    twice at the terminal. At least 10 characters, not the user name.
    """
    user = service.get_user_by_name(username)
    password = _new_password(password_stdin)
    ended = passwords.reset_password(user, password, via=f"command line ({getpass.getuser()})")
    click.echo(f"Password of '{username}' set; {ended} browser session(s) signed out.")


def _new_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.UsageError("--password-stdin: standard input held no password.")
        return password
    if os.environ.get("SPECTR_NEW_PASSWORD"):
        return os.environ["SPECTR_NEW_PASSWORD"]
    if sys.stdin.isatty():
        return click.prompt("New password", hide_input=True, confirmation_prompt="Type it again")
    raise click.UsageError(
        "No password given: type it at a terminal, set SPECTR_NEW_PASSWORD, "
        "or pipe it in with --password-stdin."
    )


@click.group("token", cls=AppGroup)
def token_group() -> None:
    """API tokens: create, list, revoke."""


@token_group.command("create")
@click.argument("username")
@click.option("--name", default="cli", show_default=True, help="What the token is for.")
@click.option("--days", type=int, default=None, help="Days until it expires.")
def token_create(username: str, name: str, days: int | None) -> None:
    """Create an API token for a user and print it (once)."""
    user = service.get_user_by_name(username)
    token, plaintext = service.create_token(
        user, name, days or current_app.config["SPECTR_TOKEN_DEFAULT_DAYS"]
    )
    click.echo(f"Token {token.id} for '{username}' (shown once):", err=True)
    click.echo(plaintext)


@token_group.command("list")
@click.option("--user", "username", help="Only this user's tokens.")
def token_list(username: str | None) -> None:
    """List API tokens with their owner, prefix, state and dates; never the token itself."""
    owner = service.get_user_by_name(username) if username else None
    tokens = service.list_tokens(owner)
    if not tokens:
        click.echo("No API tokens." if owner is None else f"'{username}' has no API tokens.")
        return
    click.echo(f"{'ID':>4}  {'OWNER':<16} {'NAME':<20} {'PREFIX':<15} {'STATE':<8} "
               f"{'EXPIRES':<10}  LAST USED")  # fmt: skip
    for token in tokens:
        click.echo(
            f"{token.id:>4}  {token.user.username:<16} {token.name:<20} {token.prefix + '...':<15} "
            f"{_state(token):<8} {_day(token.expires_at, 'never'):<10}  "
            f"{_day(token.last_used_at, 'never')}"
        )


def _state(token: ApiToken) -> str:
    if token.revoked_at is not None:
        return "revoked"
    return "active" if token.is_valid(utcnow()) else "expired"


def _day(moment: datetime | None, empty: str) -> str:
    return moment.strftime("%Y-%m-%d") if moment is not None else empty


@token_group.command("revoke")
@click.argument("token_id", type=int)
def token_revoke(token_id: int) -> None:
    """Revoke an API token by id (`spectr token list` shows the ids)."""
    service.revoke_token(service.get_token(token_id))
    click.echo(f"Token {token_id} revoked.")
