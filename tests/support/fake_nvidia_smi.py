"""A stand-in nvidia-smi: there is no GPU on this machine. It prints what the real one prints
for two H200s (the facts query, the telemetry query the agent and the portal use, and the
banner with the CUDA version), with readings that change at every call."""

from __future__ import annotations

import stat
from pathlib import Path

# Each call adds 10 to the first GPU's load (mod 100) and 1000 MiB to its memory in use.
FAKE_NVIDIA_SMI = """#!/bin/sh
count=$(cat "{state}" 2>/dev/null || echo 0); count=$((count + 1)); echo $count > "{state}"
case "$1" in
--query-gpu=*utilization*)
  echo "0, GPU-aaa, NVIDIA H200, 143771, $((count * 1000)), $(( (count * 10) % 100 )), $((40 + count)), 250.5"
  echo "1, GPU-bbb, NVIDIA H200, 143771, 512, [N/A], 38, [N/A]";;
--query-gpu=*)
  echo "0, GPU-aaa, NVIDIA H200, 143771, 0, 560.35.03"
  echo "1, GPU-bbb, NVIDIA H200, 143771, 0, 560.35.03";;
*) echo "| NVIDIA-SMI 560.35.03   Driver Version: 560.35.03   CUDA Version: 12.6 |";;
esac
"""


def install_fake_nvidia_smi(folder: Path) -> Path:
    """Write the stand-in as `folder`/nvidia-smi (its call counter beside it); return `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "nvidia-smi"
    script.write_text(FAKE_NVIDIA_SMI.format(state=folder / "calls"))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return folder
