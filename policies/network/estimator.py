"""Uplink throughput and RTT estimated from a device's own transfers.

One estimator for the device client and the simulator: the client feeds it the answers it gets
(and its link probes), the simulator feeds it the same measurements as they would come back,
so a policy sees the same kind of estimate in both.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class LinkSample:
    """One answered frame (or link probe): the bytes it put on the uplink beyond an empty probe call's
    (whose round trip is the base RTT: a frame's payload plus its request's other fields and framing, less
    an empty call's, :func:`splitnet.rpc.convert.link_sample_bytes`; 0 for an empty call) and how long the
    network part took, from handing the request over to the answer, less the server's own time (queueing
    on the link included)."""

    payload_bytes: int
    network_ms: float  # round trip minus the server's own time


class LinkEstimator:
    """RTT: recent minimum (base) and smoothed value. Throughput: harmonic mean of recent samples.

    A sample's transfer time is its network time less a typical empty call's round trip: the
    median of the newest empty calls (the client sends one a second at least, at a moment with
    no frame in flight, so none waits behind a payload; the RTT's jitter is then as likely
    either way) or, before there are three, the base RTT (the recent minimum). Its bytes count
    beyond an empty call's, so the rate is the link's, framing included. It informs the
    throughput estimate only when it stands out of the base RTT (large payloads or a slow
    link): tiny frames on a fast link would otherwise read as noise. Such a fast answer still
    bounds the rate from below, and raises an estimate it contradicts; a sample well above the
    estimate drops the older, slower samples (see :meth:`_learn_rate`), so a link that speeds
    up is seen within a sample or two, not after a window of them. The smoothed RTT follows
    each sample's network time less its serialization at the current throughput estimate, so
    :meth:`transfer_ms` does not count a payload's serialization twice.
    """

    RISE_FACTOR = 2.0  # a throughput sample this many times the estimate means the link got faster
    BASE_EMPTIES = 5  # newest empty calls the base RTT and the typical empty call are taken over (~5 s offloading)

    def __init__(self, window: int = 20, alpha: float = 0.2, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock  # seconds (the simulator gives its own)
        self._lock = threading.Lock()
        self._rtts: deque[float] = deque(maxlen=window)
        self._tputs: deque[float] = deque(maxlen=window)
        self._empties: deque[float] = deque(maxlen=window)  # network ms of recent samples without payload
        self._alpha = alpha
        self._srtt = 0.0
        self._last_tput_at = 0.0

    def add(self, sample: LinkSample, at_s: float | None = None) -> None:
        """Learn from ``sample``, known at ``at_s`` (``clock`` seconds; default: now)."""
        with self._lock:
            ms = max(sample.network_ms, 0.01)
            self._rtts.append(ms)
            base = self._base_rtt_ms()
            floor_ms = max(0.5, 0.2 * base)  # transfers shorter than this are RTT noise
            transfer_ms = ms - self._typical_empty_ms(base)
            if sample.payload_bytes > 0 and transfer_ms > floor_ms:
                self._learn_rate(sample.payload_bytes * 8 / (transfer_ms * 1e3), at_s)  # Mbit/s
            elif sample.payload_bytes > 0 and self._tputs:
                # Too fast to measure, yet a fact: the payload crossed within its round trip less the quickest
                # empty call's, or the RTT's usual noise (the median of what recent empty samples showed above
                # the least of them; without any, the same 20 % of it) if longer, so the link carries at least
                # this rate now. It only ever raises an estimate it contradicts.
                # A base above that median is no RTT: on a slow link every recent sample carried a payload
                # and its serialization, so this answer was not fast, only as slow as the quickest of them,
                # and bounds nothing (it read as several Mbit/s on a 0.1 Mbit/s link).
                noise_ms = statistics.median(self._empties) - base if self._empties else floor_ms
                at_least = sample.payload_bytes * 8 / (max(0.5, ms - base, noise_ms) * 1e3)
                if noise_ms >= 0 and at_least > self._harmonic_mean():
                    self._learn_rate(at_least, at_s)
            if sample.payload_bytes == 0:
                self._empties.append(ms)
            if self._tputs:  # the part of this sample that is not serialization at the estimated rate
                ms = max(base, ms - sample.payload_bytes * 8 / (self._harmonic_mean() * 1e3))
            self._srtt = ms if self._srtt == 0 else (1 - self._alpha) * self._srtt + self._alpha * ms

    def _base_rtt_ms(self) -> float:
        """The least of the recent samples and of the newest ``BASE_EMPTIES`` empty calls: while frames go, an
        empty call a second keeps it an empty call's round trip, though one may wait behind a payload."""
        return min(min(self._rtts), min(self._recent_empties(), default=math.inf))

    def _typical_empty_ms(self, base: float) -> float:
        """What a frame's round trip is measured against for a throughput sample: the median of the newest
        ``BASE_EMPTIES`` empty calls when there are three or more (the RTT's jitter is as likely either way, so a
        transfer time less it is neither long nor short on average; less the least of them, every transfer read
        long by about the jitter's spread), else ``base``."""
        recent = self._recent_empties()
        return max(base, statistics.median(recent)) if len(recent) >= 3 else base

    def _recent_empties(self) -> list[float]:
        """Network ms of the newest ``BASE_EMPTIES`` empty calls, oldest first."""
        return list(self._empties)[-self.BASE_EMPTIES:]

    def _harmonic_mean(self) -> float:
        return len(self._tputs) / sum(1.0 / t for t in self._tputs)

    def _learn_rate(self, mbps: float, at_s: float | None) -> None:
        """Add a throughput sample (Mbit/s). One at least ``RISE_FACTOR`` times the current estimate says
        the link has got faster: the samples it contradicts (below ``1 / RISE_FACTOR`` of it) are dropped,
        so the estimate follows a link that speeds up as quickly as the harmonic mean follows one that
        slows down."""
        if self._tputs and mbps >= self.RISE_FACTOR * self._harmonic_mean():
            kept = [t for t in self._tputs if t * self.RISE_FACTOR >= mbps]
            self._tputs.clear()
            self._tputs.extend(kept)
        self._tputs.append(mbps)
        self._last_tput_at = self._clock() if at_s is None else at_s

    @property
    def rtt_ms(self) -> float:
        """Smoothed round-trip time (ms) of the network part without serialization, 0 before any sample."""
        with self._lock:
            return self._srtt

    @property
    def base_rtt_ms(self) -> float:
        with self._lock:
            return self._base_rtt_ms() if self._rtts else 0.0

    @property
    def throughput_mbps(self) -> float:
        """Harmonic mean of recent throughput samples (Mbit/s); 0 when unknown (link not a bottleneck)."""
        with self._lock:
            return self._harmonic_mean() if self._tputs else 0.0

    def recent_throughputs(self) -> tuple[float, ...]:
        """Recent throughput samples (Mbit/s), oldest first."""
        with self._lock:
            return tuple(self._tputs)

    @property
    def throughput_age_s(self) -> float:
        """Seconds since the newest throughput sample (10 when there is none)."""
        with self._lock:
            return min(self._clock() - self._last_tput_at, 10.0) if self._tputs else 10.0

    def transfer_ms(self, payload_bytes: int) -> float:
        """Predicted network time (ms) for a call of ``payload_bytes`` beyond an empty call's (a frame's: its
        payload and request overhead less an empty call's): RTT plus serialization at the estimated rate."""
        tput = self.throughput_mbps
        return self.rtt_ms + (payload_bytes * 8 / (tput * 1e3) if tput > 0 else 0.0)
