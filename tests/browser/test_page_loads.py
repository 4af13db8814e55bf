"""The browser fixture's loads: what a page does on its own must not fail a test's load.

An operation's page reloads itself when its operation ends (spectr.js); a test that reloads at
that moment had its load aborted by Chromium (net::ERR_ABORTED), a red CI on a loaded machine.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Page

PAGE = b"<!doctype html><title>slow</title><p id=loaded>loaded</p>"


class SlowPage(BaseHTTPRequestHandler):
    """Answers after a second, so that a load is still pending when the next one starts."""

    def do_GET(self) -> None:
        time.sleep(1.0)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # an aborted load
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slow_page_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


def test_a_reload_while_the_page_reloads_itself_loads_the_page(
    page: Page, slow_page_url: str
) -> None:
    page.goto(slow_page_url)
    for _ in range(3):
        # The page starts its own reload just before the test's: without the fixture's second
        # load, Chromium aborts the test's (net::ERR_ABORTED; tried on the fixture before).
        page.evaluate("location.reload()")
        page.reload()
        assert page.locator("#loaded").text_content() == "loaded"
