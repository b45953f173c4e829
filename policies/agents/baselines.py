"""Baseline policies: local, edge, fixed, greedy (Neurosurgeon-style), oracle; robustMPC is in ``robust_mpc``."""

from __future__ import annotations

from policies.common.policy import FixedPolicy, Observation
from policies.common.timing import predicted_offload_ms
from policies.simulation.profile import Profile

DEFAULT_MBPS = 1.0  # greedy's guess before its first measurement


def edge_action(profile: Profile) -> str:
    """The image-offload action with the best top-1 (the fewest bytes among ties)."""
    images = [a for a in profile.actions if a.kind == "input"]
    if not images:
        raise ValueError("the profile has no image-offload action")
    return max(images, key=lambda a: (a.top1, -a.bytes_mean)).name


def fixed_action(spec: str) -> str:
    """``fixed:layer2:0.5`` -> ``layer2/w0.5``; ``fixed:webp/q75`` -> ``webp/q75``."""
    body = spec.removeprefix("fixed:")
    if ":" in body:
        split, width = body.rsplit(":", 1)
        return f"{split}/w{float(width):g}"
    return body


class GreedyPolicy:
    """Neurosurgeon-style: predict throughput from recent samples, take the fastest action meeting the floor.

    Predicted latency = device ms + bytes / throughput + RTT + server ms (the bytes a frame puts on
    the link beyond an empty call's: payload and request overhead), with the
    throughput the harmonic mean of the device's recent measurements. Actions whose
    top-1 is more than ``accuracy_floor_pts`` below local are not considered.
    """

    name = "greedy"

    def __init__(self, profile: Profile, accuracy_floor_pts: float = 1.0) -> None:
        local = profile.actions[0].top1
        self.candidates = [i for i, a in enumerate(profile.actions)
                           if a.top1 >= local - accuracy_floor_pts / 100.0 - 1e-12]
        self.profile = profile

    def predicted_ms(self, i: int, obs: Observation) -> float:
        a = self.profile.actions[i]
        if a.kind == "local":
            return self.profile.device_ms(i)
        mbps = obs.throughput_mbps or DEFAULT_MBPS
        rtt = obs.rtt_ms or self.profile.scenario.rtt_ms
        return predicted_offload_ms(self.profile.device_ms(i), a.link_bytes_mean, mbps, rtt, self.profile.server_ms(i))

    def act(self, observation: Observation) -> str:
        best = min(self.candidates, key=lambda i: self.predicted_ms(i, observation))
        return self.profile.actions[best].name


class OraclePolicy:
    """Knows the true upcoming throughput: takes the action with the best true reward for this frame.

    Needs the simulator's ``lookahead``; a bound to compare against, not deployable.
    """

    name = "oracle"

    def __init__(self, profile: Profile) -> None:
        self.names = profile.names

    def act(self, observation: Observation) -> str:
        if observation.lookahead is None:
            raise ValueError("the oracle needs the simulator's lookahead")
        return max(self.names, key=observation.lookahead)


def baseline(name: str, profile: Profile) -> object:
    """A baseline policy by its report name: local, edge, fixed:<split>:<width>, greedy, robust_mpc, oracle."""
    if name == "local":
        return FixedPolicy("local")
    if name == "edge":
        p = FixedPolicy(edge_action(profile))
        p.name = "edge"
        return p
    if name.startswith("fixed:"):
        action = fixed_action(name)
        profile.index(action)  # raises for an unknown action
        p = FixedPolicy(action)
        p.name = name
        return p
    if name == "greedy":
        return GreedyPolicy(profile)
    if name == "oracle":
        return OraclePolicy(profile)
    if name == "robust_mpc":
        from policies.agents.robust_mpc import RobustMPCPolicy

        return RobustMPCPolicy(profile)
    raise ValueError(f"unknown baseline {name!r}")
