"""Counters, gauges and per-stage timings of a running server (thread-safe).

The same figures feed ``GetStats`` (recent-window percentiles, in ms) and the Prometheus
endpoint (:mod:`edge_server.metrics`: cumulative histograms in seconds, counters, gauges).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable

import numpy as np
from prometheus_client import CollectorRegistry, Histogram

STAGES = ("queue", "decode", "tail", "total")
# Histogram buckets of the stage timings, seconds (0.1 ms ... 5 s).
STAGE_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0)


class ServerStats:
    """Counts events, keeps the last ``window`` timings (ms) of each stage and reads gauges on demand."""

    def __init__(self, window: int = 20000) -> None:
        self._lock = threading.Lock()
        self._window = window
        self._counters: Counter[str] = Counter()
        self._samples: dict[str, deque[float]] = {s: deque(maxlen=window) for s in STAGES}
        self._totals: Counter[str] = Counter()
        self._gauges: dict[str, Callable[[], float]] = {}
        self.started = time.monotonic()
        # Each server has its own registry (several servers can live in one process: tests).
        self.registry = CollectorRegistry(auto_describe=True)
        self._histogram = Histogram("splitnet_stage_seconds", "Time per frame in each server stage (queue: "
                                    "waiting for a batch slot; decode; tail; total: request to answer)",
                                    ["stage"], buckets=STAGE_BUCKETS_S, registry=self.registry)
        self._children = {s: self._histogram.labels(s) for s in STAGES}

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counters[name] += n

    def observe(self, stage: str, ms: float) -> None:
        with self._lock:
            self._samples.setdefault(stage, deque(maxlen=self._window)).append(ms)
            self._totals[stage] += 1
            child = self._children.get(stage)
            if child is None:
                child = self._children[stage] = self._histogram.labels(stage)
        child.observe(ms / 1e3)

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
