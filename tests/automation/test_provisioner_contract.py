"""The product's Provisioner contract suite (portal/automation/contract_suite.py) on Spectr's
ansible-runner provisioner, against a real SSH test host."""

from __future__ import annotations

import pytest

from portal.automation import InventoryHost
from portal.automation.contract_suite import ProvisionerContract
from portal.automation.provisioner import AnsibleRunnerProvisioner
from tests.automation.test_provisioner import _inventory_host
from tests.support.fixtures import test_host  # noqa: F401 - fixture

pytestmark = [pytest.mark.slow, pytest.mark.docker]


class TestAnsibleRunnerProvisioner(ProvisionerContract):
    @pytest.fixture
    def provisioner(self) -> AnsibleRunnerProvisioner:
        return AnsibleRunnerProvisioner()

    @pytest.fixture
    def inventory_host(self, test_host) -> InventoryHost:  # noqa: F811
        return _inventory_host(test_host)
