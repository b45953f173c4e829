"""Counters, gauges and per-stage timings of a running server (thread-safe).

The same figures feed ``GetStats`` (recent-window percentiles, in ms) and the Prometheus
endpoint (:mod:`edge_server.metrics`: cumulative histograms in seconds, counters, gauges).
A frame's figures are recorded under one lock (:meth:`ServerStats.record`); the histograms
are brought up to date in bulk (NumPy) when they are read or every few thousand samples,
so a frame pays no per-bucket Python work.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

STAGES = ("queue", "decode", "tail", "own", "total")
INLINE_EVENTS = ("frames_ok", "batches", "frames_inline")  # counted for a frame run inline (one batch of one)
# Histogram buckets of the stage timings, seconds (0.1 ms ... 5 s).
STAGE_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0)
_BOUNDS_S = np.asarray(STAGE_BUCKETS_S)
_FOLD_EVERY = 4096  # samples of one stage kept before they are folded into its histogram


class _FrameTiming(Protocol):
    """A frame's server times (ms), as ``splitnet.rpc.convert.ServerTiming`` carries them."""

    queue_ms: float
    decode_ms: float
    tail_ms: float


class ServerStats:
    """Counts events, keeps the last ``window`` timings (ms) of each stage and reads gauges on demand."""

    def __init__(self, window: int = 20000) -> None:
        self._lock = threading.Lock()
        self._window = window
        self._counters: Counter[str] = Counter()
        self._samples: dict[str, deque[float]] = {}
        self._totals: Counter[str] = Counter()
        self._gauges: dict[str, Callable[[], float]] = {}
        # Histogram state per stage: samples not yet folded (ms), bucket counts (last: +Inf), sum (s).
        self._unfolded: dict[str, list[float]] = {}
        self._buckets: dict[str, np.ndarray] = {}
        self._sums_s: dict[str, float] = {}
        for stage in STAGES:
            self._new_stage(stage)
        self.started = time.monotonic()
        # Each server has its own registry (several servers can live in one process: tests).
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(StageHistogramCollector(self))

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counters[name] += n

    def observe(self, stage: str, ms: float) -> None:
        with self._lock:
            self._add(stage, ms)

    def record(self, events: Iterable[str] = (), **stage_ms: float) -> None:
        """Count each of ``events`` once and add one timing (ms) per stage keyword, under one lock."""
        with self._lock:
            for name in events:
                self._counters[name] += 1
            for stage, ms in stage_ms.items():
                self._add(stage, ms)

    def record_answer(self, t0: float, timing: _FrameTiming, answered: float | None = None,
                      inline: bool = False) -> None:
        """An answered frame: ``total`` (receipt to response, ms; ``t0`` and ``answered`` are time.monotonic() at
        receipt and when the response was ready, default now) and ``own``, the part that is neither queue, decode
        nor tail (payload checks, top-k, hand-offs, the response). ``inline``: the frame ran through
        ``MicroBatcher.run_inline_if_idle(..., record=False)``, whose counters and queue/decode/tail timings are
        recorded here, under the same lock."""
        total_ms = ((time.monotonic() if answered is None else answered) - t0) * 1e3
        own_ms = max(0.0, total_ms - timing.queue_ms - timing.decode_ms - timing.tail_ms)
        if inline:
            self.record(INLINE_EVENTS, queue=0.0, decode=timing.decode_ms, tail=timing.tail_ms, total=total_ms,
                        own=own_ms)
        else:
            self.record(total=total_ms, own=own_ms)

    def _new_stage(self, stage: str) -> deque[float]:
        self._unfolded[stage] = []
        self._buckets[stage] = np.zeros(len(_BOUNDS_S) + 1, np.int64)
        self._sums_s[stage] = 0.0
        samples: deque[float] = deque(maxlen=self._window)
        self._samples[stage] = samples
        return samples

    def _add(self, stage: str, ms: float) -> None:  # the lock is held
        samples = self._samples.get(stage)
        if samples is None:
            samples = self._new_stage(stage)
        samples.append(ms)
        self._totals[stage] += 1
        unfolded = self._unfolded[stage]
        unfolded.append(ms)
        if len(unfolded) >= _FOLD_EVERY:
            self._fold(stage)

    def _fold(self, stage: str) -> None:  # the lock is held
        values_s = np.asarray(self._unfolded[stage], dtype=np.float64) / 1e3
        self._unfolded[stage] = []
        if len(values_s):
            # Prometheus buckets are "less than or equal to": a value on a bound counts in that bucket.
            index = np.searchsorted(_BOUNDS_S, values_s, side="left")
            self._buckets[stage] += np.bincount(index, minlength=len(_BOUNDS_S) + 1)
            self._sums_s[stage] += float(values_s.sum())

    def histograms(self) -> dict[str, tuple[list[int], float]]:
        """Per stage: cumulative counts at each of ``STAGE_BUCKETS_S`` then +Inf, and the sum (s)."""
        with self._lock:
            for stage in self._unfolded:
                self._fold(stage)
            return {s: (np.cumsum(c).tolist(), self._sums_s[s]) for s, c in self._buckets.items()}

    def set_gauge(self, name: str, read: Callable[[], float]) -> None:
        """Report ``read()`` as gauge ``name`` (read when asked: GetStats, a Prometheus scrape)."""
        with self._lock:
            self._gauges[name] = read

    def gauges(self) -> dict[str, float]:
        with self._lock:
            reads = dict(self._gauges)
        return {name: float(read()) for name, read in reads.items()}

    def counters(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counters)

    def stages(self) -> dict[str, dict[str, float]]:
        """Per stage: count (all time), mean/p50/p95/p99 ms over the recent window."""
        with self._lock:
            snap = {k: (self._totals[k], np.asarray(v)) for k, v in self._samples.items()}
        out = {}
        for stage, (count, arr) in snap.items():
            if not len(arr):
                continue
            p50, p95, p99 = np.percentile(arr, [50, 95, 99])
            out[stage] = {"count": int(count), "mean_ms": float(arr.mean()), "p50_ms": float(p50),
                          "p95_ms": float(p95), "p99_ms": float(p99)}
        return out

    @property
    def uptime_s(self) -> float:
        return time.monotonic() - self.started


class StageHistogramCollector(Collector):
    """``splitnet_stage_seconds{stage}``: each stage's time per frame as a Prometheus histogram."""

    def __init__(self, stats: ServerStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily("splitnet_stage_seconds", "Time per frame in each server stage (queue: "
                                       "waiting for a batch slot; decode; tail; own: the rest of the "
                                       "server's time, i.e. payload checks, top-k, hand-offs and the response; "
                                       "total: request to answer)",
                                       labels=["stage"])
        bounds = [*(repr(b) for b in STAGE_BUCKETS_S), "+Inf"]
        for stage, (cumulative, sum_s) in self.stats.histograms().items():
            family.add_metric([stage], list(zip(bounds, cumulative)), sum_s)
        yield family
