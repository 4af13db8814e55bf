"""Spectr agent: a thin HTTPS service over a host's Docker engine."""

__version__ = "0.2.0"

# The version of the agent API contract (MAJOR.MINOR), apart from the package's version: a minor
# step only adds (fields, endpoints), a major one breaks, and the portal refuses an agent whose
# major it does not speak. Agents before 0.2.0 report none; they serve contract 1.0.
CONTRACT = "1.1"
