"""Round trip of an empty ``Probe`` RPC on loopback, back to back and after the server idled.

Separates what gRPC and this machine cost from what splitnet adds: while the device
computes a head the server sleeps, and waking its threads costs time on every frame.

    python -m benchmarks.rpc_wakeup [--calls 300] [--json OUT]
"""

from __future__ import annotations

import argparse
import time

import grpc

from benchmarks.common import summary, write_json
from edge_server.process import spawn_server, wait_serving
from splitnet.rpc.v1 import splitnet_pb2 as pb
from splitnet.rpc.v1 import splitnet_pb2_grpc as pb_grpc


def round_trips(stub: pb_grpc.SplitInferenceStub, calls: int, idle_s: float) -> list[float]:
    """ms per Probe, each after ``idle_s`` of busy work on the caller (as a head computation would be)."""
    out = []
    for _ in range(calls + 20):
        until = time.perf_counter() + idle_s
        while time.perf_counter() < until:
            pass
        t0 = time.perf_counter()
        stub.Probe(pb.ProbeRequest())
        out.append((time.perf_counter() - t0) * 1e3)
    return out[20:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    server = spawn_server()
    try:
        wait_serving(server.address)
        stub = pb_grpc.SplitInferenceStub(grpc.insecure_channel(server.address))
        result = {f"idle_{int(gap * 1e3)}ms": summary(round_trips(stub, args.calls, gap))
                  for gap in (0.0, 0.002, 0.005, 0.010)}
    finally:
        server.terminate()
    for key, s in result.items():
        idle = key.removeprefix("idle_")
        print(f"Probe round trip after {idle:>5}: median {s['median']:.3f} ms, p95 {s['p95']:.3f} ms")
    write_json("rpc_wakeup", result, args.json)


if __name__ == "__main__":
    main()
