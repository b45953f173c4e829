"""Server throughput with micro-batching against batch 1, under many concurrent streams.

The frames are encoded once beforehand, so the clients cost little and the server is
the bottleneck. The same ``--streams`` streams of ``--frames`` frames go to a server
started with ``--max-batch 1`` and then to one with ``--max-batch 32``.

    python -m benchmarks.batching_gain [--streams 32] [--frames 200] [--policy layer1/w0.5] [--json OUT]
"""

from __future__ import annotations

import threading
import time

import grpc
import numpy as np

from benchmarks.common import benchmark_arguments, run_concurrently, serving, setup, write_json
from splitnet.checkpoint import DEMO_DATA
from splitnet.data import load_npz
from splitnet.pipeline import Action, DeviceSide
from splitnet.rpc import convert
from splitnet.rpc.v1 import splitnet_pb2 as pb
from splitnet.rpc.v1 import splitnet_pb2_grpc as pb_grpc


def run_load(address: str, requests: list[pb.InferRequest], streams: int, frames: int) -> dict:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def one_stream(k: int, start: threading.Barrier) -> None:
        channel = grpc.insecure_channel(address)
        stub = pb_grpc.SplitInferenceStub(channel)
        reqs = [requests[(k * frames + i) % len(requests)] for i in range(frames)]
        sent: dict[int, float] = {}

        def gen():
            for i, r in enumerate(reqs):
                msg = pb.InferRequest(seq=i, payload=r.payload, top_k=1)
                sent[i] = time.perf_counter()
                yield msg

        start.wait()
        local = []
        bad = 0
        for resp in stub.InferStream(gen(), timeout=600):
            local.append((time.perf_counter() - sent[resp.seq]) * 1e3)
            bad += resp.status_code != 0
        with lock:
            latencies.extend(local)
            errors[0] += bad + frames - len(local)
        channel.close()

    elapsed = run_concurrently(one_stream, streams)
    lat = np.asarray(latencies)
    # Errors are frames answered with a non-OK status (RESOURCE_EXHAUSTED when the bounded queue is full).
    return {"frames": streams * frames, "seconds": elapsed, "fps": streams * frames / elapsed, "errors": errors[0],
            "ok_fps": (streams * frames - errors[0]) / elapsed,
            "latency_ms": {"p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99))}}


def main() -> None:
    ap = benchmark_arguments(__doc__, policy="layer1/w0.5")
    ap.add_argument("--streams", type=int, default=32)
    ap.add_argument("--frames", type=int, default=200)
    args = ap.parse_args()
    ckpt = setup(args)
    frames = load_npz(DEMO_DATA).images
    payloads = DeviceSide(ckpt).encode(frames, Action.parse(args.policy))
    requests = [convert.request(p) for p in payloads]
    results = {}
    for max_batch in (1, 32):
        extra = ["--max-batch", str(max_batch), "--max-queue", str(args.streams * 64)]
        with serving(*extra, checkpoint=args.checkpoint) as server:
            run_load(server.address, requests[:64], 4, 20)  # warm up
            results[f"max_batch_{max_batch}"] = run_load(server.address, requests, args.streams, args.frames)
        r = results[f"max_batch_{max_batch}"]
        print(f"max batch {max_batch:>2}: {r['ok_fps']:.0f} frames/s answered OK, p50 {r['latency_ms']['p50']:.1f} ms, "
              f"p99 {r['latency_ms']['p99']:.1f} ms, errors {r['errors']}")
    gain = results["max_batch_32"]["ok_fps"] / results["max_batch_1"]["ok_fps"]
    print(f"micro-batching gain: {gain:.2f}x")
    write_json("batching_gain", {"checkpoint_sha256": ckpt.sha256, "policy": args.policy, "streams": args.streams,
                                 "frames_per_stream": args.frames, **results, "gain": gain}, args.json)


if __name__ == "__main__":
    main()
