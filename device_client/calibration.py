"""Self-calibration: what each action costs on the device the client actually runs on.

A profile (``policies/assets/profile.json``) describes the device it was made for (the
shipped one: a Raspberry-Pi-Zero-class camera, 14x slower than the machine that measured
it). A client deciding from those times on another device decides wrongly (on a fast
machine it would run everything locally, or pick JPEG at 53 ms over local at 8 ms). So
at start the client times every action here, on a synthetic frame of the model's input
size, and keeps the times fresh with what it measures while it runs; a profile-driven
policy (``greedy``, ``edge``) then decides from these times
(:meth:`policies.simulation.profile.Profile.with_measured_times`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from splitnet.errors import SplitnetError
from splitnet.pipeline import Action, DeviceSide, Timing


def synthetic_frame(size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A uint8 ``[h, w, 3]`` frame with smooth gradients and mild noise (codecs time it like a photo)."""
    h, w = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([xx / max(w - 1, 1), yy / max(h - 1, 1), (xx + yy) / max(h + w - 2, 1)], axis=-1) * 200
    return np.clip(base + rng.normal(0, 12, size=(h, w, 3)), 0, 255).astype(np.uint8)


@dataclass
class DeviceCalibration:
    """Device milliseconds per action name (``local``: the whole model; others: head + encode)."""

    device_ms: dict[str, float]
    alpha: float = 0.1  # weight of each new measurement in the running average
    local_runs_ms: deque[float] = field(default_factory=lambda: deque(maxlen=64))  # recent local runs (ms)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def observe(self, name: str, ms: float) -> None:
        """Fold one measurement taken while running into the estimate."""
        if ms <= 0:
            return
        with self._lock:
            old = self.device_ms.get(name)
            self.device_ms[name] = ms if old is None else (1 - self.alpha) * old + self.alpha * ms
            if name == "local":
                self.local_runs_ms.append(ms)

    def local_p95_ms(self) -> float:
        """The 95th percentile of the recent local runs (ms; 0 before any): how long a local run can take
        on this device as it is loaded now, where the running average says how long it usually takes."""
        with self._lock:
            return float(np.percentile(self.local_runs_ms, 95)) if self.local_runs_ms else 0.0

    def apply(self, policy: object) -> bool:
        """Give a profile-driven policy (one with a ``profile``) this device's times; False if it has none."""
        from policies.simulation.profile import Profile

        profile = getattr(policy, "profile", None)
        if not isinstance(profile, Profile):
            return False
        shipped = getattr(policy, "profile_as_shipped", None) or profile
        policy.profile_as_shipped = shipped  # type: ignore[attr-defined]
        with self._lock:
            times = dict(self.device_ms)
        policy.profile = shipped.with_measured_times(times)  # type: ignore[attr-defined]
        return True


def _names(device: DeviceSide, extra: Iterable[str]) -> list[str]:
    names = [a.name for a in device.actions(feature_codecs=("int8+zstd",), image_qualities=(10, 50, 75, 90))]
    names += [a.name for a in device.actions(feature_codecs=(), image_qualities=())]
    names += ["png"] + [f"jpeg/q{q}" for q in (10, 50, 75, 90)] + list(extra)
    return list(dict.fromkeys(names))


def calibrate(device: DeviceSide, extra_actions: Iterable[str] = (), repeats: int = 5) -> DeviceCalibration:
    """Time ``local`` and every offloading action (median of ``repeats`` runs after one warm-up), in ms."""
    frame = synthetic_frame(device.spec.input_size)[None]
    times: dict[str, float] = {}
    local_runs: list[float] = []
    for name in _names(device, extra_actions):
        try:
            action = Action.parse(name)
            samples = []
            for i in range(repeats + 1):
                t0 = time.perf_counter()
                if action.kind == "local":
                    device.run_local(frame)
                    ms = (time.perf_counter() - t0) * 1e3
                else:
                    timing = Timing()
                    device.encode(frame, action, timing=timing)
                    ms = timing.head_ms + timing.encode_ms
                if i:
                    samples.append(ms)
        except SplitnetError:
            continue  # an action this checkpoint does not have
        times[name] = float(np.median(samples))
        if action.kind == "local":
            local_runs = samples
    return DeviceCalibration(times, local_runs_ms=deque(local_runs, maxlen=64))
