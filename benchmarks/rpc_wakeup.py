"""What an idle gap costs on this machine, apart from anything splitnet adds.

* Round trip of an empty ``Probe`` RPC on loopback, back to back and after the server
  idled: while the device computes a head the server sleeps, and waking its threads
  costs time on every frame.
* The split model's four compute stages (head, encode, decode, tail) in one process, no
  RPC at all, back to back and with the thread sleeping between device and server side
  as each side does in the runtime: the same work runs slower after a sleep.

    python -m benchmarks.rpc_wakeup [--calls 300] [--policy layer2/w0.5] [--json OUT]
"""

from __future__ import annotations

import argparse
import time

import grpc
import numpy as np
import torch

from benchmarks.common import in_process_timings, serving, stage_medians, summary, write_json
from splitnet.checkpoint import DEMO_DATA, SplitCheckpoint
from splitnet.data import load_npz
from splitnet.pipeline import Action, DeviceSide, ServerSide
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


def compute_after_sleep(device: DeviceSide, server: ServerSide, images: np.ndarray, action: Action,
                        sleep_s: float) -> dict[str, float]:
    """Median ms of each compute stage, and their sum, when the thread sleeps ``sleep_s`` after each side."""
    out = stage_medians(in_process_timings(device, server, images, action, sleep_s))
    out["sum_ms"] = sum(out.values())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--policy", default="layer2/w0.5")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with serving() as server:
        stub = pb_grpc.SplitInferenceStub(grpc.insecure_channel(server.address))
        result = {f"idle_{int(gap * 1e3)}ms": summary(round_trips(stub, args.calls, gap))
                  for gap in (0.0, 0.002, 0.005, 0.010)}
    for key, s in result.items():
        idle = key.removeprefix("idle_")
        print(f"Probe round trip after {idle:>5}: median {s['median']:.3f} ms, p95 {s['p95']:.3f} ms")
    ckpt = SplitCheckpoint.load(None)
    device, server_side = DeviceSide(ckpt), ServerSide(ckpt)
    images, action = load_npz(DEMO_DATA).images[:300], Action.parse(args.policy)
    compute_after_sleep(device, server_side, images[:30], action, 0.0)  # warm up
    compute = {f"sleep_{int(gap * 1e3)}ms": compute_after_sleep(device, server_side, images, action, gap)
               for gap in (0.0, 0.001, 0.004)}
    for key, c in compute.items():
        print(f"{args.policy} compute, {key.removeprefix('sleep_'):>3} sleep between sides: "
              + ", ".join(f"{name[:-3]} {ms:.2f}" for name, ms in c.items()) + " ms")
    write_json("rpc_wakeup", {"probe_round_trip_ms": result, "policy": args.policy,
                              "compute_stage_ms_median": compute}, args.json)


if __name__ == "__main__":
    main()
