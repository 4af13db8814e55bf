"""Hosts: machines Spectr manages — onboarding over SSH, bootstrap, facts, GPUs, health."""
