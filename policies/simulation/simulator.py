"""Frame-by-frame simulation of a device offloading over a trace-driven channel.

Frames arrive every ``1 / fps`` seconds. The device works on one frame at a time
(its compute is a serial resource); the uplink sends one payload at a time (another
serial resource), so a large payload delays the next one. Each frame replays a real
profiled image: its payload bytes (plus, on the link, the action's ``overhead_bytes``:
the request's other fields and framing) and whether the answer was right under the
chosen action. What the device can observe is only what its own past transfers told it.
As the device client does, an offload predicted to miss the deadline (the frame's wait so
far plus the action's device, estimated network and server time) runs locally at once, and
a frame whose answer would come after the deadline is run locally once the deadline passes
(its bytes still occupy the link). Like a camera loop,
the device always takes the newest frame when it gets free: frames that arrived while
it was busy and were overtaken are dropped (each counts as a deadline miss). When
nothing has gone out for ``probe_interval_s``, the device sends a small probe, so its
throughput estimate never goes stale (the probe uses the link and costs radio energy,
which is charged to the next frame).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from policies.agents.base import HISTORY, Observation, fallback_reserve_ms, harmonic_mean, predicted_offload_ms
from policies.network.channel_models import Channel, ChannelConfig, GilbertElliott
from policies.network.traces import Trace
from policies.simulation.profile import Profile


@dataclass(frozen=True)
class RewardWeights:
    """reward = -latency_s * latency - energy_j * energy - accuracy_drop * accuracy - missed * deadline_miss."""

    latency: float = 10.0  # per second of latency
    energy: float = 1.0  # per joule
    accuracy: float = 10.0  # per unit of expected top-1 lost against local (0.01 = one point)
    deadline_miss: float = 2.0  # per frame later than the deadline


@dataclass
class FrameOutcome:
    """What happened to one frame."""

    action: int
    latency_ms: float
    energy_j: float
    correct: bool
    payload_bytes: int
    missed: bool
    reward: float
    start_s: float  # when the device began working on it (trace time)
    fallback: bool = False  # the answer was late, so the device ran the frame itself
    dropped_after: int = 0  # frames overtaken while the device was busy with this one


class OffloadSimulator:
    """Runs frames along one trace; ``step(action)`` simulates the next frame."""

    def __init__(self, profile: Profile, trace: Trace, fps: float = 10.0, deadline_ms: float = 100.0,
                 weights: RewardWeights | None = None, seed: int = 0) -> None:
        self.profile = profile
        self.trace = trace
        self.fps = fps
        self.deadline_ms = deadline_ms
        self.weights = weights or RewardWeights()
        sc = profile.scenario
        self.channel_config = ChannelConfig(scale=sc.trace_scale, rtt_ms=sc.rtt_ms, jitter_ms=sc.jitter_ms,
                                            loss=GilbertElliott.from_rate(sc.loss))
        n = len(profile.actions)
        self.device_ms = np.array([profile.device_ms(i) for i in range(n)])
        self.server_ms = np.array([profile.server_ms(i) for i in range(n)])
        self.kinds = [a.kind for a in profile.actions]
        top1 = np.array([a.top1 for a in profile.actions])
        self.accuracy_drop = np.maximum(0.0, top1[0] - top1)  # against local
        self.bytes_mean = np.array([a.bytes_mean for a in profile.actions])
        self.overhead_bytes = np.array([a.overhead_bytes for a in profile.actions])  # on the wire besides payloads
        self._bytes = np.stack([a.bytes for a in profile.actions])
        self._correct = np.stack([a.correct for a in profile.actions])
        self.reset(0.0, seed)

    @property
    def n_actions(self) -> int:
        return len(self.device_ms)

    def reset(self, start_s: float = 0.0, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.channel = Channel(self.trace, self.channel_config, seed=int(self.rng.integers(2**31)))
        self.start_s = start_s
        self.frame = 0
        self.device_free = start_s
        self.link_free = start_s
        self.previous = 0
        self.dropped = 0  # frames dropped just before the next one
        self.last_send = start_s
        self._probe_energy = 0.0
        self._samples: deque[tuple[float, float]] = deque()  # (time known, Mbit/s)
        self._rtts: deque[tuple[float, float]] = deque()  # (time known, ms)
        self._inflight: deque[tuple[float, int]] = deque()  # (ack time, bytes)
        self._results: deque[tuple[float, float, bool]] = deque(maxlen=4)  # (time known, latency ms, fell back)
        self.next_image = int(self.rng.integers(self.profile.n_images))

    # ------------------------------------------------------------ timing
    @property
    def arrival_s(self) -> float:
        return self.start_s + self.frame / self.fps

    @property
    def decision_s(self) -> float:
        """When the device starts on the next frame (and so decides its action)."""
        return max(self.arrival_s, self.device_free)

    def known_throughputs(self, now: float) -> list[float]:
        """Throughput samples (Mbit/s) the device has measured by ``now``, oldest first."""
        return [m for t, m in self._samples if t <= now][-HISTORY:]

    def known_rtt_ms(self, now: float) -> float:
        known = [r for t, r in self._rtts if t <= now][-HISTORY:]
        return float(np.median(known)) if known else 0.0

    def inflight_bytes(self, now: float) -> int:
        return sum(b for t, b in self._inflight if t > now)

    def last_result(self, now: float) -> tuple[float, bool]:
        """Latency (ms) of the newest frame whose result the device has by ``now``, and whether it fell back."""
        for known_s, latency_ms, fallback in reversed(self._results):
            if known_s <= now:
                return latency_ms, fallback
        return 0.0, False

    def queue_frames(self, now: float) -> int:
        """Frames dropped just before the next one (the device was too busy for them)."""
        return self.dropped

    def _probe_until(self, now: float) -> None:
        """Send the link probes due before ``now`` (nothing else went out for probe_interval_s)."""
        sc = self.profile.scenario
        if sc.probe_interval_s <= 0:
            return
        pw = sc.power
        while self.last_send + sc.probe_interval_s <= now:
            t = self.last_send + sc.probe_interval_s
            tx_start = max(t, self.link_free)
            ser_ms = self.channel.serialization_ms(sc.probe_bytes, tx_start)
            net_ms = self.channel.transfer_ms(sc.probe_bytes, tx_start)
            self.link_free = tx_start + ser_ms / 1e3
            done = tx_start + net_ms / 1e3
            self._record(done, sc.probe_bytes * 8 / max(ser_ms, 1e-3) / 1e3, net_ms - ser_ms)
            self._probe_energy += (ser_ms * pw.radio_tx_w + (net_ms - ser_ms) * pw.idle_w) / 1e3
            self.last_send = tx_start

    def _record(self, known_s: float, mbps: float, rtt_ms: float) -> None:
        """A throughput and RTT measurement the device has at ``known_s`` (keeps the newest few)."""
        self._samples.append((known_s, mbps))
        self._rtts.append((known_s, rtt_ms))
        while len(self._samples) > 4 * HISTORY:
            self._samples.popleft()
            self._rtts.popleft()

    def _newest_frame_by(self, t_s: float) -> int:
        return int(math.floor((t_s - self.start_s) * self.fps + 1e-9))

    # -------------------------------------------------------------- step
    def outcome(self, action: int, dry: bool = False) -> FrameOutcome:
        """Simulate the next frame under ``action``.

        ``dry`` predicts it without advancing the state or drawing randomness: the true
        trace, the base RTT and no losses (what the oracle knows).
        """
        arrival, start = self.arrival_s, self.decision_s
        if not dry:
            self._probe_until(start)
        j = self.next_image
        fallback = False
        nbytes = int(self._bytes[action, j])
        pw = self.profile.scenario.power
        local_ms = self.device_ms[0]
        preempted = self.kinds[action] != "local" and self._predicted_miss(action, start, arrival)
        if preempted:
            # As the device client does: an offload predicted (from what the device knows) to miss the
            # frame's deadline, given the time the frame already waited, runs locally at once.
            done = start + local_ms / 1e3
            energy = local_ms / 1e3 * pw.compute_w
            device_free, link_free, sample, nbytes, fallback = done, self.link_free, None, 0, True
        elif self.kinds[action] == "local":
            done = start + self.device_ms[action] / 1e3
            energy = self.device_ms[action] / 1e3 * pw.compute_w
            device_free, link_free, sample = done, self.link_free, None
        else:
            dev_done = start + self.device_ms[action] / 1e3
            tx_start = max(dev_done, self.link_free)
            wire_bytes = nbytes + int(self.overhead_bytes[action])
            ser_ms = self.channel.serialization_ms(wire_bytes, tx_start)
            if dry:
                net_ms = ser_ms + self.channel_config.rtt_ms + self.server_ms[action]
            else:
                net_ms = self.channel.transfer_ms(wire_bytes, tx_start) + self.server_ms[action]
            done = tx_start + net_ms / 1e3
            energy = (self.device_ms[action] * pw.compute_w + ser_ms * pw.radio_tx_w
                      + (net_ms - ser_ms) * pw.idle_w) / 1e3
            device_free, link_free = dev_done, tx_start + ser_ms / 1e3
            sample = (done, nbytes * 8 / max(ser_ms, 1e-3) / 1e3, net_ms - ser_ms - self.server_ms[action])
            wait_ms = self.deadline_ms - fallback_reserve_ms(local_ms, self.deadline_ms)
            if self.deadline_ms > 0 and (done - arrival) * 1e3 > wait_ms:
                # As the device client does: stop waiting when only a local run's time is left of the
                # deadline (or at the deadline when a local run cannot make it), run the frame locally.
                done = max(arrival + wait_ms / 1e3, dev_done) + local_ms / 1e3
                device_free = done
                energy += local_ms / 1e3 * pw.compute_w
                fallback = True
        if not dry:
            energy += self._probe_energy
        latency_ms = (done - arrival) * 1e3
        missed = self.deadline_ms > 0 and latency_ms > self.deadline_ms
        dropped = max(0, self._newest_frame_by(device_free) - self.frame - 1)
        w = self.weights
        reward = -(latency_ms / 1e3 * w.latency + energy * w.energy
                   + self.accuracy_drop[0 if fallback else action] * w.accuracy
                   + w.deadline_miss * (int(missed) + dropped))
        correct = bool(self._correct[0 if fallback else action, j])
        out = FrameOutcome(action, latency_ms, energy, correct, nbytes, missed, reward, start, fallback, dropped)
        if not dry:
            self._probe_energy = 0.0
            if self.kinds[action] != "local" and not preempted:
                self.last_send = max(start + self.device_ms[action] / 1e3, self.link_free)
            self.device_free, self.link_free = device_free, link_free
            if sample is not None:
                self._record(*sample)
                self._inflight.append((sample[0], nbytes))
                while len(self._inflight) > 4 * HISTORY:
                    self._inflight.popleft()
            self._results.append((done, latency_ms, fallback))
            self.previous = action
            self.frame += 1 + dropped
            self.dropped = dropped
            self.next_image = int(self.rng.integers(self.profile.n_images))
        return out

    def _predicted_miss(self, action: int, start: float, arrival: float) -> bool:
        """The client's check before it offloads: the wait so far plus the action's device time, the
        estimated RTT and serialization (the device's own estimates) and the server's time exceed the
        deadline. No estimate yet: no prediction (the offload gets its try)."""
        if self.deadline_ms <= 0:
            return False
        tputs = self.known_throughputs(start)
        if not tputs:
            return False
        predicted_ms = predicted_offload_ms(self.device_ms[action], self.bytes_mean[action], harmonic_mean(tputs),
                                            self.known_rtt_ms(start), self.server_ms[action])
        return (start - arrival) * 1e3 + predicted_ms > self.deadline_ms

    def step(self, action: int) -> FrameOutcome:
        return self.outcome(action)

    def observation(self, with_lookahead: bool = False) -> Observation:
        """What the device knows now, about to start the next frame."""
        now = self.decision_s
        self._probe_until(now)
        tputs = tuple(self.known_throughputs(now))
        known = [t for t, _ in self._samples if t <= now]
        names = self.profile.names
        lookahead = (lambda name: self.outcome(names.index(name), dry=True).reward) if with_lookahead else None
        last_ms, last_fallback = self.last_result(now)
        return Observation(harmonic_mean(tputs), self.known_rtt_ms(now), self.deadline_ms, names[self.previous],
                           self.queue_frames(now), True, tputs, (now - max(known)) if known else 10.0,
                           self.inflight_bytes(now), last_ms, last_fallback, lookahead)

    def true_mbps(self, at_s: float) -> float:
        """The link's real throughput at ``at_s`` (for the oracle only)."""
        return self.channel.rate_mbps(at_s)
