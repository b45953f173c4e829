"""Many device clients streaming at once: throughput, latency percentiles, lost frames.

``--clients`` SplitClients (each its own channel and stream, in threads of this
process) stream ``--frames`` frames each to one ``splitnet serve`` process. A frame
the server cannot take (queue full, deadline) falls back to local inference; a frame
without any result counts as lost.

    python -m benchmarks.load_test [--clients 32] [--frames 200] [--policy layer2/w0.5] [--json OUT]
"""

from __future__ import annotations

import threading
from collections import Counter

import numpy as np

from benchmarks.common import benchmark_arguments, run_concurrently, serving, setup, write_json
from device_client import SplitClient
from splitnet.checkpoint import DEMO_DATA
from splitnet.data import load_npz


def main() -> None:
    ap = benchmark_arguments(__doc__, policy="layer2/w0.5")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--max-queue", type=int, default=512)
    args = ap.parse_args()
    ckpt = setup(args)
    data = load_npz(DEMO_DATA)
    results: dict[int, list] = {}
    with serving("--max-queue", str(args.max_queue), checkpoint=args.checkpoint) as server:

        def client(k: int, start: threading.Barrier) -> None:
            idx = (np.arange(args.frames) + k * 7) % len(data)
            with SplitClient(server.address, checkpoint=ckpt, policy=args.policy, rpc_timeout_ms=30000) as c:
                c.wait_until_ready(60)
                start.wait()
                results[k] = [(r, int(data.labels[i])) for r, i in zip(c.stream(iter(data.images[idx])), idx)]

        elapsed = run_concurrently(client, args.clients)
    code = server.proc.returncode
    flat = [pair for k in sorted(results) for pair in results[k]]
    lat = np.asarray([r.latency_ms for r, _ in flat])
    expected = args.clients * args.frames
    report = {
        "clients": args.clients, "frames_per_client": args.frames, "policy": args.policy,
        "frames": expected, "results": len(flat), "frames_lost": expected - len(flat),
        "offloaded": sum(r.offloaded for r, _ in flat),
        "fallback_reasons": dict(Counter(r.fallback for r, _ in flat if r.fallback)),
        "seconds": elapsed, "throughput_fps": len(flat) / elapsed,
        "latency_ms": {"p50": float(np.percentile(lat, 50)), "p95": float(np.percentile(lat, 95)),
                       "p99": float(np.percentile(lat, 99)), "mean": float(lat.mean())},
        "top1": float(np.mean([r.top1 == y for r, y in flat])),
        "server_exit_code": code,
    }
    print(f"{args.clients} clients x {args.frames} frames: {report['throughput_fps']:.0f} frames/s, "
          f"p50 {report['latency_ms']['p50']:.1f} ms, p99 {report['latency_ms']['p99']:.1f} ms, "
          f"lost {report['frames_lost']}, offloaded {report['offloaded']}, fallbacks {report['fallback_reasons']}")
    write_json("load_test", {"checkpoint_sha256": ckpt.sha256, **report}, args.json)


if __name__ == "__main__":
    main()
