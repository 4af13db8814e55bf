"""Which versions of the agent API contract this portal speaks, and the refusal of others.

The agent reports its contract (MAJOR.MINOR, agent/__init__.py CONTRACT) in /v1/health and in
the Spectr-Agent-Contract header of every answer. Minor steps only add, so any minor of a major
listed here is spoken; a major not listed is refused with a message an operator can act on.
Agents from before contracts were versioned (spectr-agent 0.1.0) report none: they serve 1.0.
"""

from __future__ import annotations

AGENT_CONTRACT_HEADER = "Spectr-Agent-Contract"
AGENT_CONTRACT_MAJORS = (1,)
AGENT_CONTRACT_UNVERSIONED = "1.0"


def speaks() -> str:
    """The agent contracts this portal speaks, as people read them ("1.x")."""
    return ", ".join(f"{major}.x" for major in AGENT_CONTRACT_MAJORS)


def agent_contract_problem(reported: str | None) -> str | None:
    """Why the portal refuses an agent reporting this contract; None when it speaks it."""
    contract = reported or AGENT_CONTRACT_UNVERSIONED
    major, _, minor = contract.partition(".")
    if major.isdigit() and minor.isdigit() and int(major) in AGENT_CONTRACT_MAJORS:
        return None
    return (
        f"Incompatible agent: it speaks agent API contract {contract[:20]}, this portal speaks "
        f"{speaks()}. Bootstrap the host again to install this portal's agent, or upgrade the "
        "portal."
    )
