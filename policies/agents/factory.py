"""Policies by name, as the command line and reports spell them."""

from __future__ import annotations

from pathlib import Path

from policies.agents.baselines import baseline
from policies.common.policy import FixedPolicy, Policy
from policies.simulation.profile import Profile

BASELINES = ("local", "edge", "greedy", "robust_mpc", "oracle")
LEARNED = ("ppo", "dqn")


def make_policy(spec: str, profile: Profile | None = None, live: bool = False) -> Policy:
    """``local``, ``edge``, ``fixed:<split>:<width>``, ``greedy``, ``robust_mpc``, ``oracle``, ``ppo``, ``dqn``,
    a policy file, or a bare action name (``layer2/w0.5``). ``live`` refuses what only a simulator can run."""
    if live and spec in ("oracle", "static_best"):
        raise ValueError(f"{spec!r} needs hindsight or the future; it only runs in the simulator")
    if spec in BASELINES or spec.startswith("fixed:"):
        return baseline(spec, profile if profile is not None else Profile.load())  # type: ignore[return-value]
    if spec in LEARNED or spec.endswith(".zip") or Path(spec).is_file():
        from policies.agents.rl import load_policy

        policy = load_policy(spec)
        if profile is not None:
            policy.check_actions(profile.names)
        return policy
    if profile is not None and spec not in profile.names:
        raise ValueError(f"unknown policy {spec!r}: name one of {', '.join(BASELINES + ('static_best',) + LEARNED)}, "
                         "fixed:<split>:<width>, a policy file, or an action of the profile "
                         f"({', '.join(profile.names)})")
    return FixedPolicy(spec)
