"""pytest fixtures for test hosts; import them in a conftest.py or test module.

from tests.support.fixtures import test_host, dind_host  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.testhosts import TestHost, cleanup_key_pair, start_test_host


def _host(name: str, **options: object) -> Iterator[TestHost]:
    host = start_test_host(name, **options)  # type: ignore[arg-type]
    try:
        yield host
    finally:
        host.remove()
        cleanup_key_pair(host.key_pair)


@pytest.fixture(scope="module")
def test_host() -> Iterator[TestHost]:
    """A plain Debian host over SSH, shared by the tests of one module."""
    yield from _host("host")


@pytest.fixture(scope="module")
def dind_host() -> Iterator[TestHost]:
    """A Debian host with its own running Docker engine, shared by one module."""
    yield from _host("dind", dind=True)


@pytest.fixture
def make_test_host() -> Iterator[object]:
    """Return a factory starting hosts that are removed when the test ends."""
    hosts: list[TestHost] = []

    def factory(name_suffix: str, **options: object) -> TestHost:
        host = start_test_host(name_suffix, **options)  # type: ignore[arg-type]
        hosts.append(host)
        return host

    yield factory
    for host in hosts:
        host.remove()
        cleanup_key_pair(host.key_pair)
