"""Offloading decisions: network emulation, simulation, the policies, and what they share (``common``)."""

from policies.common.policy import FixedPolicy, Observation, Policy

__all__ = ["FixedPolicy", "Observation", "Policy"]
