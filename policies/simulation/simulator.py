"""Frame-by-frame simulation of a device offloading over a trace-driven channel.

Frames arrive every ``1 / fps`` seconds. The device works on one frame at a time
(its compute is a serial resource); the uplink sends one payload at a time (another
serial resource), so a large payload delays the next one. Each frame replays a real
profiled image: its payload bytes (plus, on the link, the action's ``overhead_bytes``:
the request's other fields and framing) and whether the answer was right under the
chosen action. What the device can observe is only what its own past transfers told it.
As the device client does, an offload predicted to miss the deadline (the frame's wait so
far plus the action's device, estimated network and server time) and to answer after a local
run would end runs locally at once, and a frame whose answer would come too late for a local
run to make the deadline is run locally then (its bytes still occupy the link); a device whose
local run cannot make the deadline at all waits for the answer up to the client's patience
(2 s, :func:`~policies.common.timing.answer_wait_ms`) instead. Like a camera loop,
the device always takes the newest frame when it gets free: frames that arrived while
it was busy and were overtaken are dropped (each counts as a deadline miss). Results come out in
frame order, as the client yields them: a frame done before an earlier one waits for it. When
nothing has gone out for ``probe_interval_s``, the device sends a small probe, so its
throughput estimate never goes stale, and while it offloads, a lone empty call whenever no empty
one went out for as long, so its base RTT is an empty call's (probes use the link and cost radio
energy, which is charged to the next frame). What the device knows of the link comes from the
client's own estimator (:class:`~policies.network.estimator.LinkEstimator`), fed what the
client would measure, when it would know it: each answer's round trip less the server's
time (serialization of the request's wire bytes, waiting behind earlier payloads on the
link, RTT, jitter, losses, and the RPC path's own time per call, the scenario's
``request_overhead_ms``; its bytes counted beyond an empty call's,
:func:`~splitnet.rpc.convert.link_sample_bytes`) and the probes' (an empty call, then one of ``probe_bytes``).
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from policies.common.policy import HISTORY, Observation
from policies.common.timing import answer_wait_ms
from policies.network.channel_models import Channel, ChannelConfig, GilbertElliott
from policies.network.estimator import LinkEstimator, LinkSample
from policies.network.traces import Trace
from policies.simulation.profile import Profile
from splitnet.rpc.convert import PROBE_CALL_OVERHEAD_BYTES, link_sample_bytes

WARMUP_LEAD_S = 0.5  # a run's warm-up probes go out this long (s) before its first frame


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
        # a mean frame's bytes beyond an empty call's (the estimator's unit), for the check before an offload
        self._link_bytes_mean = [link_sample_bytes(int(b), int(o))
                                 for b, o in zip(self.bytes_mean, self.overhead_bytes)]
        self._bytes = np.stack([a.bytes for a in profile.actions])
        self._correct = np.stack([a.correct for a in profile.actions])
        self.reset(0.0, seed)

    @property
    def n_actions(self) -> int:
        return len(self.device_ms)

    def reset(self, start_s: float = 0.0, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self._spread_rng = np.random.default_rng([seed, 1])  # the deployment's per-call spread; apart from the rest
        self.channel = Channel(self.trace, self.channel_config, seed=int(self.rng.integers(2**31)))
        self.start_s = start_s
        self.frame = 0
        self.device_free = start_s
        self.link_free = start_s
        self.previous = 0
        self.dropped = 0  # frames dropped just before the next one
        self.last_send = start_s
        self.last_empty = start_s  # when the newest empty probe call went out
        self._probe_energy = 0.0
        self._now = start_s  # the estimator's clock: the time of the device's newest decision
        self.estimator = LinkEstimator(clock=lambda: self._now)
        self._pending: list[tuple[float, int, LinkSample]] = []  # heap of (time known, order, measurement)
        self._order = itertools.count()
        self._answered_at: dict[int, deque[float]] = {}  # action -> when its recent answers come back
        self._inflight: deque[tuple[float, int]] = deque()  # (ack time, bytes)
        self._offloads: deque[tuple[float, float]] = deque(maxlen=4 * HISTORY)  # (sent, answered) of recent frames
        self._results: deque[tuple[float, float, bool]] = deque(maxlen=4)  # (time known, latency ms, fell back)
        self._delivered_s = start_s  # when the newest frame's result came out (results come in frame order)
        self.next_image = int(self.rng.integers(self.profile.n_images))

    # ------------------------------------------------------------ timing
    @property
    def arrival_s(self) -> float:
        return self.start_s + self.frame / self.fps

    @property
    def decision_s(self) -> float:
        """When the device starts on the next frame (and so decides its action)."""
        return max(self.arrival_s, self.device_free)

    def _learn_until(self, now: float) -> None:
        """Hand the estimator every measurement the device has by ``now``, in the order they came back."""
        while self._pending and self._pending[0][0] <= now:
            known_s, _, sample = heapq.heappop(self._pending)
            self.estimator.add(sample, at_s=known_s)
        self._now = max(self._now, now)

    def known_throughputs(self, now: float) -> list[float]:
        """Throughput samples (Mbit/s) the device has measured by ``now``, oldest first."""
        self._learn_until(now)
        return list(self.estimator.recent_throughputs())

    def known_rtt_ms(self, now: float) -> float:
        self._learn_until(now)
        return self.estimator.rtt_ms

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
        """Send the link probes due before ``now``, in time order, as the client's probe thread does: a pair
        when nothing else went out for probe_interval_s, a lone empty call when no empty one did."""
        interval = self.profile.scenario.probe_interval_s
        if interval <= 0:
            return
        while True:
            pair_s = self.last_send + interval
            due_s = self.last_empty + interval  # the lone empty call waits for nothing in flight, up to interval
            if min(pair_s, due_s) > now:
                return
            empty_s = min(self._idle_from(due_s), due_s + interval) if due_s <= now else math.inf
            if min(pair_s, empty_s) > now:
                return
            if pair_s <= empty_s:
                self.last_send = pair_s
                self._probe_pair(pair_s)
            else:
                self._empty_probe(empty_s)

    def _idle_from(self, t: float) -> float:
        """The first moment from ``t`` with no frame in flight (sent and not answered), of those sent so far."""
        changed = True
        while changed:
            changed = False
            for sent_s, answered_s in self._offloads:
                if sent_s <= t < answered_s:
                    t, changed = answered_s, True
        return t

    def _probe_call(self, t: float, size: int) -> float:
        """One Probe call of ``size`` padding bytes handed to the link at ``t`` (with a unary call's wire
        bytes, behind whatever the link still carries); returns when it is back (s)."""
        sc = self.profile.scenario
        pw = sc.power
        if size == 0:
            self.last_empty = t
        wire = size + PROBE_CALL_OVERHEAD_BYTES
        tx_start = max(t, self.link_free)
        ser_ms = self.channel.serialization_ms(wire, tx_start)
        net_ms = self.channel.transfer_ms(wire, tx_start) + self._request_overhead_ms()
        self.link_free = tx_start + ser_ms / 1e3
        done = tx_start + net_ms / 1e3
        self._record(done, size, (done - t) * 1e3)
        self._probe_energy += (ser_ms * pw.radio_tx_w + (net_ms - ser_ms) * pw.idle_w) / 1e3
        return done

    def _empty_probe(self, t: float) -> None:
        """The lone empty call the client sends while offloading (at a moment with no frame in flight), so that
        the base RTT is an empty call's round trip, not the quickest of recent payloads' (which carries their
        serialization)."""
        self._probe_call(t, 0)

    def _probe_pair(self, t: float) -> float:
        """As the client probes: an empty call at ``t``, then one of ``probe_bytes`` once the first is back (each
        with the wire bytes of a unary call); returns when the second is back (s)."""
        sc = self.profile.scenario
        for size in (0, sc.probe_bytes) if sc.probe_bytes > 0 else (0,):
            t = self._probe_call(t, size)
        return t

    def warm_up(self, rounds: int = 3, lead_s: float = WARMUP_LEAD_S) -> None:
        """As ``SplitClient.measure_link`` before a camera starts: ``rounds`` probe pairs back to back from the
        start, and the first frame ``lead_s`` later (or once they are back, if that is later), so the first
        decision has an estimate. Their radio energy is not charged to any frame."""
        if rounds <= 0:
            return
        t = self.start_s
        for _ in range(rounds):
            t = self._probe_pair(t)
        self._probe_energy = 0.0
        self.start_s = self.device_free = max(self.start_s + lead_s, t)
        self.last_send = t

    def _record(self, known_s: float, payload_bytes: int, network_ms: float) -> None:
        """A measurement the device will have at ``known_s``: ``network_ms`` from handing the request over
        to the answer, less the server's time."""
        heapq.heappush(self._pending, (known_s, next(self._order), LinkSample(payload_bytes, network_ms)))

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
            if not dry:
                self._probe_until(dev_done)  # a probe due while the device works goes on the link first
            tx_start = max(dev_done, self.link_free)
            wire_bytes = nbytes + int(self.overhead_bytes[action])
            ser_ms = self.channel.serialization_ms(wire_bytes, tx_start)
            if dry:
                server_ms = self.server_ms[action]
                net_ms = ser_ms + self.channel_config.rtt_ms + server_ms + self.profile.scenario.request_overhead_ms
            else:
                server_ms = self._server_ms(action)
                # the RPC path's own time (gRPC, servicer, ...) besides the link and the server
                net_ms = self.channel.transfer_ms(wire_bytes, tx_start) + server_ms + self._request_overhead_ms()
            done = tx_start + net_ms / 1e3
            energy = (self.device_ms[action] * pw.compute_w + ser_ms * pw.radio_tx_w
                      + (net_ms - ser_ms) * pw.idle_w) / 1e3
            device_free, link_free = dev_done, tx_start + ser_ms / 1e3
            # what the client measures: handed over when the device is done, answered at ``done``; its bytes
            # beyond an empty call's (the base RTT's own)
            sample = (done, link_sample_bytes(nbytes, int(self.overhead_bytes[action])),
                      (done - dev_done) * 1e3 - server_ms)
            wait_ms = answer_wait_ms(local_ms, self.deadline_ms)
            if self.deadline_ms > 0 and (done - arrival) * 1e3 > wait_ms:
                # As the device client does: stop waiting when only a local run's time is left of the
                # deadline (or, when a local run cannot make it, after the client's patience), run it locally.
                done = max(arrival + wait_ms / 1e3, dev_done) + local_ms / 1e3
                device_free = done
                energy += local_ms / 1e3 * pw.compute_w
                fallback = True
        if not dry:
            energy += self._probe_energy
        done = max(done, self._delivered_s)  # results come out in frame order, as the client yields them
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
                self._answered_at.setdefault(action, deque(maxlen=4 * HISTORY)).append(sample[0])
                self._inflight.append((sample[0], nbytes))
                self._offloads.append((dev_done, sample[0]))
                while len(self._inflight) > 4 * HISTORY:
                    self._inflight.popleft()
            self._results.append((done, latency_ms, fallback))
            self._delivered_s = done
            self.previous = action
            self.frame += 1 + dropped
            self.dropped = dropped
            self.next_image = int(self.rng.integers(self.profile.n_images))
        return out

    def _server_ms(self, action: int) -> float:
        """One offloaded frame's server ms: the action's, times a factor drawn from the deployment's spread."""
        factors = self.profile.scenario.server_time_factors
        if not factors:
            return float(self.server_ms[action])
        return float(self.server_ms[action]) * factors[int(self._spread_rng.integers(len(factors)))]

    def _request_overhead_ms(self) -> float:
        """One call's RPC path ms: the scenario's, or one drawn from the deployment's measured calls."""
        samples = self.profile.scenario.request_overhead_samples_ms
        if not samples:
            return self.profile.scenario.request_overhead_ms
        return samples[int(self._spread_rng.integers(len(samples)))]

    def _predicted_miss(self, action: int, start: float, arrival: float) -> bool:
        """The client's check before it offloads: the wait so far plus the action's device time, the
        estimator's transfer time (RTT and serialization) and the server's time exceed the deadline, and the
        answer would come after a local run would end. Only for an action answered within the last
        ``probe_interval_s`` (an older estimate gets a fresh try)."""
        if self.deadline_ms <= 0:
            return False
        answered = max((t for t in self._answered_at.get(action, ()) if t <= start), default=None)
        if answered is None or start - answered > self.profile.scenario.probe_interval_s:
            return False
        self._learn_until(start)
        predicted_ms = (self.device_ms[action] + self.estimator.transfer_ms(self._link_bytes_mean[action])
                        + self.server_ms[action])
        return (start - arrival) * 1e3 + predicted_ms > self.deadline_ms and predicted_ms > self.device_ms[0]

    def step(self, action: int) -> FrameOutcome:
        return self.outcome(action)

    def observation(self, with_lookahead: bool = False) -> Observation:
        """What the device knows now, about to start the next frame."""
        now = self.decision_s
        self._probe_until(now)
        self._learn_until(now)
        est = self.estimator
        names = self.profile.names
        lookahead = (lambda name: self.outcome(names.index(name), dry=True).reward) if with_lookahead else None
        last_ms, last_fallback = self.last_result(now)
        return Observation(est.throughput_mbps, est.rtt_ms, self.deadline_ms, names[self.previous],
                           self.queue_frames(now), True, est.recent_throughputs(), est.throughput_age_s,
                           self.inflight_bytes(now), last_ms, last_fallback, lookahead)

    def true_mbps(self, at_s: float) -> float:
        """The link's real throughput at ``at_s`` (for the oracle only)."""
        return self.channel.rate_mbps(at_s)
