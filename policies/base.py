"""The policy interface: ``act(observation) -> action name``, and the fixed policy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Observation:
    """What the device knows when it picks the action for one frame.

    Estimates come from the device's own past transfers, never from the future.
    """

    throughput_mbps: float  # estimated uplink throughput (Mbit/s); 0 when unknown
    rtt_ms: float  # estimated round-trip time (ms); 0 when unknown
    deadline_ms: float  # per-frame deadline (ms); 0 for none
    previous_action: str = "local"
    queue_frames: int = 0  # frames waiting or in flight on the device
    server_available: bool = True


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
