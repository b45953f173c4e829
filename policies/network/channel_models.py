"""Trace-driven channel: transfer time of a payload from the varying rate, RTT, jitter and loss.

The time to send ``n`` bytes starting at time ``t`` integrates the trace's throughput
from ``t`` on (looping at the trace's end) until ``8 n`` bits have gone through, so a
dip in the middle of a transfer slows it. Packet loss follows a Gilbert–Elliott chain
(good/bad states); each lost packet costs one extra RTT (retransmission after
duplicate ACKs) and is sent again. All randomness comes from one seeded generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from policies.network.traces import Trace

MSS_BYTES = 1460  # TCP payload bytes per packet
HEADER_BYTES = 40  # IP + TCP headers per packet
MIN_MBPS = 1e-3  # a dead link still trickles, so a transfer always ends


@dataclass(frozen=True)
class GilbertElliott:
    """Two-state loss model: P(good->bad), P(bad->good) per packet, loss probability in each state."""

    p_good_bad: float = 0.0
    p_bad_good: float = 1.0
    loss_good: float = 0.0
    loss_bad: float = 0.0

    @classmethod
    def from_rate(cls, loss: float, burst: float = 2.0) -> GilbertElliott:
        """A chain with mean loss ``loss`` in bursts of ``burst`` packets on average (loss_bad = 1)."""
        if loss <= 0:
            return cls()
        if not 0 < loss < 1 or burst < 1:
            raise ValueError(f"loss must be in [0, 1) and burst >= 1, got {loss}, {burst}")
        p_bg = 1.0 / burst
        p_gb = loss * p_bg / (1 - loss)
        return cls(min(p_gb, 1.0), p_bg, 0.0, 1.0)

    @property
    def mean_loss(self) -> float:
        total = self.p_good_bad + self.p_bad_good
        if total == 0:
            return self.loss_good
        pi_bad = self.p_good_bad / total
        return (1 - pi_bad) * self.loss_good + pi_bad * self.loss_bad


@dataclass(frozen=True)
class ChannelConfig:
    """Link parameters on top of a trace."""

    scale: float = 1.0  # multiply the trace's throughput
    rtt_ms: float = 40.0  # base round-trip time
    jitter_ms: float = 0.0  # standard deviation of the RTT's Gaussian jitter
    loss: GilbertElliott = GilbertElliott()


class Channel:
    """Transfer times over one trace; seeded and deterministic."""

    def __init__(self, trace: Trace, config: ChannelConfig | None = None, seed: int = 0) -> None:
        self.trace = trace
        self.config = config or ChannelConfig()
        self.rng = np.random.default_rng(seed)
        self._loss_bad = False
        rates = np.maximum(trace.mbps * self.config.scale, MIN_MBPS) * 1e6  # bit/s
        edges = np.append(trace.times_s - trace.times_s[0], trace.duration_s)
        self._edges = edges
        self._rates = rates
        self._cum = np.concatenate([[0.0], np.cumsum(rates * np.diff(edges))])  # bits by each edge
        self.period_s = float(edges[-1])
        self.bits_per_period = float(self._cum[-1])

    def rate_mbps(self, t_s: float) -> float:
        """Throughput (Mbit/s, after scaling) at time ``t_s``."""
        i = int(np.searchsorted(self._edges, t_s % self.period_s, side="right") - 1)
        return float(self._rates[min(i, len(self._rates) - 1)] / 1e6)

    def _bits_until(self, t_s: float) -> float:
        loops, rem = divmod(t_s, self.period_s)
        i = int(np.searchsorted(self._edges, rem, side="right") - 1)
        i = min(i, len(self._rates) - 1)
        return loops * self.bits_per_period + self._cum[i] + self._rates[i] * (rem - self._edges[i])

    def _time_for_bits(self, bits: float) -> float:
        """Inverse of ``_bits_until``: the time at which ``bits`` bits have gone through."""
        loops, rem = divmod(bits, self.bits_per_period)
        i = int(np.searchsorted(self._cum, rem, side="right") - 1)
        i = min(i, len(self._rates) - 1)
        return loops * self.period_s + self._edges[i] + (rem - self._cum[i]) / self._rates[i]

    def serialization_ms(self, nbytes: int, t_s: float) -> float:
        """ms to push ``nbytes`` (plus packet headers) through the link starting at ``t_s``."""
        if nbytes <= 0:
            return 0.0
        packets = math.ceil(nbytes / MSS_BYTES)
        bits = 8.0 * (nbytes + packets * HEADER_BYTES)
        return (self._time_for_bits(self._bits_until(t_s) + bits) - t_s) * 1e3

    def rtt_sample_ms(self) -> float:
        c = self.config
        return max(0.0, c.rtt_ms + (self.rng.normal(0.0, c.jitter_ms) if c.jitter_ms > 0 else 0.0))

    def _lost_packets(self, packets: int) -> int:
        ge = self.config.loss
        if ge.loss_bad == 0 and ge.loss_good == 0:
            return 0
        lost = 0
        for _ in range(packets):
            self._loss_bad = (self.rng.random() >= ge.p_bad_good) if self._loss_bad else \
                (self.rng.random() < ge.p_good_bad)
            if self.rng.random() < (ge.loss_bad if self._loss_bad else ge.loss_good):
                lost += 1
        return lost

    def transfer_ms(self, nbytes: int, t_s: float) -> float:
        """Request of ``nbytes`` at ``t_s`` until its (small) answer is back: serialization + RTT + losses."""
        rtt = self.rtt_sample_ms()
        ms = self.serialization_ms(nbytes, t_s) + rtt
        packets = max(1, math.ceil(nbytes / MSS_BYTES))
        lost = self._lost_packets(packets)
        for _ in range(min(lost, 64)):  # each loss: one more RTT and the packet again
            ms += rtt + self.serialization_ms(min(nbytes, MSS_BYTES), t_s + ms / 1e3)
        return ms
