"""The registry role's container method on a DinD test host, run twice, then with GC.

No registry image can be pulled here: the test imports one into the host's engine from
Debian's docker-registry binary (the same distribution v2 server the official image ships),
with `registry` on PATH as in the official image.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agent.tests.registry_seed import push_tiny_image
from tests.collection.ansible_runs import AnsibleEnvironment
from tests.collection.tls import TestCA
from tests.support.testhosts import TestHost, cleanup_key_pair, start_test_host

pytestmark = [pytest.mark.slow, pytest.mark.docker]

IMAGE = "spectr-test/registry:local"
MAKE_IMAGE = f"""set -e
mkdir -p /tmp/registry-image/bin
ln -sf /usr/bin/docker-registry /tmp/registry-image/bin/registry
tar -ch -C / -f /tmp/registry-image.tar \\
  usr/bin/docker-registry lib/x86_64-linux-gnu/libc.so.6 lib64/ld-linux-x86-64.so.2
tar -r -C /tmp/registry-image -f /tmp/registry-image.tar bin/registry
docker import --change 'CMD ["/usr/bin/docker-registry", "serve", "/etc/docker/registry/config.yml"]' \\
  /tmp/registry-image.tar {IMAGE}
"""


@pytest.fixture(scope="module")
def host() -> Iterator[TestHost]:
    test_host = start_test_host("registry-ctr", dind=True, extra_ports=(5000,))
    test_host.exec("bash", "-c", MAKE_IMAGE)
    yield test_host
    test_host.remove()
    cleanup_key_pair(test_host.key_pair)


def test_container_registry_twice_then_garbage_collected(
    ansible_env: AnsibleEnvironment, host: TestHost, tmp_path: Path
) -> None:
    ca = TestCA()
    cert = ca.issue()
    role_vars = {
        "registry_install_method": "container",
        "registry_image": IMAGE,
        "registry_tls_cert": cert.cert_pem,
        "registry_tls_key": cert.key_pem,
        "registry_users": [{"name": "spectr", "password": "container-registry-pw"}],
    }
    inventory = ansible_env.write_inventory({"testhost": host.inventory_vars()}, "registry-ctr")

    first = ansible_env.run_playbook("spectr.core.registry", inventory, role_vars)
    second = ansible_env.run_playbook("spectr.core.registry", inventory, role_vars)

    assert first.task("Run the registry container")["changed"] is True
    assert second.changed_count() == 0
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(ca.cert_pem)
    tls = ssl.create_default_context(cafile=str(ca_file))
    base_url = f"https://127.0.0.1:{host.published_ports[5000]}"
    assert httpx.get(f"{base_url}/v2/", verify=tls).status_code == 401
    with httpx.Client(
        base_url=base_url, verify=tls, auth=("spectr", "container-registry-pw")
    ) as client:
        push_tiny_image(client, "gc/hello", "v1", b"collect me later")

    collected = ansible_env.run_playbook(
        "spectr.core.registry", inventory, {**role_vars, "registry_gc_now": True}
    )

    assert collected.task("Run garbage collection now")["rc"] == 0
    stored = host.ssh("ls", "/var/lib/spectr-registry/docker/registry/v2/repositories")
    assert stored.split() == ["gc"]
