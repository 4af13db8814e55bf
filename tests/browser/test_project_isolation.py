"""Issue 16's "Done when", in a real browser against a real `spectr run`: a directory user
(Debian's slapd) and an OpenID user (oidc-provider on Node.js), each put in a project by the
group / claim mapping of the Sign-in page, see only their project's hosts, applications and
gateway keys; a deploy over their project's GPU quota is refused with the quota named; a host
shared with a project shows there marked as shared.

Hosts are records only (nothing is bootstrapped) and applications are not deployed: what is
tested is who sees what. Screenshots go to tests/.artifacts/screens/ (projects-*).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Portal, running_portal
from tests.browser.pages import Api, log_in, snap
from tests.support import slapd
from tests.support.oidc_provider import CLIENT_ID, CLIENT_SECRET, OidcProvider, running_provider
from tests.support.slapd import BASE, SERVICE_DN, SERVICE_PASSWORD, Slapd

pytestmark = [pytest.mark.slow, pytest.mark.browser]
ANN_PASSWORD = "ann-directory-password-1"
TEAM_ALPHA = f"cn=team-alpha,ou=groups,{BASE}"


@pytest.fixture(scope="module")
def projects_portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    """A portal of its own: this test changes how everyone signs in."""
    with running_portal(tmp_path_factory.mktemp("projects-portal")) as started:
        yield started


@pytest.fixture(scope="module")
def ldap_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    with slapd.seeded(tmp_path_factory.mktemp("slapd")) as server:
        server.add_group("team-alpha", [server.add_person("ann", ANN_PASSWORD)])
        yield server


@pytest.fixture(scope="module")
def provider(
    tmp_path_factory: pytest.TempPathFactory, projects_portal: Portal
) -> Iterator[OidcProvider]:
    with running_provider(
        tmp_path_factory.mktemp("oidc"), projects_portal.url, {"dora": ["team-beta"]}
    ) as started:
        yield started


def _seed(api: Api) -> dict[str, Any]:
    """Two projects with a GPU quota of 1, a host, an application and a gateway key each, and
    a host of `default`; all made through the API as the admin."""
    made: dict[str, Any] = {}
    for project in ("alpha", "beta"):
        api.post("/projects", {"name": project, "gpu_limit": 1})
        host = api.post(
            "/hosts",
            {"name": f"{project}-gpu-1", "address": "127.0.0.1", "ssh_password": "not-used",
             "project": project},
        )  # fmt: skip
        container = {"image": f"registry.local/{project}-web:1"}
        api.post(
            "/apps",
            {"name": f"{project}-web", "host_id": host["id"], "container": container,
             "deploy": False},
        )  # fmt: skip
        api.post("/proxy/keys", {"name": f"{project}-key", "project": project})
        made[project] = host
    api.post("/hosts", {"name": "default-box", "address": "127.0.0.1", "ssh_password": "x"})
    return made


def _configure_sign_in(page: Page, ldap_server: Slapd, provider: OidcProvider) -> None:
    """The directory and the provider, each group / claim value mapped to a project."""
    page.click("nav >> text=Sign-in")
    page.check("[name=ldap_enabled]")
    page.check("[name=oidc_enabled]")
    values = {
        "ldap_url": ldap_server.ldap_url,
        "ldap_bind_dn": SERVICE_DN,
        "ldap_bind_password": SERVICE_PASSWORD,
        "ldap_user_base": f"ou=people,{BASE}",
        "ldap_user_filter": "(objectClass=inetOrgPerson)",
        "ldap_group_base": f"ou=groups,{BASE}",
        "ldap_viewer_groups": TEAM_ALPHA,
        "ldap_project_groups": f"alpha:admin={TEAM_ALPHA}",
        "ldap_ca_certificate": ldap_server.ca_pem,
        "oidc_issuer": provider.issuer,
        "oidc_client_id": CLIENT_ID,
        "oidc_client_secret": CLIENT_SECRET,
        "oidc_scopes": "openid profile email groups",
        "oidc_viewer_values": "team-beta",
        "oidc_project_values": "beta:admin=team-beta",
    }
    for name, value in values.items():
        page.fill(f"[name={name}]", value)
    page.click("text=Save sign-in settings")
    expect(page.locator(".flash")).to_contain_text("Sign-in settings saved.")
    expect(page.locator("[name=ldap_project_groups]")).to_have_value(f"alpha:admin={TEAM_ALPHA}")
    page.locator("[name=ldap_project_groups]").scroll_into_view_if_needed()
    page.screenshot(path="tests/.artifacts/screens/projects-sign-in-mapping-desktop.png")


def _sees_only(page: Page, portal: Portal, mine: str, theirs: str, other_host: int) -> None:
    """The signed-in person's pages and API show project `mine`, nothing of `theirs` (nor of
    `default`); the other project's host page answers 404."""
    page.goto(f"{portal.url}/hosts")
    hosts = page.locator("#hosts")
    expect(hosts).to_contain_text(f"{mine}-gpu-1")
    expect(hosts).not_to_contain_text(f"{theirs}-gpu-1")
    expect(hosts).not_to_contain_text("default-box")
    snap(page, f"projects-{mine}-hosts")
    page.goto(f"{portal.url}/apps")
    expect(page.locator("main")).to_contain_text(f"{mine}-web")
    expect(page.locator("main")).not_to_contain_text(f"{theirs}-web")
    snap(page, f"projects-{mine}-apps")
    page.goto(f"{portal.url}/gateway")
    keys = page.locator("#keys")
    expect(keys).to_contain_text(f"{mine}-key")
    expect(keys).not_to_contain_text(f"{theirs}-key")
    snap(page, f"projects-{mine}-gateway-keys")
    assert page.goto(f"{portal.url}/hosts/{other_host}").status == 404

    page.goto(f"{portal.url}/")
    overview = page.locator("#overview-hosts")
    expect(overview).to_contain_text(f"{mine}-gpu-1")
    for hidden in (f"{theirs}-gpu-1", "default-box", "spectr-node"):
        expect(overview).not_to_contain_text(hidden)
    expect(page.locator("#tile-hosts .tile-value")).to_have_text("1")
    api = Api(page, portal)
    assert [h["name"] for h in api.get("/hosts")] == [f"{mine}-gpu-1"]
    assert [a["name"] for a in api.get("/apps")] == [f"{mine}-web"]
    assert [k["name"] for k in api.get("/proxy/keys")] == [f"{mine}-key"]
    assert [p["name"] for p in api.get("/projects")] == [mine]


def _over_the_gpu_quota_is_refused(page: Page, portal: Portal, project: str, host_id: int) -> None:
    """The project's last GPU fits; a deploy of one more is refused, naming the quota."""
    api = Api(page, portal)

    def new_app(name: str, gpus: list[int], deploy: bool, status: int) -> Any:
        container = {"image": f"registry.local/{project}-llm:1", "gpus": gpus}
        body = {"name": name, "host_id": host_id, "container": container, "deploy": deploy}
        return api.post("/apps", body, status=status)

    assert new_app(f"{project}-llm", [0], False, 201)["project_id"]
    refused = new_app(f"{project}-llm-2", [1], True, 409)
    assert refused["code"] == "quota_exceeded"
    assert refused["details"] == {"quota": "gpus", "used": 1, "requested": 1, "limit": 1}
    assert f"Project '{project}' is over its 'gpus' quota" in refused["message"]
    page.goto(f"{portal.url}/")
    row = page.locator(f"[data-project={project}]")
    expect(row).to_contain_text("1 / 1")
    snap(page, f"projects-{project}-dashboard-quota")


def test_directory_and_sso_users_see_only_their_projects_and_its_gpu_quota_holds(
    page: Page, projects_portal: Portal, ldap_server: Slapd, provider: OidcProvider
) -> None:
    log_in(page, projects_portal)
    admin = Api(page, projects_portal)
    hosts = _seed(admin)
    _configure_sign_in(page, ldap_server, provider)

    # Ann, of the directory group mapped to alpha, with the login form.
    page.context.clear_cookies()
    page.goto(f"{projects_portal.url}/login")
    page.fill("input[name=username]", "ann")
    page.fill("input[name=password]", ANN_PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("nav")).to_contain_text("ann (viewer)")
    _sees_only(page, projects_portal, "alpha", "beta", hosts["beta"]["id"])
    _over_the_gpu_quota_is_refused(page, projects_portal, "alpha", hosts["alpha"]["id"])

    # Dora, whose provider claim is mapped to beta, through the real redirect flow.
    page.context.clear_cookies()
    page.goto(f"{projects_portal.url}/login")
    page.click("#sso-sign-in")
    page.wait_for_url(re.compile(re.escape(provider.issuer) + "/interaction/"))
    page.fill("input[name=login]", "dora")
    page.fill("input[name=password]", "anything")
    page.click("button[type=submit]")
    page.wait_for_url(f"{projects_portal.url}/")
    expect(page.locator("nav")).to_contain_text("dora (viewer)")
    _sees_only(page, projects_portal, "beta", "alpha", hosts["alpha"]["id"])
    _over_the_gpu_quota_is_refused(page, projects_portal, "beta", hosts["beta"]["id"])

    # Beta shares its host with alpha: Ann sees it, marked as shared, read-only.
    Api(page, projects_portal).post(f"/hosts/{hosts['beta']['id']}/shares", {"project": "alpha"})
    page.context.clear_cookies()
    page.goto(f"{projects_portal.url}/login")
    page.fill("input[name=username]", "ann")
    page.fill("input[name=password]", ANN_PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("nav")).to_contain_text("ann (viewer)")
    page.goto(f"{projects_portal.url}/hosts")
    shared_row = page.locator("tr", has_text="beta-gpu-1")
    expect(shared_row.locator("[data-shared]")).to_have_text("shared")
    expect(page.locator("tr", has_text="alpha-gpu-1").locator("[data-shared]")).to_have_count(0)
    snap(page, "projects-alpha-hosts-with-shared")
    shared_row.locator("a").first.click()
    expect(page.locator("#shared-badge")).to_be_visible()
    expect(page.locator("#host-actions")).to_have_count(0)
    expect(page.locator("#containers")).to_have_count(0)
    snap(page, "projects-alpha-shared-host")
