"""The policy interface, ``act(observation) -> action name``, and the observation it sees."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Observation:
    """What the device knows when it picks the action for one frame.

    Estimates come from the device's own past transfers, never from the future. Only
    the simulator fills ``lookahead`` (the true reward of an action for this frame),
    for the oracle, which is a bound and not deployable.
    """

    throughput_mbps: float  # current estimate (harmonic mean of recent samples); 0 when unknown
    rtt_ms: float  # estimated round-trip time (ms); 0 when unknown
    deadline_ms: float  # per-frame deadline (ms); 0 for none
    previous_action: str = "local"
    queue_frames: int = 0  # frames dropped just before this one (overtaken while the device was busy)
    server_available: bool = True
    throughputs_mbps: tuple[float, ...] = ()  # recent samples, oldest first
    throughput_age_s: float = 10.0  # age of the newest sample
    inflight_bytes: int = 0  # sent but not yet acknowledged
    last_latency_ms: float = 0.0  # latency of the newest frame whose result is in (0 before any)
    last_fallback: bool = False  # that frame was sent for offloading but ran locally (answer late, link down)
    lookahead: Callable[[str], float] | None = field(default=None, compare=False, repr=False)


HISTORY = 5
N_SCALARS = HISTORY + 7
LEGACY_SCALARS = HISTORY + 5  # policies saved before the last frame's outcome was a feature
# Upper bounds of the scalar features: log2(Mbit/s + 1) x5, sample age (s), RTT (100 ms), deadline (100 ms),
# queued frames (10s), bytes in flight (kB), the last frame's latency (100 ms, capped at 1 s) and whether
# it fell back to local.
SCALAR_HIGH = np.array([20.0] * HISTORY + [10.0, 100.0, 100.0, 10.0, 1100.0, 10.0, 1.0], dtype=np.float32)


def observation_vector(obs: Observation, action_names: list[str], n_scalars: int = N_SCALARS) -> np.ndarray:
    """The fixed-size float32 vector learned policies see (same in the simulator and on the device).

    ``n_scalars`` = ``LEGACY_SCALARS`` gives the layout without the last frame's outcome.
    """
    if n_scalars not in (LEGACY_SCALARS, N_SCALARS):
        raise ValueError(f"n_scalars must be {LEGACY_SCALARS} or {N_SCALARS}, got {n_scalars}")
    vec = np.zeros(N_SCALARS + len(action_names), dtype=np.float32)
    tputs = list(obs.throughputs_mbps)[-HISTORY:]
    if tputs:
        vec[HISTORY - len(tputs) : HISTORY] = np.log2(np.asarray(tputs, dtype=np.float64) + 1.0)
    vec[HISTORY] = min(obs.throughput_age_s, 10.0)
    vec[HISTORY + 1] = obs.rtt_ms / 100.0
    vec[HISTORY + 2] = obs.deadline_ms / 100.0
    vec[HISTORY + 3] = min(obs.queue_frames, 100) / 10.0
    vec[HISTORY + 4] = min(obs.inflight_bytes, 1 << 20) / 1e3
    vec[HISTORY + 5] = max(obs.last_latency_ms, 0.0) / 100.0
    vec[HISTORY + 6] = float(obs.last_fallback)
    np.minimum(vec[:N_SCALARS], SCALAR_HIGH, out=vec[:N_SCALARS])
    if obs.previous_action in action_names:
        vec[N_SCALARS + action_names.index(obs.previous_action)] = 1.0
    if n_scalars != N_SCALARS:
        vec = np.concatenate([vec[:n_scalars], vec[N_SCALARS:]])
    return vec


@runtime_checkable
class Policy(Protocol):
    """Chooses an action name (``local``, ``layer1/w0.5``, ``webp/q75``, ...) for each frame."""

    name: str

    def act(self, observation: Observation) -> str: ...


class FixedPolicy:
    """Always the same action."""

    def __init__(self, action: str) -> None:
        self.action = action
        self.name = "local" if action == "local" else f"fixed:{action}"

    def act(self, observation: Observation) -> str:
        return self.action
