"""deploy/compose.yaml end to end, as a user runs it: Spectr's images built offline from the
wheelhouse, Postgres and Redis from the images deploy/build-service-images.sh builds from
Debian's packages, the stack started with `docker compose up` and checked through the ports it
publishes on 127.0.0.1. Then each service is restarted in turn while the portal is watched: the
stack recovers by itself and keeps its data.

The tests share one stack and run in file order; each restart test makes what it checks itself
where that is cheap, and otherwise reads what the tests before it made (the admin's token).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.deploy.conftest import admin_password
from tests.deploy.stack import Stack, admin_api, finished_operation, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.docker]

# huey's Redis list for compose's default queue name (SPECTR_QUEUE_NAME=spectr), and the
# channel of the proxy's config notifications (SPECTR_PROXY_REDIS_PREFIX=spectr:).
QUEUE_KEY = "huey.redis.spectr"
PROXY_CHANNEL = "spectr:proxy:config"
ROUTE = {"name": "portal-health", "path_prefix": "/healthz", "upstreams": ["http://web:8000"]}
# What `spectr worker` logs once it is ready to consume the queue.
WORKER_READY = "worker started with"


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[httpx.Client]:
    with admin_api(stack.portal_url, admin_password(stack)) as client:
        yield client


def test_portal_answers_on_the_loopback_port_it_publishes(stack: Stack) -> None:
    health = httpx.get(f"{stack.portal_url}/healthz", timeout=5)
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    bindings = stack.inspect("web")["HostConfig"]["PortBindings"]["8000/tcp"]
    assert bindings == [{"HostIp": "127.0.0.1", "HostPort": str(stack.portal_port)}]
    proxy_bindings = stack.inspect("proxy")["HostConfig"]["PortBindings"]["8080/tcp"]
    assert proxy_bindings == [{"HostIp": "127.0.0.1", "HostPort": str(stack.proxy_port)}]
    for service in ("postgres", "redis"):  # reached only on the stack's own network
        assert not stack.inspect(service)["HostConfig"]["PortBindings"]


def test_migrate_ran_once_and_each_service_runs_as_its_own_user(stack: Stack) -> None:
    states = {c["Service"]: c for c in stack.containers()}
    assert states["migrate"]["State"] == "exited"
    assert states["migrate"]["ExitCode"] == 0
    for service in ("postgres", "redis", "web", "worker", "proxy"):
        assert states[service]["State"] == "running", states[service]
    for service in ("web", "worker", "proxy"):
        assert stack.inspect(service)["Config"]["User"] == "spectr"
    # The Debian-built images drop root in their entry points, as the official images do.
    assert stack.exec("postgres", "stat", "-c", "%U %u", "/proc/1").split() == ["postgres", "999"]
    assert stack.exec("redis", "stat", "-c", "%U %u", "/proc/1").split() == ["redis", "999"]
    # compose's checks (pg_isready, redis-cli ping) and the images' (/healthz, /metrics) pass.
    wait_for(
        "postgres, redis, web and proxy to be healthy",
        lambda: (
            stack.health()
            == {
                "postgres": "healthy",
                "redis": "healthy",
                "web": "healthy",
                "worker": "",
                "proxy": "healthy",
            }
        ),
        timeout=60,
    )


def test_secrets_come_from_files_and_never_sit_in_images_or_environment(stack: Stack) -> None:
    secret_values = {
        path.read_text().strip() for path in stack.secrets_dir.iterdir() if path.is_file()
    }
    for service in ("postgres", "redis", "migrate", "web", "worker", "proxy"):
        environment = "\n".join(stack.inspect(service)["Config"]["Env"])
        assert not any(value in environment for value in secret_values), service
    web_env = stack.inspect("web")["Config"]["Env"]
    assert "SPECTR_SECRET_KEY_FILE=/run/secrets/spectr_secret_key" in web_env
    assert (
        "POSTGRES_PASSWORD_FILE=/run/secrets/postgres_password"
        in (stack.inspect("postgres")["Config"]["Env"])
    )
    # The key came from the secret: no key file was generated in the instance folder.
    listing = stack.exec("web", "ls", "-A", "/var/lib/spectr/instance")
    assert "secret_key" not in listing.split()


def test_bundled_postgres_asks_other_containers_for_the_password_of_its_secret(
    stack: Stack,
) -> None:
    # `exec` skips spectr-entrypoint, so PGPASSWORD is unset here unless given.
    script = (
        "import sys, psycopg\n"
        "try:\n"
        "    psycopg.connect(sys.argv[1], connect_timeout=5).close()\n"
        "except psycopg.OperationalError as exc:\n"
        "    print(str(exc).strip().splitlines()[-1])\n"
        "else:\n"
        "    print('connected')\n"
    )
    password = (stack.secrets_dir / "postgres_password").read_text().strip()

    def connect(url: str) -> str:
        return stack.exec("web", "python3", "-c", script, url).strip()

    assert connect(f"postgresql://spectr:{password}@postgres:5432/spectr") == "connected"
    assert "password authentication failed" in connect(
        "postgresql://spectr:wrong@postgres:5432/spectr"
    )
    assert "no password supplied" in connect("postgresql://spectr@postgres:5432/spectr")


def test_proxy_serves_a_route_it_fetched_from_the_portal(stack: Stack, api: httpx.Client) -> None:
    before = httpx.get(f"{stack.proxy_url}/healthz", timeout=5)
    assert before.status_code == 404
    assert before.json()["error"]["code"] == "no_route"
    route = api.post("/api/v1/proxy/routes", json=ROUTE)
    assert route.status_code == 201, route.text
    _wait_for_the_proxy_route(stack)


def test_an_operation_queued_while_no_worker_runs_survives_a_redis_restart(
    stack: Stack, api: httpx.Client
) -> None:
    assert api.get("/api/v1/me").json()["username"] == "admin"
    stack.compose("stop", "--timeout", "5", "worker")
    try:
        # Counted from here: a periodic task the worker enqueued as it stopped may wait there too.
        waiting = _queue_length(stack)
        accepted = api.post("/api/v1/operations", json={"kind": "noop"})
        assert accepted.status_code == 202, accepted.text
        location = accepted.headers["Location"]
        assert _queue_length(stack) == waiting + 1  # in Redis, where no worker takes it
        stack.restart("redis")
        assert _queue_length(stack) == waiting + 1  # the append-only file kept it
        assert api.get(location).json()["state"] == "queued"
    finally:
        stack.start_and_wait_for_log("worker", WORKER_READY)
    # Well inside the 30 s after which recovery would enqueue it again from the database.
    done = finished_operation(api, location, timeout=20)
    assert done["state"] == "succeeded", done
    assert done["result"] == {"noop": True}


def test_after_a_redis_restart_the_portal_enqueues_the_worker_runs_and_the_proxy_listens(
    stack: Stack, api: httpx.Client
) -> None:
    stack.restart("redis")
    # The portal's pooled Redis connections were closed under it; it enqueues at once anyway,
    # and the worker, whose blocking read was cut, takes the operation.
    _noop_succeeds(api)
    # The proxy subscribed to its notifications again, and a route made now reaches it.
    wait_for(
        "the proxy to subscribe again",
        lambda: (
            stack.exec("redis", "redis-cli", "pubsub", "numsub", PROXY_CHANNEL).split()
            == [PROXY_CHANNEL, "1"]
        ),
        timeout=30,
    )
    route = api.post(
        "/api/v1/proxy/routes", json={**ROUTE, "name": "login-page", "path_prefix": "/login"}
    )
    assert route.status_code == 201, route.text
    wait_for(
        "the proxy to serve the route made after the Redis restart",
        lambda: httpx.get(f"{stack.proxy_url}/login", timeout=5).status_code == 200,
        timeout=30,
    )


def test_a_postgres_restart_answers_no_500_and_loses_no_data(
    stack: Stack, api: httpx.Client
) -> None:
    before = _operation_ids(api)
    assert before
    with PortalWatch(stack, api) as watch:
        # Requests side by side reach both gunicorn processes, and each pools connections to lose.
        watch.wait_for_answers(40)
        stack.restart("postgres")
        healthy_again = time.monotonic()
        watch.wait_for_answers(40)
    # While Postgres was away: 503s that say so. Once it is back, the connections it closed were
    # replaced at checkout, so no request fails on one of them (a 500 before that fix).
    watch.assert_no_error(all_ok_after=healthy_again)
    assert _operation_ids(api) >= before
    assert api.get("/api/v1/me").json()["username"] == "admin"  # the token, from the database
    _noop_succeeds(api)  # and the worker reached the database again too


def test_a_web_restart_keeps_tokens_data_and_the_route_through_the_proxy(
    stack: Stack, api: httpx.Client
) -> None:
    before = _operation_ids(api)
    stack.restart("web")
    assert api.get("/api/v1/me").json()["username"] == "admin"
    assert _operation_ids(api) == before
    _wait_for_the_proxy_route(stack)  # the proxy reaches the new web container by its name


def test_a_worker_restart_takes_the_next_operation(stack: Stack, api: httpx.Client) -> None:
    stack.start_and_wait_for_log("worker", WORKER_READY, restart=True)
    _noop_succeeds(api)


def test_a_proxy_restart_fetches_its_routes_again(stack: Stack, api: httpx.Client) -> None:
    stack.restart("proxy")
    # From the portal, with the token migrate wrote to the proxy-token volume.
    _wait_for_the_proxy_route(stack)
    assert stack.health()["proxy"] == "healthy"


@dataclass
class Answer:
    started: float  # time.monotonic() when the request was sent
    path: str
    status: int  # 0: no HTTP answer at all
    body: Any
    retry_after: str | None


@dataclass
class PortalWatch:
    """Threads that call the portal without pause (the API with the admin's token, and
    /healthz) and keep every answer, until the block ends and each path answers 200 again."""

    stack: Stack
    api: httpx.Client
    threads: int = 4
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> PortalWatch:
        for index in range(self.threads):
            path = "/api/v1/me" if index % 2 == 0 else "/healthz"
            worker = threading.Thread(target=self._call, args=(path,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *_exc: object) -> None:
        try:
            wait_for("the portal to answer 200 again", self._recovered, timeout=60)
        finally:
            self._stop.set()
            for worker in self._workers:
                worker.join(timeout=15)

    def _call(self, path: str) -> None:
        headers = dict(self.api.headers)
        with httpx.Client(base_url=self.stack.portal_url, headers=headers, timeout=10) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    response = client.get(path)
                except httpx.TransportError as exc:
                    self.answers.append(Answer(started, path, 0, repr(exc), None))
                    time.sleep(0.05)
                    continue
                try:
                    body: Any = response.json()
                except ValueError:
                    body = response.text[:200]
                retry_after = response.headers.get("Retry-After")
                self.answers.append(Answer(started, path, response.status_code, body, retry_after))
                time.sleep(0.02)

    def wait_for_answers(self, count: int) -> None:
        start = len(self.answers)
        wait_for(f"{count} answers", lambda: len(self.answers) >= start + count, timeout=30)

    def _recovered(self) -> bool:
        last = {answer.path: answer.status for answer in self.answers}
        return len(last) == 2 and set(last.values()) == {200}

    def assert_no_error(self, all_ok_after: float) -> None:
        """Each answer was a 200 or a 503 in Spectr's JSON error shape with Retry-After, and
        every request sent from all_ok_after on was a 200."""
        assert sum(answer.status == 200 for answer in self.answers) > 10, self.answers
        for answer in self.answers:
            if answer.status == 200:
                continue
            assert answer.started < all_ok_after, answer
            assert answer.status == 503, answer
            assert answer.body["code"] == "unavailable", answer
            assert answer.retry_after == "2", answer


def _queue_length(stack: Stack) -> int:
    return int(stack.exec("redis", "redis-cli", "llen", QUEUE_KEY))


def _operation_ids(api: httpx.Client) -> set[str]:
    listing = api.get("/api/v1/operations", params={"page_size": 100})
    assert listing.status_code == 200, listing.text
    return {item["id"] for item in listing.json()}


def _noop_succeeds(api: httpx.Client) -> dict[str, Any]:
    accepted = api.post("/api/v1/operations", json={"kind": "noop"})
    assert accepted.status_code == 202, accepted.text
    # Queued at once: the portal reached Redis (a failed enqueue leaves it "accepted").
    assert accepted.json()["state"] == "queued", accepted.json()
    # Well inside the 30 s after which recovery would enqueue it again from the database.
    done = finished_operation(api, accepted.headers["Location"], timeout=20)
    assert done["state"] == "succeeded", done
    return done


def _wait_for_the_proxy_route(stack: Stack) -> None:
    through = wait_for(
        "the proxy to route /healthz to the portal",
        lambda: (r := httpx.get(f"{stack.proxy_url}/healthz", timeout=5)).status_code == 200 and r,
        timeout=30,
    )
    assert through.json()["status"] == "ok"
