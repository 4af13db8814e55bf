"""Projects: who may see and act on which hosts, applications, gateway keys and routes."""
