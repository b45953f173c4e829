"""Counters and per-stage timing samples of a running server (thread-safe)."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque

import numpy as np

STAGES = ("queue", "decode", "tail", "total")


class ServerStats:
    """Counts events and keeps the last ``window`` timings (ms) of each stage."""

    def __init__(self, window: int = 20000) -> None:
        self._lock = threading.Lock()
        self._counters: Counter[str] = Counter()
        self._samples: dict[str, deque[float]] = {s: deque(maxlen=window) for s in STAGES}
        self._totals: Counter[str] = Counter()
        self.started = time.monotonic()

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counters[name] += n

    def observe(self, stage: str, ms: float) -> None:
        with self._lock:
            self._samples.setdefault(stage, deque(maxlen=20000)).append(ms)
            self._totals[stage] += 1

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
