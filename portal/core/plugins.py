"""Replaceable modules found by entry point: container engines and provisioners.

A package offers one by declaring an entry point in its own metadata, for example

    [project.entry-points."spectr.engines"]
    podman = "spectr_podman:engine_for_host"

and configuration alone picks it (SPECTR_HOST_ENGINES, SPECTR_PROVISIONER, ...): nothing in
portal/ names it. Spectr's own implementations are built in under fixed names, which an
installed package cannot take over.

What each group's object is called with:
- spectr.engines: `factory(host) -> ContainerEngine` (portal.hosts.models.Host; the engine's
  settings are the package's own business, read from the environment or the app config);
  the suite in portal/engines/contract_suite.py says what an engine must do.
- spectr.provisioners: `factory() -> Provisioner` (portal/automation/contract_suite.py).

Storage is not a group here: Spectr's registry (images and the model store) uses the storage
drivers of the registry itself (filesystem, s3), chosen by SPECTR_REGISTRY_STORAGE.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any

from portal.core.errors import SpectrError

GROUPS = {
    "engine": "spectr.engines",
    "provisioner": "spectr.provisioners",
}


class PluginMissing(SpectrError):
    """Configuration names an implementation that is neither built in nor installed."""

    status = 503
    code = "plugin_missing"


def installed(kind: str) -> dict[str, Any]:
    """The entry points of one group, by name (installed packages only)."""
    return {point.name: point for point in entry_points(group=GROUPS[kind])}


def load(kind: str, name: str, builtins: Mapping[str, Callable[..., Any]]) -> Callable[..., Any]:
    """Return the factory called `name`: a built-in one, else an installed entry point's."""
    if name in builtins:
        return builtins[name]
    point = installed(kind).get(name)
    if point is None:
        offered = sorted({*builtins, *installed(kind)})
        raise PluginMissing(
            f"No {kind} named '{name}': built in or installed are {', '.join(offered)} "
            f"(entry point group {GROUPS[kind]}).",
            {kind: name},
        )
    return point.load()  # type: ignore[no-any-return]
