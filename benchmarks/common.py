"""Shared bits of the benchmark scripts: machine facts, JSON output, timing helpers."""

from __future__ import annotations

import json
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parents[1] / "out" / "benchmarks"


def machine() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__, "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "platform": platform.platform()}


def write_json(name: str, obj: dict, path: str | None = None) -> Path:
    target = Path(path) if path else OUT / f"{name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"benchmark": name, "machine": machine(), **obj}, indent=2) + "\n")
    print(f"wrote {target}")
    return target


def time_ms(fn: Callable[[], object], repeats: int, warmup: int = 3) -> list[float]:
    """Wall-clock ms of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def summary(samples: list[float]) -> dict:
    s = sorted(samples)
    return {"median": statistics.median(s), "mean": statistics.fmean(s), "p95": s[int(0.95 * (len(s) - 1))],
            "min": s[0], "n": len(s)}


def run_concurrently(work: Callable[[int, threading.Barrier], None], n: int, setup_timeout_s: float = 300.0) -> float:
    """Run ``work(k, start)`` for k < n on n threads; seconds from the common start until all end.

    Each ``work`` does its own setup (connect, warm up), then calls ``start.wait()``;
    the clock starts when all n are ready.
    """
    start = threading.Barrier(n + 1, timeout=setup_timeout_s)
    threads = [threading.Thread(target=work, args=(k, start)) for k in range(n)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - t0
