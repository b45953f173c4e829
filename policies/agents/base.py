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


FALLBACK_MARGIN = 1.2  # a local fallback is given this many times the device's local run time
RESERVE_SHARE = 0.05  # the least part of a budget kept back for a fallback, where that is more than the run


def fallback_run_ms(local_ms: float, slack_ms: float = 4.0) -> float:
    """The time (ms) a local fallback is given: ``FALLBACK_MARGIN`` x the local run plus ``slack_ms``."""
    return FALLBACK_MARGIN * local_ms + slack_ms


def fallback_reserve_ms(local_ms: float, budget_ms: float, slack_ms: float = 4.0) -> float:
    """Time (ms) a device keeps back from waiting for the server's answer, so that running the frame
    locally after giving up still ends within its budget: :func:`fallback_run_ms`, and at least
    ``RESERVE_SHARE`` of a long budget (it costs the wait little there, and a loaded device's local
    run can take twice its usual time: 35 ms against 16 measured here). When even the run does not
    fit in the budget a fallback is late anyway, so nothing is kept back and the answer gets the
    whole budget. The device client waits by this rule and the simulator models it."""
    needed = fallback_run_ms(local_ms, slack_ms)
    return max(needed, RESERVE_SHARE * budget_ms) if needed <= budget_ms else 0.0


ANSWER_PATIENCE_MS = 2000.0  # the device client's default budget (its RPC timeout)


def answer_wait_ms(local_ms: float, budget_ms: float, slack_ms: float = 4.0,
                   patience_ms: float = ANSWER_PATIENCE_MS) -> float:
    """How long (ms from a frame's arrival) a device waits for the server's answer before it runs the frame
    locally: the budget less a local run's time (:func:`fallback_reserve_ms`), so the fallback still makes it.
    When even a local run cannot make the budget, ``patience_ms`` (at least the budget): a fallback would be
    late anyway and would hold the device up for the frames after it, while the answer may still come. The
    device client waits by this rule and the simulator models it."""
    if fallback_run_ms(local_ms, slack_ms) <= budget_ms:
        return budget_ms - fallback_reserve_ms(local_ms, budget_ms, slack_ms)
    return max(budget_ms, patience_ms)


def predicted_offload_ms(device_ms: float, payload_bytes: float, mbps: float, rtt_ms: float,
                         server_ms: float) -> float:
    """An offload's expected time (ms): device work, serialization at ``mbps`` (Mbit/s), RTT, server work."""
    return device_ms + payload_bytes * 8 / (mbps * 1e3) + rtt_ms + server_ms


def harmonic_mean(values: tuple[float, ...] | list[float]) -> float:
    vals = [v for v in values if v > 0]
    return len(vals) / sum(1.0 / v for v in vals) if vals else 0.0


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
