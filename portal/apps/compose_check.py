"""Check compose text for the editor: every problem with the line (and column) it is on.

compose.py decides what is valid, and `docker compose config` adds what only Compose knows
where this machine has it; this module finds where, in the text, each problem sits: YAML errors carry their mark, and a problem of the parsed document (a path such as
services/web/ports/0) is looked up in the node tree that PyYAML composes from the same text.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from typing import Any

import yaml

from portal.apps.compose import compose_problems, service_images

MAX_TEXT = 256 * 1024  # a compose file larger than this is not a compose file


@dataclass(frozen=True)
class ComposeProblem:
    line: int  # 1-based
    column: int  # 1-based
    path: str
    message: str


def check_compose_text(text: str) -> dict[str, Any]:
    """{valid, problems: [{line, column, path, message}], services: [{name, image}]}."""
    if len(text) > MAX_TEXT:
        problem = ComposeProblem(1, 1, "", f"the file is larger than {MAX_TEXT // 1024} KiB")
        return _answer([problem], None)
    try:
        document = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        return _answer([_yaml_problem(exc)], None)
    found = compose_problems(document) or compose_config_problems(text)  # Compose's own last
    problems = [_located(root, path, message) for path, message in found]
    return _answer(problems, document if not problems else None)


def compose_config_problems(text: str) -> list[tuple[tuple[str, ...], str]]:
    """`docker compose config -q` on the text, where this machine has Compose v2: what the
    schema cannot see (a dependency on a service that does not exist, a required variable
    without a value, a missing env_file). [] where Compose is not installed.

    It runs in an empty folder with an environment of PATH, HOME and DOCKER_CONFIG only, so
    nothing of the portal's environment is interpolated into the file or its messages.
    """
    docker = shutil.which("docker")
    config = os.environ.get("DOCKER_CONFIG", "")
    if docker is None or not _compose_available(docker, config):
        return []
    with tempfile.TemporaryDirectory(prefix="spectr-compose-") as folder:
        env = {"PATH": os.environ.get("PATH", ""), "HOME": folder}
        if config:
            env["DOCKER_CONFIG"] = config
        try:
            done = subprocess.run(
                [docker, "compose", "--project-name", "check", "-f", "-", "config", "-q"],
                input=text, capture_output=True, text=True, timeout=10, cwd=folder, env=env,
            )  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            return []
    error = done.stderr.strip()
    if done.returncode == 0 or not error:
        return []
    return [(_compose_path(error), _compose_message(error, folder))]


@functools.lru_cache(maxsize=8)
def _compose_available(docker: str, config: str) -> bool:
    """Whether `docker compose` is Compose v2 here (asked once per CLI and DOCKER_CONFIG)."""
    env = {"PATH": os.environ.get("PATH", ""), **({"DOCKER_CONFIG": config} if config else {})}
    try:
        done = subprocess.run([docker, "compose", "version", "--short"], capture_output=True,
                              text=True, timeout=10, env=env)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and done.stdout.strip()[:1] in ("2", "v")


def _compose_path(error: str) -> tuple[str, ...]:
    """Where Compose's message points: `services.web.image`, or `service "web"`."""
    dotted = re.search(r"\bservices\.([A-Za-z0-9_.-]+)", error)
    if dotted:
        return ("services", *dotted.group(1).split(".")[:2])
    named = re.search(r'service "([^"]+)"', error)
    return ("services", named.group(1)) if named else ()


def _compose_message(error: str, folder: str) -> str:
    line = error.splitlines()[-1].removeprefix("validating -: ")
    return "docker compose config: " + line.replace(folder + "/", "")


def _answer(problems: list[ComposeProblem], document: dict[str, Any] | None) -> dict[str, Any]:
    services = []
    if document is not None:
        images = dict(zip(document["services"], service_images(document), strict=False))
        services = [{"name": name, "image": images.get(name, "")} for name in document["services"]]
    return {
        "valid": not problems,
        "problems": [asdict(problem) for problem in problems],
        "services": services,
    }


def _yaml_problem(exc: yaml.YAMLError) -> ComposeProblem:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    reason = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    message = f"not valid YAML: {context + ', ' if context else ''}{reason}"
    if mark is None:
        return ComposeProblem(1, 1, "", message)
    return ComposeProblem(mark.line + 1, mark.column + 1, "", message)


def _located(root: yaml.Node | None, path: tuple[Any, ...], message: str) -> ComposeProblem:
    """The problem at the deepest entry of `path` the text has (a missing key: its parent's).

    An entry of a mapping is shown at its key (`worker:`), where a person looks for it; an
    item of a list at the item.
    """
    node, mark = root, root.start_mark if root is not None else None
    for step in path:
        found = _child(node, step)
        if found is None:
            break
        node, mark = found[1], found[0].start_mark
    where = "/".join(map(str, path))
    if mark is None:
        return ComposeProblem(1, 1, where, message)
    return ComposeProblem(mark.line + 1, mark.column + 1, where, message)


def _child(node: yaml.Node | None, step: Any) -> tuple[yaml.Node, yaml.Node] | None:
    """(where to point, the child node) for one step of a path, or None when it is absent."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if str(key.value) == str(step):
                return key, value
    if isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
        return node.value[step], node.value[step]
    return None
