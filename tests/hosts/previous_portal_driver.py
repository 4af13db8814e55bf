"""Run by tests/hosts/test_agent_contract.py under an OLDER portal's source, not this checkout's.

The test extracts the previous release's `portal/` from git history and runs this script with
`python -S` and PYTHONPATH = that tree, then the venv's site-packages (its dependencies): every
`portal` import below is the previous release's code. The script builds that portal's
AgentEngine as its `portal.hosts.service.agent_engine` did (the Spectr CA, the portal's client
certificate, the host's bearer token), drives the agent named in the JSON document on stdin
through the engine's public methods, and prints what it saw as one JSON document.

It reads: url, token, ca, client_cert (certificate and key in one PEM file), image, name and
label (the value of the `spectr.test` label on the container it creates).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from typing import Any


def drive(settings: dict[str, Any]) -> dict[str, Any]:
    import portal
    from portal.engines import AgentEngine, ContainerSpec, ExecExit, NotFound

    seen: dict[str, Any] = {"portal_source": portal.__file__}
    client = settings["client_cert"]
    engine = AgentEngine(settings["url"], settings["token"], settings["ca"],
                         client_cert=(client, client))  # fmt: skip
    name, labels = settings["name"], {"spectr.test": settings["label"]}
    try:
        health = engine.health()
        seen["health"] = {"reachable": health.reachable, "agent_version": health.agent_version,
                          "engine_version": health.engine_version, "error": health.error}  # fmt: skip
        facts = engine.facts()
        seen["facts"] = {key: facts.get(key) for key in ("hostname", "os", "docker")}
        seen["facts_keys"] = sorted(facts)
        seen["images"] = [tag for image in engine.list_images() for tag in image.tags]
        seen["image_tags"] = list(engine.inspect_image(settings["image"]).tags)
        seen["volumes_listed"] = isinstance(engine.list_volumes(), list)
        seen["networks"] = [network.name for network in engine.list_networks()]
        seen["model_cache_keys"] = sorted(engine.model_cache())

        spec = ContainerSpec(image=settings["image"], name=name, labels=labels,
                             env={"GREETING": "from-the-previous-portal"},
                             command=["sh", "-c", 'echo "$GREETING"; exec sleep 300'])  # fmt: skip
        created = engine.create_container(spec)
        seen["created"] = {"name": created.name, "state": created.state}
        seen["listed"] = [c.name for c in engine.list_containers(labels=labels)]
        seen["logs"] = _logs(engine, name)
        exec_out = [c for c in engine.exec_stream(name, ["echo", "spoken"])]
        seen["exec"] = {"stdout": "".join(getattr(c, "data", "") for c in exec_out),
                        "exit": [c.exit_code for c in exec_out if isinstance(c, ExecExit)]}  # fmt: skip
        seen["stats_pids"] = engine.container_stats(name).pids
        engine.stop_container(name, timeout=1)
        seen["after_stop"] = engine.inspect_container(name).state
        engine.start_container(name)
        seen["after_start"] = engine.inspect_container(name).state
        engine.restart_container(name, timeout=1)
        seen["after_restart"] = engine.inspect_container(name).state
        engine.stop_container(name, timeout=1)
        engine.remove_container(name)
        seen["listed_after_remove"] = [c.name for c in engine.list_containers(labels=labels)]
        try:
            engine.inspect_container(name)
            seen["inspect_removed"] = "found"
        except NotFound:
            seen["inspect_removed"] = "NotFound"
    finally:
        with contextlib.suppress(NotFound):
            engine.remove_container(name, force=True)
        engine.close()
    return seen


def _logs(engine: Any, name: str) -> str:
    """The container's log so far; it echoes before it sleeps: wait (5 s at most) for the line."""
    text = ""
    for _ in range(50):
        text = "".join(chunk.data for chunk in engine.logs(name, tail=10))
        if text:
            break
        time.sleep(0.1)
    return text


if __name__ == "__main__":
    print(json.dumps(drive(json.load(sys.stdin))))
