"""Reading hosts from Ansible INI / YAML inventories and CSV."""

from __future__ import annotations

import pytest

from portal.hosts.inventory_import import InventoryError, guess_format, parse_hosts_file

INI = """
# GPU nodes
gpu-0 ansible_host=10.0.0.5

[h100]
gpu-1 ansible_host=10.0.0.11 ansible_port=2222
gpu-2 ansible_host=10.0.0.12 ansible_user=admin ansible_become_method=su

[a100]
old-1 ansible_host=old-1.lab.example spectr_labels="rack=r7;zone=b"

[gpus:children]
h100
a100

[h100:vars]
ansible_user=ops

[all:vars]
ansible_port=22
"""


def by_name(hosts: list[dict]) -> dict[str, dict]:
    return {host["name"]: host for host in hosts}


def test_ini_maps_connection_variables_groups_and_group_vars() -> None:
    hosts = by_name(parse_hosts_file(INI, "ini"))

    assert set(hosts) == {"gpu-0", "gpu-1", "gpu-2", "old-1"}
    assert hosts["gpu-1"] == {
        "name": "gpu-1",
        "address": "10.0.0.11",
        "ssh_port": 2222,
        "ssh_user": "ops",
        "labels": {"h100": "true", "gpus": "true"},
    }
    assert hosts["gpu-2"]["ssh_user"] == "admin"  # host vars win over group vars
    assert hosts["gpu-2"]["become_method"] == "su"
    assert hosts["gpu-2"]["ssh_port"] == 22  # from [all:vars]
    assert hosts["gpu-0"]["labels"] == {}
    assert hosts["old-1"]["labels"] == {"a100": "true", "gpus": "true", "rack": "r7", "zone": "b"}


def test_yaml_inventory_with_children_and_inherited_vars() -> None:
    text = """
all:
  vars: {ansible_user: root}
  children:
    h200:
      vars: {ansible_port: 2200}
      hosts:
        node-a: {ansible_host: 192.168.7.10}
        node-b: {ansible_host: 192.168.7.11, ansible_user: ops}
  hosts:
    lonely:
"""
    hosts = by_name(parse_hosts_file(text, "yaml"))

    assert hosts["node-a"] == {
        "name": "node-a",
        "address": "192.168.7.10",
        "ssh_port": 2200,
        "ssh_user": "root",
        "labels": {"h200": "true"},
    }
    assert hosts["node-b"]["ssh_user"] == "ops"
    assert hosts["lonely"]["address"] == "lonely"


def test_csv_with_labels_and_password_column() -> None:
    text = "name,address,ssh_port,ssh_user,labels,password\nn1,10.1.0.1,22,ops,gpu=h100;rack=3,s3cret\nn2,,,,,\n"

    hosts = parse_hosts_file(text, "csv")

    assert hosts[0] == {
        "name": "n1",
        "address": "10.1.0.1",
        "ssh_port": 22,
        "ssh_user": "ops",
        "ssh_password": "s3cret",
        "labels": {"gpu": "h100", "rack": "3"},
    }
    assert hosts[1] == {"name": "n2", "address": "n2", "labels": {}}


def test_host_ranges_expand_like_ansible_in_ini_and_yaml() -> None:
    ini = "[h200]\ngpu-[01:03] ansible_user=ops\ngpu-[a:b].lab\n"
    yaml_text = (
        "all:\n  children:\n    l40:\n      hosts:\n        n[0:20:10]: {ansible_port: 2200}\n"
    )

    ini_hosts = by_name(parse_hosts_file(ini, "ini"))
    yaml_hosts = by_name(parse_hosts_file(yaml_text, "yaml"))

    assert list(ini_hosts) == ["gpu-01", "gpu-02", "gpu-03", "gpu-a.lab", "gpu-b.lab"]
    assert ini_hosts["gpu-02"] == {
        "name": "gpu-02",
        "address": "gpu-02",
        "ssh_user": "ops",
        "labels": {"h200": "true"},
    }
    assert list(yaml_hosts) == ["n0", "n10", "n20"]
    assert {h["ssh_port"] for h in yaml_hosts.values()} == {2200}


@pytest.mark.parametrize(
    ("text", "file_format", "message"),
    [
        ("[g]\nhost ansible_port\n", "ini", "Line 2: expected key=value"),
        ("[g]\nhost ansible_port=ssh\n", "ini", "SSH port 'ssh' is not a number"),
        ("all: [1, 2]\n", "yaml", "Group 'all' must be a mapping"),
        ("- just\n- a list\n", "yaml", "must be a mapping of groups"),
        ("host,addr\nx,y\n", "csv", "CSV needs a header with 'name'"),
        ("name,colour\nx,red\n", "csv", "unknown: colour"),
        ("name,ssh_port\nx,70000\n", "csv", "out of range"),
        ("# nothing\n", "ini", "names no hosts"),
        ("x", "toml", "Unknown format 'toml'"),
        ("[g]\nn[01:3]\n", "ini", "Line 2: host range 'n\\[01:3\\]' is not valid"),
        ("[g]\nn[5:1]\n", "ini", "names no host"),
        ("[g]\nn[1:5000]\n", "ini", "more than 1000 hosts"),
        ("[g]\nn[1:99999999999]\n", "ini", "more than 1000 hosts"),
        ("all:\n  hosts:\n    n[a:9]:\n", "yaml", "Group 'all': host range"),
    ],
)
def test_bad_files_say_what_is_wrong(text: str, file_format: str, message: str) -> None:
    with pytest.raises(InventoryError, match=message):
        parse_hosts_file(text, file_format)


@pytest.mark.parametrize(
    ("filename", "text", "expected"),
    [
        ("hosts.yml", "", "yaml"),
        ("hosts.csv", "", "csv"),
        ("", "[gpus]\nx\n", "ini"),
        ("", "all:\n  hosts: {}\n", "yaml"),
        ("", "name,address\n", "csv"),
        ("", "node-1 ansible_host=1.2.3.4\n", "ini"),
    ],
)
def test_format_is_guessed_from_name_or_content(filename: str, text: str, expected: str) -> None:
    assert guess_format(filename, text) == expected
