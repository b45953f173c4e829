"""Offloading policies and (later) channel models and the gymnasium environment."""

from policies.base import FixedPolicy, Observation, Policy

__all__ = ["FixedPolicy", "Observation", "Policy"]
