"""Browser test harness: Debian's chromium driven by Playwright against a real `spectr run`.

The portal runs as its own process on the embedded default (SQLite, SqliteHuey, worker threads
inside the portal), exactly as `make run` starts it; the browser talks to it over real HTTP.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from playwright.sync_api import (
    BrowserContext,
    Page,
    Playwright,
    Request,
    expect,
    sync_playwright,
)
from playwright.sync_api import Error as PlaywrightError

from tests.support.process_group import stop_process_group

# Actions and assertions wait this long: Playwright's assertions default to 5 s, which a page
# of a portal busy beside Molecule, image builds and the other test streams can need more than
# (CI's first test, a browser deploy, failed on it while every stream was starting).
ACTION_TIMEOUT_MS = 15_000
expect.set_options(timeout=ACTION_TIMEOUT_MS)

if TYPE_CHECKING:
    from tests.browser.pages import Api

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
ARTIFACTS = ROOT / "tests" / ".artifacts"
CHROMIUM = Path("/usr/bin/chromium")
SPECTR = Path(sys.executable).parent / "spectr"
ADMIN_PASSWORD = "browser-test-password"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass(frozen=True)
class Portal:
    """A running portal: where it answers and how to log in."""

    url: str
    username: str
    password: str
    instance: Path | None = None  # its instance folder (database, CA), for tests that seed it


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    """Debian's chromium, installed by the set-up script when it is missing."""
    done = subprocess.run(
        [str(HERE / "install-chromium.sh")], capture_output=True, text=True, check=False
    )
    if done.returncode != 0 or not CHROMIUM.exists():
        pytest.fail(f"could not install chromium:\n{done.stdout}\n{done.stderr}")
    return CHROMIUM


@pytest.fixture(scope="session")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    """`spectr init` then `spectr run` on a free 127.0.0.1 port, on a fresh embedded instance."""
    with running_portal(tmp_path_factory.mktemp("browser-instance")) as started:
        yield started


# The portals this session's fixtures started, with their logs: a failing test's report says
# which of them has exited, how, and what it printed last (a portal that died shows up otherwise
# only as pages that stop answering).
_PORTALS: dict[subprocess.Popen, Path] = {}


@contextlib.contextmanager
def running_portal(instance: Path, **settings: str) -> Iterator[Portal]:
    """A `spectr run` of its own on `instance`, with SPECTR_* `settings` (name without prefix)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPECTR_")}
    env.update(
        # The code of this checkout, even when the venv's editable install points at another.
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        PYTHONFAULTHANDLER="1",  # a fatal signal prints every thread's stack to the log
        SPECTR_INSTANCE_PATH=str(instance),
        SPECTR_ADMIN_PASSWORD=ADMIN_PASSWORD,
        SPECTR_MODELS_DIR=str(instance / "node-models"),  # not the machine's /var/lib/spectr
        **{f"SPECTR_{name}": value for name, value in settings.items()},
    )
    init = subprocess.run(
        [str(SPECTR), "init"], env=env, cwd=instance, capture_output=True, text=True, check=False
    )
    assert init.returncode == 0, f"spectr init failed:\n{init.stdout}\n{init.stderr}"
    log_path = instance / "portal.log"
    with open(log_path, "wb") as log:
        # Port 0: the server binds a free port itself and names it, so no other process of the
        # machine can take it between a choice and the bind.
        server = subprocess.Popen(
            [str(SPECTR), "run", "--host", "127.0.0.1", "--port", "0"],
            env=env,
            cwd=instance,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _PORTALS[server] = log_path
    try:
        url = _wait_until_healthy(server, log_path)
        yield Portal(url, "admin", ADMIN_PASSWORD, instance)
    finally:
        stop_process_group(server)
        del _PORTALS[server]


SERVING = re.compile(r"^Spectr portal on (http://127\.0\.0\.1:\d+)/", re.MULTILINE)


def _wait_until_healthy(server: subprocess.Popen, log_path: Path) -> str:
    """The URL the portal named once it answers /healthz there."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"spectr run exited with {server.returncode}:\n{log_path.read_text()}")
        named = SERVING.search(log_path.read_text(errors="replace"))
        if named:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{named[1]}/healthz", timeout=2).status_code == 200:
                    return named[1]
        time.sleep(0.2)
    pytest.fail(f"spectr run did not answer /healthz within 60 s:\n{log_path.read_text()}")


def exited_portals() -> str:
    """How each portal of this session that is no longer running ended, with its log's end."""
    told = []
    for server, log_path in _PORTALS.items():
        code = server.poll()
        if code is None:
            continue
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        said = log_path.read_text(errors="replace")
        # faulthandler's report of a fatal signal, every thread's stack, or else the last lines
        fatal = said.rfind("Fatal Python error")
        tail = said[fatal:].splitlines()[:200] if fatal >= 0 else said.splitlines()[-40:]
        told.append(f"spectr run (pid {server.pid}, {log_path}) ended by {how}; its log ends:")
        told.extend(tail)
    return "\n".join(told)


@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Playwright]:
    # Module scope, not session: the sync API keeps an event loop running in the main thread
    # while it lives, which breaks later asyncio tests (the proxy's), and suites that import
    # this fixture into their own conftest would otherwise start a second driver on top.
    with sync_playwright() as driver:
        yield driver


@pytest.fixture
def browser_context(
    playwright_driver: Playwright, chromium_path: Path, tmp_path: Path
) -> Iterator[BrowserContext]:
    """A chromium with a fresh profile (user-data-dir) for each test."""
    context = playwright_driver.chromium.launch_persistent_context(
        user_data_dir=str(tmp_path / "chromium-profile"),
        executable_path=str(chromium_path),
        headless=True,
        args=CHROMIUM_ARGS,
    )
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    try:
        yield context
    finally:
        context.close()


# Chromium drops the requests in flight whenever this machine's network interfaces change, and
# every container started or removed on the shared engine (this test's, another stream's, or
# Molecule's beside it) adds or removes one: the machine causes these, not the page.
INTERFACES_CHANGED = "net::ERR_NETWORK_CHANGED"
# Why Chromium drops a load that is worth repeating (see _again_if_dropped).
DROPPED_LOADS = (INTERFACES_CHANGED, "net::ERR_ABORTED")


def _again_if_dropped(navigate: Callable[..., Any]) -> Callable[..., Any]:
    """Load the page again when Chromium dropped the load for a reason outside the test.

    - net::ERR_NETWORK_CHANGED: the machine's interfaces changed (INTERFACES_CHANGED).
    - net::ERR_ABORTED: the page started a navigation of its own at the same moment (an
      operation's page reloads itself when the operation ends), and the later one wins.
    Only GET loads are repeated (goto, reload); a form's POST is never sent twice.
    """

    @functools.wraps(navigate)
    def again(*args: Any, **kwargs: Any) -> Any:
        for attempt in range(3):
            try:
                return navigate(*args, **kwargs)
            except PlaywrightError as error:
                if not any(why in str(error) for why in DROPPED_LOADS) or attempt == 2:
                    raise
        return None

    return again


def lost_request(sent: Request) -> str:
    """A request the browser got no answer for, and why (Chromium's net:: error)."""
    return f"{sent.method} {sent.url}: {sent.failure}"


@pytest.fixture
def page(browser_context: BrowserContext, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A browser tab; when the test fails, its screenshot goes to tests/.artifacts/."""
    tab = browser_context.pages[0] if browser_context.pages else browser_context.new_page()
    tab.goto = _again_if_dropped(tab.goto)  # type: ignore[method-assign]
    tab.reload = _again_if_dropped(tab.reload)  # type: ignore[method-assign]
    # Requests the browser lost (no answer at all): a failing test's report lists them, since a
    # page then only shows that something did not come (see pytest_runtest_makereport).
    lost: list[str] = []
    tab.on("requestfailed", lambda sent: lost.append(lost_request(sent)))
    request.node.lost_requests = lost
    yield tab
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
        with contextlib.suppress(Exception):  # a crashed tab must not hide the real failure
            tab.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture
def api(page: Page, portal: Portal) -> Api:
    """Signed in as the admin; the API answers as that user."""
    from tests.browser.pages import Api, log_in  # pages imports this module

    log_in(page, portal)
    return Api(page, portal)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the test item, so fixtures can tell a failed test; a failed
    test's report lists the requests its page lost."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    lost = getattr(item, "lost_requests", None)
    if report.failed and lost:
        report.sections.append(("requests the browser lost", "\n".join(lost)))
    if report.failed and (exited := exited_portals()):
        report.sections.append(("portals that are no longer running", exited))
    return report
