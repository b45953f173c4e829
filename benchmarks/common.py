"""Shared bits of the benchmark scripts: JSON output with provenance, timing helpers, a served edge server and
clients started together."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from edge_server.process import ServerProcess, spawn_server, wait_port_file, wait_serving
from splitnet.checkpoint import SplitCheckpoint
from splitnet.pipeline import Action, DeviceSide, ServerSide, Timing
from splitnet.provenance import provenance, remember_start

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "out" / "benchmarks"
remember_start()  # a benchmark's report names the commit it started from


STAGES = ("head_ms", "encode_ms", "decode_ms", "tail_ms")  # the split model's compute stages, in order


def benchmark_arguments(doc: str | None, *, policy: str | None = None, threads: int = 1,
                        checkpoint: str | None = None, json_path: str | None = None) -> argparse.ArgumentParser:
    """A parser with the options the benchmarks share: ``--checkpoint`` (default: the shipped classifier),
    ``--threads`` (torch threads of this process), ``--json`` (the report's path; default under ``out/``)
    and, when ``policy`` is given, ``--policy`` (an action name). Add the benchmark's own options to it."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=checkpoint,
                    help="split checkpoint (default: " + ("%(default)s)" if checkpoint else "the shipped classifier)"))
    if policy is not None:
        ap.add_argument("--policy", default=policy, help="action the frames use (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=threads, help="torch threads (default: %(default)s)")
    ap.add_argument("--json", default=json_path,
                    help="report path (default: " + ("%(default)s)" if json_path else "out/benchmarks/NAME.json)"))
    return ap


def setup(args: argparse.Namespace) -> SplitCheckpoint:
    """Sets this process's torch threads from ``--threads`` and loads ``--checkpoint``."""
    torch.set_num_threads(args.threads)
    return SplitCheckpoint.load(args.checkpoint)


def write_json(name: str, obj: dict, path: str | None = None) -> Path:
    """The benchmark's report with its provenance (command, date, machine, commit)."""
    target = Path(path) if path else OUT / f"{name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks." + name + "".join(f" {a}" for a in sys.argv[1:])
    target.write_text(json.dumps({"benchmark": name, **provenance(command), **obj}, indent=2) + "\n")
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
    """The spread of repeated measurements (same unit as ``samples``): median, mean, p95, interquartile
    range, min, max and count."""
    s = sorted(samples)
    q1, q3 = np.percentile(s, [25, 75])
    return {"median": statistics.median(s), "mean": statistics.fmean(s), "p95": s[int(0.95 * (len(s) - 1))],
            "iqr": [float(q1), float(q3)], "min": s[0], "max": s[-1], "n": len(s)}


def spawn_port_file_server(module: str, workdir: Path, *args: str,
                           timeout_s: float = 600.0) -> tuple[subprocess.Popen, int]:
    """Start ``python -m module PORT_FILE *args`` (a server that writes its port to PORT_FILE once serving: the
    echo and ladder servers) from the repository's root; returns the process and its port."""
    port_file = workdir / f"{module.rsplit('.', 1)[-1]}-port"
    proc = subprocess.Popen([sys.executable, "-m", module, str(port_file), *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    return proc, wait_port_file(proc, port_file, timeout_s)


@contextmanager
def serving(*args: str, checkpoint: str | None = None, ready_timeout_s: float = 120.0,
            **spawn: object) -> Iterator[ServerProcess]:
    """``splitnet serve`` with ``args`` (and ``--checkpoint`` when given) in a child process, SERVING in the block
    and stopped with SIGTERM after it (its exit status is then ``server.proc.returncode``).

    ``spawn`` goes to :func:`~edge_server.process.spawn_server` (``workdir``, ``timeout_s``, ...).
    """
    server = spawn_server(*args, *(["--checkpoint", checkpoint] if checkpoint else []), **spawn)
    try:
        wait_serving(server.address, timeout_s=ready_timeout_s)
        yield server
    finally:
        server.terminate()


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


def in_process_timings(device: DeviceSide, server: ServerSide, frames: np.ndarray, action: Action,
                       sleep_s: float = 0.0) -> list[Timing]:
    """Per frame, the compute stages of ``action`` in this process, no RPC (ms).

    ``sleep_s`` > 0 sleeps after the device side and after the server side of every
    frame, as each side idles while the other works in the runtime.
    """
    timings = []
    for i, frame in enumerate(frames):
        t = Timing()
        payloads = device.encode(frame, action, seq=i, timing=t)
        if sleep_s:
            time.sleep(sleep_s)
        server.infer(payloads, t)
        if sleep_s:
            time.sleep(sleep_s)
        timings.append(t)
    return timings


def stage_medians(rows: list, names: tuple[str, ...] = STAGES) -> dict[str, float]:
    """Median ms of each named stage over ``rows`` (Timing or FrameResult objects)."""
    return {name: statistics.median(getattr(r, name) for r in rows) for name in names}


def run_splitnet(*args: str, threads: int, timeout_s: float) -> subprocess.CompletedProcess:
    """``splitnet --threads THREADS ARGS`` in a child process from the repository root; raises with its output
    when it fails."""
    cmd = [sys.executable, "-m", "splitnet_cli.main", "--threads", str(threads), *args]
    proc = subprocess.run(cmd, cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True,
                          timeout=timeout_s)
    if proc.returncode != 0:
        raise RuntimeError(f"splitnet {args[0]} exited with {proc.returncode}:\n"
                           f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return proc
