"""A real OpenLDAP server (Debian's slapd) on 127.0.0.1 for the directory sign-in tests.

Each `Slapd` is its own process with its own config and database in a temporary folder,
listening on free ports for ldap:// (StartTLS) and ldaps://, with a certificate of a test CA.
The tests seed it through ldap3 as its root DN, so the memberOf overlay fills `memberOf` the
way it does in production.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from ldap3 import MODIFY_REPLACE, Connection, Server

from tests.collection.tls import TestCA
from tests.support.process_group import stop_process_group

HERE = Path(__file__).resolve().parent
BASE = "dc=spectr,dc=test"
ROOT_DN = f"cn=admin,{BASE}"
ROOT_PASSWORD = "slapd-root-secret"
SERVICE_DN = f"cn=spectr-reader,ou=services,{BASE}"
SERVICE_PASSWORD = "reader-secret-42"
SCHEMAS = ("core", "cosine", "inetorgperson", "nis")

CONFIG = """\
{includes}
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile {folder}/slapd.pid
argsfile {folder}/slapd.args
TLSCACertificateFile {folder}/ca.pem
TLSCertificateFile {folder}/server.pem
TLSCertificateKeyFile {folder}/server.key
database mdb
suffix "{base}"
rootdn "{root_dn}"
rootpw {root_password}
directory {folder}/data
maxsize 10485760
overlay memberof
access to attrs=userPassword by self write by anonymous auth by * none
access to * by users read by anonymous auth
"""


def install() -> None:
    """Install slapd and ldap-utils from Debian when missing."""
    done = subprocess.run([str(HERE / "install-slapd.sh")], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"could not install slapd:\n{done.stdout}\n{done.stderr}")


def ssha(password: str) -> str:
    """userPassword in {SSHA}, as slappasswd writes it."""
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Slapd:
    """One slapd process; `ldap_url` (StartTLS) and `ldaps_url`, trusted through `ca_pem`."""

    def __init__(self, folder: Path, ca: TestCA, expired_certificate: bool = False) -> None:
        self.folder = folder
        self.ca_pem = ca.cert_pem
        certificate = ca.issue(expired=expired_certificate)
        (folder / "data").mkdir(parents=True)
        (folder / "ca.pem").write_text(ca.cert_pem)
        (folder / "server.pem").write_text(certificate.cert_pem)
        (folder / "server.key").write_text(certificate.key_pem)
        includes = "\n".join(f"include /etc/ldap/schema/{name}.schema" for name in SCHEMAS)
        (folder / "slapd.conf").write_text(
            CONFIG.format(
                includes=includes,
                folder=folder,
                base=BASE,
                root_dn=ROOT_DN,
                root_password=ROOT_PASSWORD,
            )
        )
        self.port, self.tls_port = _free_port(), _free_port()
        self.ldap_url = f"ldap://127.0.0.1:{self.port}"
        self.ldaps_url = f"ldaps://127.0.0.1:{self.tls_port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> Slapd:
        self.log = open(self.folder / "slapd.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                "slapd",
                "-f",
                str(self.folder / "slapd.conf"),
                "-h",
                f"{self.ldap_url}/ {self.ldaps_url}/",
                "-d",
                "0",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"slapd exited:\n{(self.folder / 'slapd.log').read_text()}")
            try:
                # A plain socket first: ldap3 leaves its socket open when a connect fails.
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            except OSError:  # not listening yet
                time.sleep(0.1)
                continue
            with self.root() as conn:
                if conn.bound:
                    return self
        raise RuntimeError(f"slapd did not answer:\n{(self.folder / 'slapd.log').read_text()}")

    @contextlib.contextmanager
    def root(self) -> Iterator[Connection]:
        """A plain connection bound as the root DN (for seeding; tests of Spectr use TLS)."""
        conn = Connection(Server(self.ldap_url), ROOT_DN, ROOT_PASSWORD, auto_bind=True)
        try:
            yield conn
        finally:
            conn.unbind()

    def stop(self) -> None:
        stop_process_group(self.process)
        if self.process:
            self.log.close()
        shutil.rmtree(self.folder / "data", ignore_errors=True)

    # Seeding -----------------------------------------------------------------------------

    def seed(self) -> None:
        """The tree every directory test starts from: people, a service account, groups."""
        with self.root() as conn:
            _add(conn, BASE, ["dcObject", "organization"], {"dc": "spectr", "o": "Spectr test"})
            for unit in ("people", "groups", "services"):
                _add(conn, f"ou={unit},{BASE}", ["organizationalUnit"], {"ou": unit})
            _add(
                conn,
                SERVICE_DN,
                ["organizationalRole", "simpleSecurityObject"],
                {"cn": "spectr-reader", "userPassword": ssha(SERVICE_PASSWORD)},
            )

    def add_person(self, uid: str, password: str) -> str:
        dn = f"uid={uid},ou=people,{BASE}"
        with self.root() as conn:
            _add(
                conn,
                dn,
                ["inetOrgPerson"],
                {"uid": uid, "cn": uid.title(), "sn": uid, "userPassword": ssha(password)},
            )
        return dn

    def add_group(self, name: str, members: list[str]) -> str:
        dn = f"cn={name},ou=groups,{BASE}"
        with self.root() as conn:
            _add(conn, dn, ["groupOfNames"], {"cn": name, "member": members})
        return dn

    def set_attribute(self, dn: str, name: str, values: list[str]) -> None:
        with self.root() as conn:
            conn.modify(dn, {name: [(MODIFY_REPLACE, values)]})
            assert conn.result["result"] == 0, conn.result


def _add(conn: Connection, dn: str, classes: list[str], attributes: dict) -> None:
    conn.add(dn, classes, attributes)
    assert conn.result["result"] == 0, (dn, conn.result)


@contextlib.contextmanager
def seeded(folder: Path, ca: TestCA | None = None) -> Iterator[Slapd]:
    """slapd (installed if missing) on `folder` with a certificate of `ca` (a new test CA by
    default) and the base entries seeded; stopped afterwards."""
    install()
    server = Slapd(folder, ca or TestCA()).start()
    try:
        server.seed()
        yield server
    finally:
        server.stop()
