"""``splitnet/Offload-v0``: the offloading decision as a gymnasium environment.

One step is one frame. Action: an index into the profile's actions (local, every
split x width, raw features, image offload at a few qualities). Observation (float32):

* the last 5 throughput samples the device measured from its own transfers (log2 of
  Mbit/s + 1, zeros when unknown), and the age of the newest one (s, capped at 10);
* the RTT it measured (ms / 100), the deadline (ms / 100), frames dropped just before this one (/ 10),
  bytes of its own still unacknowledged (KB);
* the newest frame result it has: its latency (ms / 100, capped at 10) and whether it
  fell back to local (1) or not (0);
* the previous action, one-hot.

Reward: see :class:`~policies.simulation.simulator.RewardWeights`. Episodes walk ``episode_frames``
frames along a trace from a random (seeded) start; traces are drawn from the set given.
Before an episode the device probes the link ``warmup_probes`` times, as the device client
does before its camera starts (``SplitClient.measure_link``), so the first observation
already holds measurements.
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from policies.common.policy import N_SCALARS, SCALAR_HIGH, observation_vector
from policies.network.traces import Trace
from policies.simulation.profile import Profile
from policies.simulation.simulator import OffloadSimulator, RewardWeights

ENV_ID = "splitnet/Offload-v0"


class OffloadEnv(gym.Env):
    """Per-frame choice of split, width, local or image offload over measured traces."""

    metadata = {"render_modes": []}

    def __init__(self, profile: Profile | None = None, traces: Sequence[Trace] | None = None, fps: float = 10.0,
                 deadline_ms: float = 100.0, episode_frames: int = 1000, weights: RewardWeights | None = None,
                 deadline_range: tuple[float, float] | None = None, warmup_probes: int = 3) -> None:
        super().__init__()
        self.profile = profile if profile is not None else Profile.load()
        if not traces:
            from policies.network.trace_sets import load_split

            traces = load_split("train")
        self.traces = list(traces)
        self.fps = fps
        self.deadline_ms = deadline_ms
        self.deadline_range = deadline_range
        self.episode_frames = episode_frames
        self.warmup_probes = warmup_probes
        self.weights = weights or RewardWeights()
        self._sims = [OffloadSimulator(self.profile, t, fps, deadline_ms, self.weights) for t in self.traces]
        self.sim = self._sims[0]
        n = self.sim.n_actions
        self.action_space = spaces.Discrete(n)
        low = np.zeros(N_SCALARS + n, dtype=np.float32)
        high = np.concatenate([SCALAR_HIGH, np.ones(n, dtype=np.float32)])
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self._steps = 0

    @property
    def action_names(self) -> list[str]:
        return self.profile.names

    def _observe(self) -> np.ndarray:
        return observation_vector(self.sim.observation(), self.profile.names)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        options = options or {}
        k = options.get("trace", int(self.np_random.integers(len(self._sims))))
        self.sim = self._sims[k]
        duration = self.sim.trace.duration_s
        start = options.get("start_s", float(self.np_random.uniform(0, duration)))
        if self.deadline_range:
            self.sim.deadline_ms = float(self.np_random.uniform(*self.deadline_range))
        else:
            self.sim.deadline_ms = options.get("deadline_ms", self.deadline_ms)
        self.sim.reset(start, int(self.np_random.integers(2**31)))
        self.sim.warm_up(self.warmup_probes)
        self._steps = 0
        return self._observe(), {"trace": self.sim.trace.name, "start_s": start}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        out = self.sim.step(int(action))
        self._steps += 1
        info = {"latency_ms": out.latency_ms, "energy_j": out.energy_j, "correct": out.correct,
                "bytes": out.payload_bytes, "missed": out.missed}
        truncated = self._steps >= self.episode_frames
        return self._observe(), float(out.reward), False, truncated, info


def register() -> None:
    """Register ``splitnet/Offload-v0`` with gymnasium (idempotent)."""
    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point="policies.simulation.env:OffloadEnv")
