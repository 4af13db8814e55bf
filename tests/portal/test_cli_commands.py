"""The `spectr` command as an operator meets it (issue 13, findings 18 and 20): its help and
version, one clear line where no database was made, the schema commands, passwords set from a
shell and tokens listed without their secrets. Real processes on real instance folders."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path

import click
import httpx
import pytest
from click.testing import CliRunner

from portal import __version__
from portal.admin import service
from portal.admin.models import UserSession
from portal.admin.sessions import start_session
from portal.app import create_app
from portal.cli import cli
from portal.core.audit import AuditEvent
from portal.extensions import db
from tests.portal.conftest import new_postgres_database
from tests.portal.test_config_and_cli import ROOT, SPECTR, spectr
from tests.support.process_group import stop_process_group

ADMIN_PASSWORD = "initial admin pw"
NEW = "a new admin passphrase"


@pytest.fixture
def instance(tmp_path: Path) -> Path:
    """An instance folder made by `spectr init`, with an admin."""
    folder = tmp_path / "instance"
    made = spectr(folder, "init", SPECTR_ADMIN_PASSWORD=ADMIN_PASSWORD)
    assert made.returncode == 0, made.stderr
    return folder


def _error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    return line


def test_run_from_another_folder_it_says_run_init_and_creates_nothing(tmp_path: Path) -> None:
    for command in (["user", "list"], ["run"], ["worker"], ["db", "current"]):
        result = spectr(None, *command, cwd=tmp_path)
        line = _error_line(result)
        assert line == (
            f"Error: no Spectr database at {tmp_path / 'instance' / 'spectr.db'}: run "
            "`spectr init` (or set SPECTR_INSTANCE_PATH to the instance folder you made)"
        ), command
    assert list(tmp_path.iterdir()) == []


def test_an_empty_database_is_not_taken_for_spectrs(tmp_path: Path) -> None:
    (tmp_path / "spectr.db").touch()  # what `spectr` left behind before this was fixed
    line = _error_line(spectr(tmp_path, "token", "list"))
    assert line == f"Error: no Spectr database at sqlite:///{tmp_path}/spectr.db: run `spectr init`"


@pytest.mark.postgres
def test_an_empty_postgres_database_says_run_init_and_init_fills_it(tmp_path: Path) -> None:
    with new_postgres_database("spectr_cli") as url:
        line = _error_line(spectr(tmp_path, "user", "list", SPECTR_DATABASE_URL=url))
        assert line == f"Error: no Spectr database at {url}: run `spectr init`"
        made = spectr(tmp_path, "init", SPECTR_DATABASE_URL=url, SPECTR_ADMIN_PASSWORD=NEW)
        assert made.returncode == 0, made.stderr
        listed = spectr(tmp_path, "user", "list", SPECTR_DATABASE_URL=url)
        assert listed.stdout.split()[1:3] == ["admin", "admin"]


def test_unreachable_postgres_is_one_line_too(tmp_path: Path) -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:9/spectr"
    line = _error_line(spectr(tmp_path, "user", "list", SPECTR_DATABASE_URL=url))
    assert line.startswith("Error: cannot reach the database at postgresql+psycopg://nobody@")


def test_version_is_spectrs_not_flasks() -> None:
    result = subprocess.run([SPECTR, "--version"], capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert result.stdout == f"Spectr {__version__}\n"


def _commands(group: click.Group, path: str = "spectr") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in group.commands.items():
        found.append((f"{path} {name}", command))
        if isinstance(command, click.Group):
            found.extend(_commands(command, f"{path} {name}"))
    return found


def test_every_command_and_group_has_a_help_line() -> None:
    commands = _commands(cli)
    assert {"spectr catalog seed", "spectr apps list", "spectr openapi write"} <= dict(
        commands
    ).keys()
    for path, command in commands:
        assert command.get_short_help_str().strip(), f"{path} has no help"
    shown = CliRunner().invoke(cli, ["--help"])
    assert shown.exit_code == 0
    assert "--app" not in shown.output and "--env-file" not in shown.output  # no Flask options
    catalog = CliRunner().invoke(cli, ["catalog", "--help"]).output
    assert "Catalog: the shipped runtimes and models" in catalog


def test_db_offers_what_an_operator_needs(tmp_path: Path) -> None:
    assert set(cli.commands["db"].commands) == {"upgrade", "current", "history"}  # type: ignore[attr-defined]
    folder = tmp_path / "fresh"
    upgraded = spectr(folder, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert re.search(r"^applied \w+  operations, users, tokens, audit, settings$",
                     upgraded.stdout, re.M)  # fmt: skip
    assert "Schema up to date at " in upgraded.stdout
    assert "alembic" not in upgraded.stdout + upgraded.stderr  # no Alembic logging
    again = spectr(folder, "db", "upgrade")
    assert "applied" not in again.stdout
    current = spectr(folder, "db", "current")
    assert current.stdout.splitlines()[1] == "The newest revision this Spectr ships."
    history = spectr(folder, "db", "history").stdout.splitlines()
    assert history[0].startswith("* ") and history[-1].endswith(
        "operations, users, tokens, audit, settings"
    )


def test_openapi_needs_no_instance_and_leaves_none(tmp_path: Path) -> None:
    written = spectr(None, "openapi", "write", "api.json", cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["api.json"]
    assert '"/api/v1/me/password"' in (tmp_path / "api.json").read_text()


def _open_session(instance: Path, username: str) -> None:
    app = create_app({"SPECTR_INSTANCE_PATH": str(instance)})
    with app.app_context():
        start_session(service.get_user_by_name(username), "192.0.2.1", "test browser")
        db.session.commit()


def _signs_in(instance: Path, username: str, password: str) -> bool:
    app = create_app({"SPECTR_INSTANCE_PATH": str(instance)})
    with app.app_context():
        return service.authenticate_password(username, password) is not None


def test_run_on_port_zero_serves_on_the_free_port_it_names(instance: Path) -> None:
    """Scripts and tests start a portal without choosing a port: none can be taken meanwhile."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPECTR_")}
    env.update(PYTHONPATH=str(ROOT), SPECTR_INSTANCE_PATH=str(instance))
    log = instance / "run.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([SPECTR, "run", "--port", "0"], env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        deadline, named = time.monotonic() + 60, None
        while named is None and time.monotonic() < deadline and process.poll() is None:
            named = re.search(r"Spectr portal on http://127\.0\.0\.1:(\d+)/", log.read_text())
            time.sleep(0.2)
        assert named, f"no port named:\n{log.read_text()}"
        port = int(named[1])
        assert port != 0
        answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert answer.status_code == 200 and answer.json()["status"] == "ok"
    finally:
        stop_process_group(process)

    refused = spectr(instance, "run", "--port", "70000")
    assert refused.returncode == 2
    assert "Invalid value for '--port': 70000 is not in the range 0<=x<=65535." in refused.stderr


def _password_resets(instance: Path) -> tuple[list[dict], list[bool]]:
    """The details of the password resets audited, and which sessions are still open."""
    app = create_app({"SPECTR_INSTANCE_PATH": str(instance)})
    with app.app_context():
        query = db.select(AuditEvent).filter_by(action="user.password.reset")
        resets = [event.details for event in db.session.scalars(query)]
        open_ = [row.ended_at is None for row in db.session.scalars(db.select(UserSession))]
    return resets, open_


def test_set_password_from_the_environment_and_from_stdin(instance: Path) -> None:
    _open_session(instance, "admin")
    from_env = spectr(instance, "user", "set-password", "admin", SPECTR_NEW_PASSWORD=NEW)
    assert from_env.returncode == 0, from_env.stderr
    assert from_env.stdout == "Password of 'admin' set; 1 browser session(s) signed out.\n"
    assert _signs_in(instance, "admin", NEW)
    resets, open_sessions = _password_resets(instance)
    assert resets[-1]["via"].startswith("command line") and resets[-1]["sessions_ended"] == 1
    assert open_sessions == [False]

    piped = spectr(
        instance, "user", "set-password", "admin", "--password-stdin", stdin="second password!\n"
    )
    assert piped.returncode == 0, piped.stderr
    assert _signs_in(instance, "admin", "second password!")

    short = spectr(instance, "user", "set-password", "admin", "--password-stdin", stdin="short\n")
    assert _error_line(short) == "Error: The password must have at least 10 characters."
    nothing = spectr(instance, "user", "set-password", "admin")
    assert "set SPECTR_NEW_PASSWORD, or pipe it in with --password-stdin" in nothing.stderr
    assert _signs_in(instance, "admin", "second password!")


class _Terminal:
    """What a command writes to its terminal, read up to each text a test waits for. What came
    after that text is kept for the next wait: an error and the prompt after it can arrive in
    one read (they did, under load, and the prompt was lost with the error's read)."""

    def __init__(self, fd: int) -> None:
        self.fd, self.pending = fd, ""

    def read_until(self, text: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.pending:
            assert time.monotonic() < deadline, f"no {text!r} in {self.pending!r}"
            if select.select([self.fd], [], [], 1)[0]:
                self.pending += os.read(self.fd, 1024).decode()
        end = self.pending.index(text) + len(text)
        seen, self.pending = self.pending[:end], self.pending[end:]
        return seen


def test_set_password_at_a_terminal_asks_twice(instance: Path) -> None:
    controller, terminal = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPECTR_")}
    env.update(PYTHONPATH=str(ROOT), SPECTR_INSTANCE_PATH=str(instance))
    # The pty is the command's controlling terminal, as at a person's shell: getpass reads and
    # writes /dev/tty when there is one, and the session that runs the tests may have its own.
    # util-linux's `setsid --ctty` makes it so (a new session, stdin its terminal). Not a
    # preexec_fn: Python code in a child forked from this threaded process can deadlock before
    # exec (it did, now and then, under load: the command never printed its prompt).
    process = subprocess.Popen(["setsid", "--ctty", SPECTR, "user", "set-password", "admin"],
                               env=env, stdin=terminal, stdout=terminal, stderr=terminal)  # fmt: skip
    os.close(terminal)
    screen = _Terminal(controller)
    try:
        said = screen.read_until("New password:")
        os.write(controller, f"{NEW}\n".encode())
        said += screen.read_until("Type it again:")
        os.write(controller, b"a typo in it\n")
        said += screen.read_until("do not match")
        said += screen.read_until("New password:")
        os.write(controller, f"{NEW}\n".encode())
        said += screen.read_until("Type it again:")
        os.write(controller, f"{NEW}\n".encode())
        said += screen.read_until("signed out.")
        assert process.wait(60) == 0
    finally:
        process.kill()
        process.wait()
        os.close(controller)
    assert NEW not in said and "a typo" not in said  # never echoed
    assert _signs_in(instance, "admin", NEW)


def test_token_list_shows_owners_and_prefixes_never_the_tokens(instance: Path) -> None:
    env = {"SPECTR_NEW_USER_PASSWORD": "dana's long password"}
    assert spectr(instance, "user", "create", "dana", **env).returncode == 0
    mine = spectr(instance, "token", "create", "admin", "--name", "ci").stdout.strip()
    danas = spectr(instance, "token", "create", "dana", "--name", "laptop").stdout.strip()
    revoked = spectr(instance, "token", "revoke", "2")
    assert revoked.returncode == 0, revoked.stderr

    listed = spectr(instance, "token", "list")
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["ID", "OWNER", "NAME", "PREFIX", "STATE", "EXPIRES", "LAST", "USED"]
    assert [row.split()[:5] for row in rows] == [
        ["2", "dana", "laptop", f"{danas[:12]}...", "revoked"],
        ["1", "admin", "ci", f"{mine[:12]}...", "active"],
    ]
    assert mine not in listed.stdout and danas not in listed.stdout
    only_dana = spectr(instance, "token", "list", "--user", "dana").stdout
    assert "laptop" in only_dana and " ci " not in only_dana
    unknown = spectr(instance, "token", "list", "--user", "nobody")
    assert _error_line(unknown) == "Error: No user named 'nobody'."


def test_turn_off_totp_for_an_admin_who_lost_the_phone(instance: Path) -> None:
    app = create_app({"SPECTR_INSTANCE_PATH": str(instance)})
    with app.app_context():
        from portal.admin import service, totp

        admin = service.get_user_by_name("admin")
        totp.start_enrolment(admin)
        admin.totp_enabled = True  # as if confirmed with the phone now lost
        db.session.commit()
    done = spectr(instance, "user", "turn-off-totp", "admin")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Two-factor sign-in of 'admin' is off.\n"
    with app.app_context():
        assert service.get_user_by_name("admin").totp_enabled is False
        query = db.select(AuditEvent).filter_by(action="user.totp.disable")
        assert [e.details for e in db.session.scalars(query)] == [{"by_admin": True}]
    assert _signs_in(instance, "admin", ADMIN_PASSWORD)
