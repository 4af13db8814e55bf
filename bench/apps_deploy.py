"""How long deploying an application takes, and what the declarative path costs.

Deploys the stand-in model server container onto this machine's Docker engine N times each way
and prints median / max seconds and the ratio to the baseline measured in the same run:

- baseline: the engine directly (LocalDockerEngine.create_container, then remove);
- role, first deploy: spectr.core.deploy_app through ansible-runner (local connection);
- role, same revision again: the declarative no-change run (what a redeploy costs);
- remove: spectr.core.remove_app.

    .venv/bin/python bench/apps_deploy.py [--runs 3]

Bounded: --runs (default 3, at most 10) of each; every container is named spectr-test-bench-*
and removed at the end.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from portal.apps.spec import role_variables  # noqa: E402
from portal.automation.inventory import InventoryHost  # noqa: E402
from portal.automation.provisioner import run_playbook  # noqa: E402
from portal.engines import ContainerSpec, LocalDockerEngine  # noqa: E402

COMMAND = ["python3", "/srv/server.py"]


def local_host() -> InventoryHost:
    return InventoryHost(
        name="bench-node",
        address="127.0.0.1",
        vars={
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "ansible_become": False,
        },
    )


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def playbook(name: str, variables: dict) -> None:
    result = run_playbook(name, hosts=[local_host()], extravars=variables)
    if not result.succeeded:
        raise SystemExit(f"{name} failed: {result.hosts}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    runs = min(max(parser.parse_args().runs, 1), 10)
    image = subprocess.run(
        [str(ROOT / "tests/images/build-model-server.sh")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[-1]
    engine = LocalDockerEngine()
    figures: dict[str, list[float]] = {"engine create+start (baseline)": [], "role: first deploy": [],
                                       "role: same revision again": [], "role: remove": []}  # fmt: skip
    for _ in range(runs):
        name = f"spectr-test-bench-{uuid.uuid4().hex[:8]}"
        spec = {
            "image": image,
            "command": COMMAND,
            "pull": "never",
            "ports": [],
        }
        variables = role_variables(name, "container", 1, spec, {})
        try:
            figures["engine create+start (baseline)"].append(
                timed(
                    lambda name=name: engine.create_container(
                        ContainerSpec(image=image, name=name, command=COMMAND)
                    )
                )
            )
            engine.remove_container(name, force=True)
            figures["role: first deploy"].append(
                timed(lambda v=variables: playbook("spectr.core.deploy_app", v))
            )
            figures["role: same revision again"].append(
                timed(lambda v=variables: playbook("spectr.core.deploy_app", v))
            )
            figures["role: remove"].append(
                timed(
                    lambda name=name: playbook(
                        "spectr.core.remove_app", {"app_name": name, "app_kind": "container"}
                    )
                )
            )
        finally:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    baseline = statistics.median(figures["engine create+start (baseline)"])
    print(f"{'step':<34} {'median s':>9} {'max s':>8} {'x baseline':>11}   ({runs} runs)")
    for step, values in figures.items():
        median = statistics.median(values)
        print(f"{step:<34} {median:>9.2f} {max(values):>8.2f} {median / baseline:>11.1f}")


if __name__ == "__main__":
    main()
