"""Framework overhead and streaming gain of the gRPC runtime on loopback.

One run, side by side, client and server one torch thread each (they share this
machine's cores):

* in process, batch 1: head, encode, decode and tail ms of every frame;
* ``splitnet serve`` (its defaults) as a separate process, unary ``Infer`` per frame:
  end-to-end latency; overhead = latency - (head + encode + decode + tail). One frame at
  a time, so the server's micro-batching never joins two of them. Each stage's median in
  process and in the runtime (the server's own decode and tail times) shows where it goes;
* the same frames through ``InferStream`` (8 in flight) to the same server: frames per
  second against unary (frames in flight may share a tail batch: that is the point of
  streaming); then again with the device running head and encoder on groups of
  ``--device-batch`` frames (``SplitClient.stream(frames, device_batch=N)``).

    python -m benchmarks.runtime_overhead [--policy layer2/w0.5] [--frames 300] [--json OUT]
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from benchmarks.common import STAGES, benchmark_arguments, in_process_timings, serving, setup, stage_medians, write_json
from device_client import SplitClient
from splitnet.checkpoint import DEMO_DATA
from splitnet.data import load_npz
from splitnet.pipeline import Action, DeviceSide, ServerSide


def main() -> None:
    ap = benchmark_arguments(__doc__, policy="layer2/w0.5")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--device-batch", type=int, default=4)
    args = ap.parse_args()
    ckpt = setup(args)
    frames = load_npz(DEMO_DATA).images
    frames = np.concatenate([frames] * (args.frames // len(frames) + 1))[: args.frames]
    action = Action.parse(args.policy)
    device, server_side = DeviceSide(ckpt), ServerSide(ckpt)
    in_process_timings(device, server_side, frames[:30], action)  # warm up
    local_timings = in_process_timings(device, server_side, frames, action)
    compute = [sum(getattr(t, name) for name in STAGES) for t in local_timings]

    with serving(checkpoint=args.checkpoint) as server:
        with SplitClient(server.address, checkpoint=ckpt, policy=args.policy) as client:
            for f in frames[:30]:
                client.infer(f)
            t0 = time.perf_counter()
            unary = [client.infer(f) for f in frames]
            unary_s = time.perf_counter() - t0
            list(client.stream(frames[:30]))
            t0 = time.perf_counter()
            streamed = list(client.stream(frames))
            stream_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            grouped = list(client.stream(frames, device_batch=args.device_batch))
            grouped_s = time.perf_counter() - t0
    assert all(r.offloaded for r in unary + streamed + grouped), "some frames fell back: the comparison would be unfair"
    e2e = [r.latency_ms for r in unary]
    compute_median = statistics.median(compute)
    overhead = [r.latency_ms - (r.head_ms + r.encode_ms + r.decode_ms + r.tail_ms) for r in unary]
    result = {
        "policy": args.policy,
        "frames": len(frames),
        "in_process_compute_ms": {"median": compute_median, "mean": statistics.fmean(compute)},
        "unary_latency_ms": {"median": statistics.median(e2e), "p95": float(np.percentile(e2e, 95))},
        "overhead_ms_median": statistics.median(e2e) - compute_median,
        "overhead_ms_per_frame_median": statistics.median(overhead),
        # where the time goes: the same stages in process and in the runtime (the server's own timings);
        # network = the RPC's round trip minus the server's queue + decode + tail
        "stage_ms_median": {"in_process": stage_medians(local_timings),
                            "runtime": stage_medians(unary, (*STAGES, "network_ms", "queue_ms"))},
        "unary_fps": len(frames) / unary_s,
        "stream_fps": len(frames) / stream_s,
        "stream_over_unary": unary_s / stream_s,
        "device_batch": args.device_batch,
        "stream_device_batch_fps": len(frames) / grouped_s,
        "stream_device_batch_over_unary": unary_s / grouped_s,
    }
    print(f"in-process compute (head+encode+decode+tail) median {compute_median:.2f} ms")
    print(f"unary end-to-end median {result['unary_latency_ms']['median']:.2f} ms -> framework overhead "
          f"{result['overhead_ms_median']:.2f} ms "
          f"(per frame, from its own breakdown: {result['overhead_ms_per_frame_median']:.2f} ms)")
    here, there = result["stage_ms_median"]["in_process"], result["stage_ms_median"]["runtime"]
    print("stage medians, in process -> runtime: " + ", ".join(
        f"{name[:-3]} {here[name]:.2f} -> {there[name]:.2f}" for name in STAGES)
        + f"; network {there['network_ms']:.2f}, queue {there['queue_ms']:.2f} ms")
    print(f"throughput: unary {result['unary_fps']:.1f} fps, stream {result['stream_fps']:.1f} fps "
          f"-> {result['stream_over_unary']:.2f}x; stream with device batches of {args.device_batch}: "
          f"{result['stream_device_batch_fps']:.1f} fps -> {result['stream_device_batch_over_unary']:.2f}x")
    write_json("runtime_overhead", {"checkpoint_sha256": ckpt.sha256, **result}, args.json)


if __name__ == "__main__":
    main()
