"""Offloading decisions: network emulation (``network``), the simulated device, link and
server (``simulation``) and the policies that choose an action per frame (``agents``)."""

from policies.agents.base import FixedPolicy, Observation, Policy

__all__ = ["FixedPolicy", "Observation", "Policy"]
