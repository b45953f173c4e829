"""robustMPC (Yin et al., SIGCOMM 2015; the strong heuristic of the Pensieve comparison), for split offloading.

Throughput is predicted as the harmonic mean of the last ``past`` samples, divided by
``1 + the largest relative error`` of the policy's own predictions over its last ``past``
decisions (the "robust" discount: after a surprise it plans for a slower link). In video
each decision downloads a chunk and so brings a sample; here a frame run locally brings
none, so the window counts decisions, not samples: a surprise is forgotten ``past`` frames
later, as in video, instead of holding the policy on local inference (no new samples, so
no new errors) for as long as the link stays unused. Each candidate action is
scored over a look-ahead of ``horizon`` frames that all take it, with the link's backlog
carried from frame to frame (bytes in flight first, then each frame's wire bytes), with the
simulator's reward: latency, energy (the profile's power model), accuracy lost against
local, and a penalty per missed deadline (an offload answered too late runs locally, as the
client does: :func:`~policies.common.timing.answer_wait_ms`). It takes the first action of the
best plan. Video MPC enumerates
every bitrate sequence; with some thirty actions here the plans hold one action each,
which is the same plan a sequence search finds when the predicted throughput is flat
over the horizon (robustMPC's own assumption).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from policies.agents.baselines import DEFAULT_MBPS
from policies.common.policy import Observation
from policies.common.timing import answer_wait_ms, harmonic_mean
from policies.simulation.profile import Profile


@dataclass(frozen=True)
class MpcWeights:
    """The terms of the predicted reward (the simulator's ``RewardWeights`` by default)."""

    latency: float = 10.0  # per second
    energy: float = 1.0  # per joule
    accuracy: float = 10.0  # per unit of top-1 lost against local
    deadline_miss: float = 2.0  # per late frame


class RobustMPCPolicy:
    """Plans ``horizon`` frames ahead on a discounted harmonic-mean throughput; takes the best plan's first action."""

    name = "robust_mpc"

    def __init__(self, profile: Profile, horizon: int = 5, past: int = 5, fps: float = 10.0,
                 weights: MpcWeights | None = None) -> None:
        if horizon < 1 or past < 1 or fps <= 0:
            raise ValueError("horizon and past must be >= 1 and fps > 0")
        self.profile, self.horizon, self.past, self.interval_ms = profile, horizon, past, 1e3 / fps
        self.weights = weights or MpcWeights()
        local_top1 = profile.actions[0].top1
        self._accuracy_drop = [max(0.0, local_top1 - a.top1) for a in profile.actions]
        self._errors: deque[tuple[int, float]] = deque(maxlen=past)  # (decision index, relative error)
        self._decision = 0
        self._predicted: float | None = None  # the last prediction, checked against the next new sample
        self._seen: tuple[float, ...] = ()

    def predicted_mbps(self, obs: Observation) -> float:
        """The discounted harmonic mean (Mbit/s); also scores the previous prediction against a new sample."""
        samples = obs.throughputs_mbps
        if samples and samples != self._seen:
            if self._predicted is not None and samples[-1] > 0:
                self._errors.append((self._decision, abs(self._predicted - samples[-1]) / samples[-1]))
            self._seen = samples
        recent = [s for s in samples[-self.past:] if s > 0]
        base = harmonic_mean(recent) if recent else (obs.throughput_mbps or DEFAULT_MBPS)
        self._predicted = base
        errors = [e for at, e in self._errors if at > self._decision - self.past]
        return base / (1.0 + (max(errors) if errors else 0.0))

    def plan_reward(self, i: int, mbps: float, obs: Observation) -> float:
        """Predicted reward of ``horizon`` frames that all take action ``i``."""
        p, w = self.profile, self.weights
        power = p.scenario.power
        action = p.actions[i]
        deadline = obs.deadline_ms
        rtt = obs.rtt_ms or p.scenario.rtt_ms
        device_ms, server_ms, local_ms = p.device_ms(i), p.server_ms(i), p.device_ms(0)
        ser_ms = action.link_bytes_mean * 8 / (mbps * 1e3)
        link_free = obs.inflight_bytes * 8 / (mbps * 1e3)  # ms from now until what is in flight has gone out
        total = 0.0
        for k in range(self.horizon):
            arrival = k * self.interval_ms
            if action.kind == "local":
                latency, energy = device_ms, device_ms * power.compute_w / 1e3
            else:
                tx_start = max(arrival + device_ms, link_free)
                link_free = tx_start + ser_ms
                latency = tx_start + ser_ms + rtt + server_ms - arrival
                energy = (device_ms * power.compute_w + ser_ms * power.radio_tx_w
                          + (rtt + server_ms) * power.idle_w) / 1e3
                wait = answer_wait_ms(local_ms, deadline) if deadline > 0 else 0.0
                if deadline > 0 and latency > wait:  # the client stops waiting and runs the frame locally
                    latency = max(wait, device_ms) + local_ms
                    energy += local_ms * power.compute_w / 1e3
            missed = deadline > 0 and latency > deadline
            total -= (latency / 1e3 * w.latency + energy * w.energy + self._accuracy_drop[i] * w.accuracy
                      + w.deadline_miss * missed)
        return total

    def act(self, observation: Observation) -> str:
        mbps = self.predicted_mbps(observation)
        self._decision += 1
        if not observation.server_available:
            return self.profile.actions[0].name
        best = max(range(len(self.profile.actions)), key=lambda i: self.plan_reward(i, mbps, observation))
        return self.profile.actions[best].name
