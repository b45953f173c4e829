"""Profiles read by the simulator: per-action costs measured on this machine plus a scenario.

The scenario says what the profile models: the device class (how much slower than
this machine), the server (how much faster), the link class and the trace scale,
and a power model for energy per frame.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from splitnet.errors import DataError
from splitnet.rpc.convert import link_bytes

SHIPPED_PROFILE = Path(__file__).parents[1] / "assets" / "profile.json"


@dataclass(frozen=True)
class PowerModel:
    """Device power draw (W) while computing, transmitting and waiting."""

    compute_w: float = 5.0
    radio_tx_w: float = 2.5
    idle_w: float = 1.5


DEVICE_MODEL = ("speed factor: each device time is the time measured on this machine at batch 1 (entropy coding "
                "and image codecs included) times device_speed")


@dataclass(frozen=True)
class Scenario:
    """The regime a profile models."""

    device_class: str = "measured machine"
    device_speed: float = 1.0  # device ms = measured ms x this (8: a device 8x slower than this machine)
    server_speed: float = 1.0  # server ms = measured ms x this (0.25: a server 4x faster)
    link_class: str = "trace as recorded"
    trace_scale: float = 1.0  # multiply every trace's throughput by this
    rtt_ms: float = 40.0
    jitter_ms: float = 5.0
    loss: float = 0.0  # mean packet loss (Gilbert–Elliott, bursts of 2)
    power: PowerModel = field(default_factory=PowerModel)
    probe_bytes: int = 200  # the device's link probe: sent when nothing went out for probe_interval_s
    probe_interval_s: float = 1.0
    device_model: str = DEVICE_MODEL  # how the device's times were derived from the measured ones, and why
    # per call (frame or probe), the time the real RPC path adds to its round trip beyond the link's
    # serialization and RTT and the server's decode + tail (ms): gRPC and protobuf on both ends, the servicer,
    # the link emulator's forwarding; measured by benchmarks.rpc_path (0: not modelled, older profiles)
    request_overhead_ms: float = 0.0
    # a measured deployment's per-call spread (empty: every call takes the figures above): factors on an
    # offloaded frame's server ms (their mean about 1), and the RPC path's ms of single calls; the simulator
    # draws one of each per call
    server_time_factors: tuple[float, ...] = ()
    request_overhead_samples_ms: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        for name in ("server_time_factors", "request_overhead_samples_ms"):
            values = tuple(float(v) for v in getattr(self, name))
            if any(not math.isfinite(v) or v < 0 for v in values):
                raise ValueError(f"Scenario.{name}: every value must be a finite number >= 0")
            object.__setattr__(self, name, values)


COMPUTE_FIELDS = ("device_macs", "server_macs", "device_share")
SPREAD_FIELDS = ("device_ms_spread", "server_ms_spread")
DEPLOYMENT_SPREAD_FIELDS = ("server_time_factors", "request_overhead_samples_ms")


@dataclass
class ActionProfile:
    """One action's costs: ms on the device and the server, bytes and correctness per image, and
    the compute it needs (MACs per frame on each side, counted by :mod:`splitnet.compute`; absent,
    ``None``, in profiles written before they were recorded)."""

    name: str
    kind: str
    device_ms: float
    server_ms: float
    bytes: np.ndarray
    correct: np.ndarray
    device_macs: float | None = None
    server_macs: float | None = None
    device_share: float | None = None  # device MACs / the unsplit model's MACs
    # uplink bytes a frame costs besides its payload (the request's other protobuf fields and the stream's
    # framing, splitnet.rpc.convert.wire_overhead_bytes); 0 in profiles written before it was measured
    overhead_bytes: int = 0
    # [min, max] of the round medians the times were taken from (ms, as measured); None in older profiles
    device_ms_spread: tuple[float, float] | None = None
    server_ms_spread: tuple[float, float] | None = None

    @property
    def top1(self) -> float:
        return float(self.correct.mean())

    @property
    def bytes_mean(self) -> float:
        return float(self.bytes.mean())

    @property
    def link_bytes_mean(self) -> float:
        """Mean uplink bytes a frame costs beyond an empty probe call's (payload and request overhead, less the
        call the base RTT is measured with): what the link estimator's rate is in, so what a policy divides by
        it (the payload alone in profiles without ``overhead_bytes``)."""
        return self.bytes_mean if self.kind == "local" else link_bytes(self.bytes_mean, self.overhead_bytes)


@dataclass
class Profile:
    """Actions (same images, same order) and the scenario they are simulated in."""

    model: str
    actions: list[ActionProfile]
    scenario: Scenario = field(default_factory=Scenario)
    checkpoint_sha256: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        if not self.actions:
            raise DataError("a profile needs at least one action")
        n = {len(a.bytes) for a in self.actions} | {len(a.correct) for a in self.actions}
        if len(n) != 1:
            raise DataError("every action of a profile must cover the same images")
        if self.actions[0].name != "local":
            raise DataError("the first action of a profile must be 'local'")

    @property
    def names(self) -> list[str]:
        return [a.name for a in self.actions]

    @property
    def n_images(self) -> int:
        return len(self.actions[0].bytes)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise DataError(f"action {name!r} not in the profile; it has {', '.join(self.names)}") from None

    def device_ms(self, i: int) -> float:
        return self.actions[i].device_ms * self.scenario.device_speed

    def server_ms(self, i: int) -> float:
        return self.actions[i].server_ms * self.scenario.server_speed

    def with_scenario(self, scenario: Scenario) -> Profile:
        return Profile(self.model, self.actions, scenario, self.checkpoint_sha256, self.source)

    def with_deployment(self, server_speed: float | None = None, request_overhead_ms: float | None = None,
                        server_time_factors: Sequence[float] | None = None,
                        request_overhead_samples_ms: Sequence[float] | None = None) -> Profile:
        """This profile simulating a given deployment: its server's speed (ms = measured ms x ``server_speed``)
        and its RPC path's per-call ms, optionally with their measured per-call spread (see :class:`Scenario`);
        ``None`` keeps the scenario's figure, and with nothing changed the profile itself is returned."""
        given = {"server_speed": server_speed, "request_overhead_ms": request_overhead_ms,
                 "server_time_factors": server_time_factors,
                 "request_overhead_samples_ms": request_overhead_samples_ms}
        changes = {k: (float(v) if isinstance(v, (int, float)) else tuple(float(x) for x in v))
                   for k, v in given.items() if v is not None}
        changes = {k: v for k, v in changes.items() if v != getattr(self.scenario, k)}
        return self.with_scenario(replace(self.scenario, **changes)) if changes else self

    def with_measured_times(self, device_ms: dict[str, float], server_ms: dict[str, float] | None = None,
                            device_class: str = "this device (self-calibrated)") -> Profile:
        """This profile with the device ms (and server ms) measured live, unscaled.

        Actions missing from ``device_ms`` keep their profiled time at the scenario's device
        speed; the scenario then describes a device of speed 1 (the times are this device's).
        """
        server_ms = server_ms or {}
        actions = [replace(a, device_ms=float(device_ms.get(a.name, a.device_ms * self.scenario.device_speed)),
                           server_ms=float(server_ms.get(a.name, a.server_ms * self.scenario.server_speed)))
                   for a in self.actions]
        scenario = replace(self.scenario, device_class=device_class, device_speed=1.0, server_speed=1.0)
        return Profile(self.model, actions, scenario, self.checkpoint_sha256, self.source)

    def _scenario_dict(self) -> dict:
        """The scenario as JSON, without an empty per-call spread (profiles have none)."""
        return {k: v for k, v in asdict(self.scenario).items() if not (k in DEPLOYMENT_SPREAD_FIELDS and not v)}

    def to_dict(self) -> dict:
        return {"model": self.model, "checkpoint_sha256": self.checkpoint_sha256, "scenario": self._scenario_dict(),
                "actions": [{"name": a.name, "kind": a.kind, "device_ms": a.device_ms, "server_ms": a.server_ms,
                             "top1": a.top1, "bytes_mean": a.bytes_mean, "bytes": a.bytes.tolist(),
                             "correct": a.correct.astype(int).tolist(),
                             **{k: getattr(a, k) for k in COMPUTE_FIELDS if getattr(a, k) is not None},
                             **({"overhead_bytes": a.overhead_bytes} if a.overhead_bytes else {}),
                             **{k: list(getattr(a, k)) for k in SPREAD_FIELDS if getattr(a, k) is not None}}
                            for a in self.actions]}

    def save(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(self.to_dict()) + "\n")

    @classmethod
    def from_dict(cls, d: dict, source: str = "") -> Profile:
        try:
            sc = dict(d.get("scenario", {}))
            power = PowerModel(**sc.pop("power", {}))
            scenario = Scenario(**sc, power=power)
            actions = [ActionProfile(a["name"], a["kind"], float(a["device_ms"]), float(a["server_ms"]),
                                     np.asarray(a["bytes"], dtype=np.int64), np.asarray(a["correct"], dtype=bool),
                                     **{k: float(a[k]) for k in COMPUTE_FIELDS if a.get(k) is not None},
                                     overhead_bytes=int(a.get("overhead_bytes", 0)),
                                     **{k: (float(a[k][0]), float(a[k][1])) for k in SPREAD_FIELDS
                                        if a.get(k) is not None})
                       for a in d["actions"]]
        except KeyError as exc:
            raise DataError(f"malformed profile {source}: no field {exc} (write one with splitnet profile)") from exc
        except (TypeError, ValueError) as exc:
            raise DataError(f"malformed profile {source}: {exc}") from exc
        return cls(d.get("model", ""), actions, scenario, d.get("checkpoint_sha256", ""), source)

    @classmethod
    def load(cls, path: str | Path | None = None) -> Profile:
        """Read a profile JSON (the shipped one when ``path`` is None)."""
        path = Path(path) if path is not None else SHIPPED_PROFILE
        if not path.is_file():
            raise DataError(f"profile not found: {path}")
        try:
            d = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} is not JSON: {exc}") from exc
        return cls.from_dict(d, str(path))
