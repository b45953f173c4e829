"""splitnet's own overhead per frame, against a bare ``grpcio`` echo of the same bytes.

One run, two to five servers, each a separate process with one torch thread, on loopback:

* a bare ``grpcio`` server (``benchmarks/echo_server.py``, started by this script) whose one method returns
  the request bytes it got: no protobuf parsing, no splitnet code;
* ``splitnet serve`` (the embedded engine, its defaults), called with unary ``Infer``;
* another ``splitnet serve`` sent the same frames on one open ``InferStream``, a frame at a time (each after
  the last answer; ``--no-stream`` skips it). The bare echo stays unary: the stream's figure is what a frame on
  a stream costs over a unary echo;
* optionally ``splitnet serve --event-loop asyncio`` (``--compare-event-loops``: the embedded server on
  asyncio's own loop beside the default, uvloop where installed);
* optionally ``splitnet serve --engine ray`` (Ray Serve's gRPC ingress, 1 replica; needs
  ``splitnet[ray]``).

The client sends the same ``InferRequest`` bytes (one frame of the demo sample, encoded once)
to each, calls interleaved (echo, direct Infer, Ray Infer, echo, Ray Infer, direct Infer, ...: the
servers' order alternates, as the second one called pays for the first's cache traffic) so that the machine's
slow drifts hit all of them alike. Per call pair::

    overhead = Infer round trip - server compute (the server's own decode + tail ms)
               - the bare echo round trip next to it

The Infer round trip includes the client's conversion (``convert.request`` and
``convert.prediction_from_response``); the server's decode + tail are the compute a frame
needs anyway, so what is left is splitnet's protobuf handling, payload checks, servicer and
queueing, plus the difference between an echo and a real response. Medians per round, then
the median over rounds with the rounds' spread. Target: median <= 0.3 ms (issue 13).

Where it goes: after the run each server's ``GetStats`` gives the median of its ``own`` stage
(a frame's time in the server that is neither queue, decode nor tail: payload checks, top-k,
hand-offs, building the response); the rest is outside that stage: grpc.aio against the bare grpcio
server, protobuf, the client's conversions, and everything's slower start after the model's compute
(``benchmarks.overhead_ladder`` splits the whole overhead step by step).

    python -m benchmarks.grpc_overhead [--rounds 15] [--calls 100] [--no-ray] [--no-stream]
                                       [--compare-event-loops] [--json reports/grpc_overhead.json]
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import grpc

from benchmarks.common import ROOT, benchmark_arguments, setup, spawn_port_file_server, summary, write_json
from benchmarks.echo_server import ECHO_METHOD
from edge_server.process import ServerProcess, spawn_server, wait_serving
from splitnet.checkpoint import DEMO_DATA
from splitnet.compute import ComputeModel
from splitnet.data import load_npz
from splitnet.pipeline import Action, DeviceSide
from splitnet.rpc import convert
from splitnet.rpc.v1 import splitnet_pb2 as pb
from splitnet.rpc.v1 import splitnet_pb2_grpc as pb_grpc

TARGET_MS = 0.3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------- timing
class _Target:
    """One Infer endpoint: times a call including the client's conversions (ms)."""

    def __init__(self, name: str, address: str) -> None:
        self.name = name
        self.channel = grpc.insecure_channel(address, compression=grpc.Compression.NoCompression)
        self.stub = pb_grpc.SplitInferenceStub(self.channel)

    def own_ms_p50(self) -> float:
        """Median over the server's recent frames of its ``own`` stage (ms), from ``GetStats``."""
        stages = {s.stage: s for s in self.stub.GetStats(pb.GetStatsRequest(), timeout=30).stages}
        return stages["own"].p50_ms

    def call(self, payload, top_k: int = 5) -> tuple[float, float]:
        """(round trip ms, server decode + tail ms) of one unary Infer."""
        return self._timed(lambda: self.stub.Infer(convert.request(payload, top_k), timeout=30))

    @staticmethod
    def _timed(answer: Callable[[], pb.InferResponse]) -> tuple[float, float]:
        """(ms from the request's conversion to the answer's, the server's decode + tail ms) of ``answer()``."""
        t0 = time.perf_counter()
        resp = answer()
        convert.prediction_from_response(resp)
        rtt = (time.perf_counter() - t0) * 1e3
        timing = convert.timing_from_response(resp)
        return rtt, timing.decode_ms + timing.tail_ms

    def close(self) -> None:
        self.channel.close()


class _StreamTarget(_Target):
    """One open ``InferStream``, a frame at a time (each sent after the last answer, as a camera slower than the
    round trip sends them): times a frame from its request to its answer, the client's conversions included."""

    def __init__(self, name: str, address: str) -> None:
        super().__init__(name, address)
        self._outgoing: queue.Queue = queue.Queue()

        def requests():
            while (req := self._outgoing.get()) is not None:
                yield req

        self._answers = self.stub.InferStream(requests(), timeout=600)  # the whole run

    def call(self, payload, top_k: int = 5) -> tuple[float, float]:
        def answer() -> pb.InferResponse:
            self._outgoing.put(convert.request(payload, top_k))
            return next(self._answers)

        return self._timed(answer)

    def close(self) -> None:
        self._outgoing.put(None)
        self._answers.cancel()
        super().close()


def measure(echo_address: str, targets: list[_Target], payload, rounds: int, calls: int) -> dict:
    """Interleaved calls; per round the median of each series; returns per-round medians per series."""
    request_bytes = convert.request(payload).SerializeToString()
    echo_channel = grpc.insecure_channel(echo_address, compression=grpc.Compression.NoCompression)
    echo = echo_channel.unary_unary(ECHO_METHOD, request_serializer=None, response_deserializer=None)

    def echo_ms() -> float:
        t0 = time.perf_counter()
        echo(request_bytes, timeout=30)
        return (time.perf_counter() - t0) * 1e3

    for _ in range(30):  # warm up connections and code paths
        echo_ms()
        for t in targets:
            t.call(payload)
    per_round: dict[str, list[float]] = {"echo_ms": []}
    for t in targets:
        for key in ("rtt_ms", "compute_ms", "overhead_ms"):
            per_round[f"{t.name}_{key}"] = []
    # Each other target against the first (the embedded server's Infer), compute removed, call by call.
    differences = {f"{t.name}_minus_{targets[0].name}_ms": t for t in targets[1:]}
    per_round.update({k: [] for k in differences})
    for r in range(rounds):
        rows: dict[str, list[float]] = {k: [] for k in per_round}
        for i in range(calls):
            e = echo_ms()
            rows["echo_ms"].append(e)
            without_compute = {}
            # A server called right after another pays for the other's cache traffic (~0.03 ms here):
            # the order alternates so that no target always comes last.
            for t in (targets if i % 2 == 0 else targets[::-1]):
                rtt, compute = t.call(payload)
                rows[f"{t.name}_rtt_ms"].append(rtt)
                rows[f"{t.name}_compute_ms"].append(compute)
                rows[f"{t.name}_overhead_ms"].append(rtt - compute - e)
                without_compute[t.name] = rtt - compute
            for k, t in differences.items():
                rows[k].append(without_compute[t.name] - without_compute[targets[0].name])
        for k, v in rows.items():
            per_round[k].append(statistics.median(v))
        print(f"round {r + 1}/{rounds}: " + ", ".join(f"{k} {statistics.median(v):.3f}" for k, v in rows.items()),
              flush=True)
    echo_channel.close()
    return per_round


def main() -> None:
    ap = benchmark_arguments(__doc__, policy="layer2/w0.5", json_path=str(ROOT / "reports" / "grpc_overhead.json"))
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--calls", type=int, default=100, help="calls per series per round")
    ap.add_argument("--no-ray", action="store_true", help="skip the Ray Serve engine")
    ap.add_argument("--no-stream", action="store_true",
                    help="skip the InferStream series (a second embedded server, one open stream, a frame at a time)")
    ap.add_argument("--compare-event-loops", action="store_true",
                    help="also run the embedded server on asyncio's own loop (`--event-loop asyncio`) beside the "
                         "default (uvloop where installed); with --no-ray the report has asyncio_minus_direct_ms")
    args = ap.parse_args()
    ckpt = setup(args)
    frame = load_npz(DEMO_DATA).images[0]
    payload = DeviceSide(ckpt).encode(frame, Action.parse(args.policy))[0]
    extra = ["--checkpoint", args.checkpoint] if args.checkpoint else []
    workdir = Path(tempfile.mkdtemp(prefix="splitnet-overhead-"))
    echo_proc, echo_port = spawn_port_file_server("benchmarks.echo_server", workdir)
    servers: list[ServerProcess] = []
    targets: list[_Target] = []
    try:
        embedded = [("direct", ())] + ([("asyncio", ("--event-loop", "asyncio"))] if args.compare_event_loops else [])
        if not args.no_stream:  # a server of its own: an open stream keeps a server's Infer calls off the loop
            embedded.insert(1, ("stream", ()))
        for name, serve_args in embedded:
            servers.append(spawn_server(*extra, *serve_args, workdir=workdir))
            wait_serving(servers[-1].address)
            targets.append((_StreamTarget if name == "stream" else _Target)(name, servers[-1].address))
        if not args.no_ray:
            ray_port = _free_port()
            ray_srv = spawn_server(*extra, "--engine", "ray", "--replicas", "1", "--ray-num-cpus", "2",
                                   "--replica-cpus", "0.5", "--max-wait-ms", "0", port=ray_port, workdir=workdir,
                                   timeout_s=600)
            servers.append(ray_srv)
            targets.append(_Target("ray", ray_srv.address))
        per_round = measure(f"127.0.0.1:{echo_port}", targets, payload, args.rounds, args.calls)
        own_ms = {t.name: t.own_ms_p50() for t in targets}
    finally:
        for t in targets:
            t.close()
        for s in reversed(servers):
            s.terminate(120)
        echo_proc.send_signal(signal.SIGTERM)
        echo_proc.wait(30)
    spread = {k: summary(v) for k, v in per_round.items()}
    result = {
        "host_load_1min": os.getloadavg()[0],
        "policy": args.policy, "request_bytes": len(convert.request(payload).SerializeToString()),
        # the frame's action: device and server MACs, the device's share of the unsplit model's
        "action_compute": ComputeModel(ckpt).cost(Action.parse(args.policy)).to_dict(),
        "rounds": args.rounds, "calls_per_round": args.calls, "target_ms": TARGET_MS,
        "summary_ms": spread,
        # median over the run's frames of the server's own stage, and what that leaves of the overhead's median
        "breakdown_ms": {t.name: {"server_own_p50": own_ms[t.name],
                                  "transport_beyond_echo": spread[f"{t.name}_overhead_ms"]["median"] - own_ms[t.name]}
                         for t in targets},
        "per_round_medians_ms": per_round,
        "target_met": {t.name: spread[f"{t.name}_overhead_ms"]["median"] <= TARGET_MS for t in targets},
    }
    print(f"bare echo round trip: median {spread['echo_ms']['median']:.3f} ms")
    for t in targets:
        s, rtt, comp = spread[f"{t.name}_overhead_ms"], spread[f"{t.name}_rtt_ms"], spread[f"{t.name}_compute_ms"]
        print(f"{t.name:>6}: Infer round trip {rtt['median']:.3f} ms, server compute {comp['median']:.3f} ms -> "
              f"overhead median {s['median']:.3f} ms over {s['n']} rounds (min {s['min']:.3f}, max {s['max']:.3f}, "
              f"IQR {s['iqr'][0]:.3f}-{s['iqr'][1]:.3f}); target <= {TARGET_MS} ms "
              f"{'met' if s['median'] <= TARGET_MS else 'NOT met'}; of it the server's own time (payload checks, "
              f"top-k, hand-offs, response) {own_ms[t.name]:.3f} ms, the rest beyond the echo "
              f"{s['median'] - own_ms[t.name]:.3f} ms")
    for t in targets[1:]:
        d = spread[f"{t.name}_minus_{targets[0].name}_ms"]
        print(f"{t.name} minus {targets[0].name} (compute removed): median {d['median']:.3f} ms "
              f"(min {d['min']:.3f}, max {d['max']:.3f})")
    write_json("grpc_overhead", result, args.json)


if __name__ == "__main__":
    main()
