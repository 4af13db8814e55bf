"""Read hosts from an Ansible-style inventory (INI or YAML) or from CSV, for bulk add.

Host ranges (`node[01:10]`, `gpu-[a:d]`, `n[0:20:5]`) expand as Ansible expands them, at most
1,000 names a pattern. Connection variables map onto host fields (ansible_host, ansible_port, ansible_user,
ansible_become_method, ansible_password); every group a host belongs to becomes a label
`<group>=true`. Key files named in an inventory are not read: the portal never opens paths
from an upload. The credential for the whole batch comes with the request instead.
"""

from __future__ import annotations

import csv
import io
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

import yaml
from ansible.errors import AnsibleError
from ansible.plugins.inventory import detect_range, expand_hostname_range

FIELD_OF_VARIABLE = {
    "ansible_host": "address",
    "ansible_ssh_host": "address",
    "ansible_port": "ssh_port",
    "ansible_ssh_port": "ssh_port",
    "ansible_user": "ssh_user",
    "ansible_ssh_user": "ssh_user",
    "ansible_become_method": "become_method",
    "ansible_password": "ssh_password",
    "ansible_ssh_pass": "ssh_password",
}
CSV_COLUMNS = ("name", "address", "ssh_port", "ssh_user", "become_method", "labels", "password")
_SECTION = re.compile(r"^\[([^\]:]+)(?::(vars|children))?\]$")
_RANGE = re.compile(r"\[([^\]]*)\]")
MAX_HOSTS_PER_PATTERN = 1000


class InventoryError(ValueError):
    """The file could not be read as an inventory; the message says where and why."""


@dataclass
class _Entry:
    variables: dict[str, Any] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)


def parse_hosts_file(text: str, file_format: str) -> list[dict[str, Any]]:
    """Return host field dicts from `text` in format ini, yaml or csv."""
    parsers = {"ini": _parse_ini, "yaml": _parse_yaml, "csv": _parse_csv}
    if file_format not in parsers:
        raise InventoryError(f"Unknown format '{file_format}'; use ini, yaml or csv.")
    hosts = parsers[file_format](text)
    if not hosts:
        raise InventoryError("The file names no hosts.")
    return hosts


def guess_format(filename: str, text: str) -> str:
    """Pick a format from the file name, else from the content."""
    lowered = filename.lower()
    for suffixes, name in (((".yml", ".yaml"), "yaml"), ((".csv",), "csv"), ((".ini",), "ini")):
        if lowered.endswith(suffixes):
            return name
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if first.startswith("["):
        return "ini"
    if first.rstrip().endswith(":") or first.startswith("---"):
        return "yaml"
    return "csv" if "," in first else "ini"


def _parse_ini(text: str) -> list[dict[str, Any]]:
    entries: dict[str, _Entry] = {}
    group_vars: dict[str, dict[str, Any]] = {}
    children: dict[str, list[str]] = {}
    section, kind = "ungrouped", "hosts"
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        header = _SECTION.match(line)
        if header:
            section, kind = header.group(1).strip(), header.group(2) or "hosts"
            continue
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            raise InventoryError(f"Line {number}: {exc}.") from None
        if kind == "vars":
            group_vars.setdefault(section, {}).update(_assignments(words, number))
        elif kind == "children":
            children.setdefault(section, []).append(words[0])
        else:
            variables = _assignments(words[1:], number)
            for name in expand_host_pattern(words[0], f"Line {number}"):
                entry = entries.setdefault(name, _Entry())
                entry.variables.update(variables)
                if section not in ("ungrouped", "all"):
                    entry.groups.append(section)
    _apply_children(entries, children)
    for entry in entries.values():
        inherited = dict(group_vars.get("all", {}))
        for group in entry.groups:
            inherited.update(group_vars.get(group, {}))
        entry.variables = {**inherited, **entry.variables}
    return [_host_fields(name, entry) for name, entry in entries.items()]


def expand_host_pattern(pattern: str, where: str) -> list[str]:
    """Expand Ansible host ranges (`node[01:10]`, `db-[a:c]`, `n[0:20:5]`) into host names."""
    if not detect_range(pattern):
        return [pattern]
    # Counted before expanding: `n[1:99999999]` must be refused, not built in memory.
    if _range_size(pattern) > MAX_HOSTS_PER_PATTERN:
        raise InventoryError(
            f"{where}: '{pattern}' names more than {MAX_HOSTS_PER_PATTERN} hosts; split it."
        )
    try:
        names = expand_hostname_range(pattern)
    except (AnsibleError, ValueError) as exc:
        raise InventoryError(f"{where}: host range '{pattern}' is not valid: {exc}.") from None
    if not names:
        raise InventoryError(f"{where}: host range '{pattern}' names no host (is it reversed?).")
    return names


def _range_size(pattern: str) -> int:
    size = 1
    for body in _RANGE.findall(pattern):
        begin, _, rest = body.partition(":")
        end, _, step = rest.partition(":")
        if (begin or "0").isdigit() and end.isdigit() and (not step or step.isdigit()):
            size *= max(0, int(end) - int(begin or 0)) // max(1, int(step or 1)) + 1
        else:
            size *= 26  # letters: a-z at most; anything else is refused when expanded
    return size


def _assignments(words: list[str], number: int) -> dict[str, str]:
    values = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise InventoryError(f"Line {number}: expected key=value, got '{word}'.")
        values[key] = value
    return values


def _apply_children(entries: dict[str, _Entry], children: dict[str, list[str]]) -> None:
    for parent, groups in children.items():
        for entry in entries.values():
            if set(groups) & set(entry.groups):
                entry.groups.append(parent)


def _parse_yaml(text: str) -> list[dict[str, Any]]:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InventoryError(f"Not valid YAML: {exc}") from None
    if not isinstance(document, dict):
        raise InventoryError("A YAML inventory must be a mapping of groups (e.g. 'all:').")
    entries: dict[str, _Entry] = {}
    for group, body in document.items():
        _walk_yaml_group(str(group), body, {}, [], entries)
    return [_host_fields(name, entry) for name, entry in entries.items()]


def _walk_yaml_group(
    group: str, body: Any, inherited: dict, groups: list[str], entries: dict[str, _Entry]
) -> None:
    if body is None:
        return
    if not isinstance(body, dict):
        raise InventoryError(f"Group '{group}' must be a mapping with hosts, vars or children.")
    variables = {**inherited, **(body.get("vars") or {})}
    lineage = groups + ([group] if group not in ("all", "ungrouped") else [])
    for pattern, host_vars in (body.get("hosts") or {}).items():
        for name in expand_host_pattern(str(pattern), f"Group '{group}'"):
            entry = entries.setdefault(name, _Entry())
            entry.variables = {**variables, **entry.variables, **(host_vars or {})}
            entry.groups.extend(g for g in lineage if g not in entry.groups)
    for child, child_body in (body.get("children") or {}).items():
        _walk_yaml_group(str(child), child_body, variables, lineage, entries)


def _host_fields(name: str, entry: _Entry) -> dict[str, Any]:
    fields: dict[str, Any] = {"name": name, "address": name}
    for variable, value in entry.variables.items():
        if variable in FIELD_OF_VARIABLE:
            fields[FIELD_OF_VARIABLE[variable]] = value
    labels = {group: "true" for group in entry.groups}
    labels.update(_labels(str(entry.variables.get("spectr_labels", "")), name))
    fields["labels"] = labels
    if "ssh_port" in fields:
        fields["ssh_port"] = _port(fields["ssh_port"], name)
    return fields


def _parse_csv(text: str) -> list[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text.strip()))
    header = [column.strip().lower() for column in reader.fieldnames or []]
    unknown = sorted(set(header) - set(CSV_COLUMNS))
    if "name" not in header or unknown:
        raise InventoryError(
            f"CSV needs a header with 'name' and only these columns: {', '.join(CSV_COLUMNS)}"
            + (f" (unknown: {', '.join(unknown)})." if unknown else ".")
        )
    hosts = []
    for number, row in enumerate(reader, start=2):
        row = {key.strip().lower(): (value or "").strip() for key, value in row.items() if key}
        if not row.get("name"):
            raise InventoryError(f"Row {number}: the name is empty.")
        fields: dict[str, Any] = {"name": row["name"], "address": row.get("address") or row["name"]}
        for column in ("ssh_user", "become_method"):
            if row.get(column):
                fields[column] = row[column]
        if row.get("ssh_port"):
            fields["ssh_port"] = _port(row["ssh_port"], row["name"])
        if row.get("password"):
            fields["ssh_password"] = row["password"]
        fields["labels"] = _labels(row.get("labels", ""), row["name"])
        hosts.append(fields)
    return hosts


def _labels(text: str, host: str) -> dict[str, str]:
    """Read labels written as `key=value;key2=value2` (commas work too)."""
    labels = {}
    for item in re.split(r"[;,]", text):
        if item.strip():
            key, _, value = item.partition("=")
            if not key.strip():
                raise InventoryError(f"Host '{host}': label '{item}' has no key.")
            labels[key.strip()] = value.strip()
    return labels


def _port(value: Any, host: str) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise InventoryError(f"Host '{host}': SSH port '{value}' is not a number.") from None
    if not 0 < port < 65536:
        raise InventoryError(f"Host '{host}': SSH port {port} is out of range.")
    return port
