"""Where splitnet's overhead over a bare gRPC echo goes: a ladder of methods, each doing a bit more of ``Infer``.

``benchmarks.grpc_overhead`` gives one figure: the ``Infer`` round trip minus the server's decode + tail minus
a bare ``grpcio`` echo. This splits it. Two processes beside this one: the bare echo server
(``benchmarks.echo_server``) and the real ``splitnet serve`` with reference methods on the same grpc.aio server
(``benchmarks.ladder_server``). Each call's figure is its round trip minus the compute the server reports
(decode + tail ms); the rungs, in order:

========== ==========================================================================================
echo       the bare grpcio echo, another process (the reference of ``grpc_overhead``)
Bytes      the request bytes back, from the splitnet server's process and event loop
Proto      the request parsed, a constant response (and the client's conversions, as for ``Infer``)
Tail       the tail run first (on a batch decoded once beforehand): the model's compute cools the caches
DecodeTail the payload checked, decoded and run through the tail (``ServerSide``)
Answer     top-k and the real response (``convert.response``)
Infer      the real method: deadline, the inline path's checks, stats
========== ==========================================================================================

Each step (a rung minus the one before it, paired call by call) is what that work adds. The calls of one
iteration go in a shuffled order (a call right after a compute-heavy one meets colder caches), per round the
median of each series, then the median and spread over rounds. Beside it, the same splitnet code per frame
(parse, payload checks, top-k, the response, stats) timed in this process in a hot loop, with no compute between.

The rungs share code, so a call is warmer here than when ``Infer`` alone alternates with the echo: "Infer minus
echo" of this mix is not ``grpc_overhead``'s figure (it comes out lower); the steps are what this is for.

    python -m benchmarks.overhead_ladder [--rounds 15] [--calls 200] [--json reports/overhead_ladder.json]
"""

from __future__ import annotations

import random
import signal
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import torch

from benchmarks.common import ROOT, benchmark_arguments, setup, spawn_port_file_server, summary, time_ms, write_json
from benchmarks.echo_server import ECHO_METHOD
from benchmarks.ladder_server import LADDER_SERVICE, RUNGS
from edge_server.process import wait_serving
from edge_server.stats import ServerStats
from splitnet.checkpoint import DEMO_DATA
from splitnet.compute import ComputeModel
from splitnet.data import load_npz
from splitnet.pipeline import Action, DeviceSide, ServerSide, Timing
from splitnet.rpc import convert
from splitnet.rpc.v1 import splitnet_pb2 as pb
from splitnet.rpc.v1 import splitnet_pb2_grpc as pb_grpc

SERIES = ("echo", *RUNGS, "Infer")
WHAT = {
    "Bytes": "grpc.aio in the splitnet server's process against the bare grpcio server",
    "Proto": "protobuf on both ends and the client's conversions",
    "Tail": "the model's tail run first: what follows it meets colder caches; no splitnet code added",
    "DecodeTail": "payload checks and decoding beyond the decode's own ms",
    "Answer": "top-k and building the response",
    "Infer": "the servicer: deadline, the inline path's checks, stats",
}


def _timed(call: Callable[[], pb.InferResponse | bytes]) -> tuple[float, float]:
    """(round trip ms, compute ms the server reports) of one call."""
    t0 = time.perf_counter()
    resp = call()
    if isinstance(resp, bytes):
        return (time.perf_counter() - t0) * 1e3, 0.0
    convert.prediction_from_response(resp)  # the client's conversion, as for Infer
    return (time.perf_counter() - t0) * 1e3, resp.timings.decode_ms + resp.timings.tail_ms


def _callers(echo_channel: grpc.Channel, channel: grpc.Channel, payload) -> dict[str, Callable[[], tuple]]:
    request_bytes = convert.request(payload).SerializeToString()
    echo = echo_channel.unary_unary(ECHO_METHOD)
    raw = channel.unary_unary(f"/{LADDER_SERVICE}/Bytes")
    rungs = {r: channel.unary_unary(f"/{LADDER_SERVICE}/{r}", request_serializer=pb.InferRequest.SerializeToString,
                                    response_deserializer=pb.InferResponse.FromString) for r in RUNGS[1:]}
    rungs["Infer"] = pb_grpc.SplitInferenceStub(channel).Infer

    def sending(method: Callable, request: Callable[[], object]) -> Callable[[], tuple[float, float]]:
        return lambda: _timed(lambda: method(request(), timeout=30))

    calls = {"echo": sending(echo, lambda: request_bytes), "Bytes": sending(raw, lambda: request_bytes)}
    calls.update({name: sending(method, lambda: convert.request(payload)) for name, method in rungs.items()})
    return calls


def warm_code_ms(ckpt, payload, repeats: int = 2000) -> dict:
    """splitnet's per-frame code of a unary frame without the compute, in this process, in a hot loop (ms):
    parse the request, check the payload, its batch key, top-k of logits, build and serialize the response,
    book the frame in the server's stats."""
    side, stats = ServerSide(ckpt), ServerStats()
    request_bytes = convert.request(payload).SerializeToString()
    key = side.batch_key(payload)
    is_detector = ckpt.spec.is_detector
    with torch.inference_mode():
        logits = side.run_tail(key, side.decode([payload], Timing(), key))

    def frame() -> bytes:
        t0 = time.monotonic()
        req = pb.InferRequest.FromString(request_bytes)
        side.batch_key(convert.request_payload(req))
        prediction = convert.predictions_from_output(side.model_name, logits, req.top_k, is_detector)[0]
        timing = convert.ServerTiming(0.0, 1.0, 1.0, 1)
        answer = convert.response(req.seq, prediction, timing).SerializeToString()
        stats.record_answer(t0, timing, inline=True)
        return answer

    return summary(time_ms(frame, repeats, warmup=100))


def measure(calls: dict[str, Callable[[], tuple]], rounds: int, per_round: int, seed: int = 0) -> dict:
    """Per round the median of each series (round trip minus compute, ms) and of each paired step."""
    order = list(SERIES)
    rng = random.Random(seed)
    for _ in range(30):  # warm up connections and code paths
        for name in order:
            calls[name]()
    series: dict[str, list[float]] = {k: [] for k in SERIES}
    steps: dict[str, list[float]] = {f"{b}_minus_{a}": [] for a, b in zip(SERIES, SERIES[1:])}
    compute: dict[str, list[float]] = {k: [] for k in SERIES}
    for r in range(rounds):
        rows: dict[str, list[float]] = {k: [] for k in SERIES}
        comp: dict[str, list[float]] = {k: [] for k in SERIES}
        for _ in range(per_round):
            rng.shuffle(order)
            for name in order:
                rtt, c = calls[name]()
                rows[name].append(rtt - c)
                comp[name].append(c)
        for k in SERIES:
            series[k].append(statistics.median(rows[k]))
            compute[k].append(statistics.median(comp[k]))
        for a, b in zip(SERIES, SERIES[1:]):
            steps[f"{b}_minus_{a}"].append(statistics.median([y - x for x, y in zip(rows[a], rows[b])]))
        print(f"round {r + 1}/{rounds}: " + ", ".join(f"{k} {series[k][-1]:.3f}" for k in SERIES), flush=True)
    return {"series": series, "steps": steps, "compute": compute}


def main() -> None:
    ap = benchmark_arguments(__doc__, policy="layer2/w0.5", json_path=str(ROOT / "reports" / "overhead_ladder.json"))
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--calls", type=int, default=200, help="calls per series per round")
    ap.add_argument("--seed", type=int, default=0, help="seed of the call order's shuffles")
    args = ap.parse_args()
    ckpt = setup(args)
    payload = DeviceSide(ckpt).encode(load_npz(DEMO_DATA).images[0], Action.parse(args.policy))[0]
    workdir = Path(tempfile.mkdtemp(prefix="splitnet-ladder-"))
    extra = ["--checkpoint", args.checkpoint] if args.checkpoint else []
    echo_proc, echo_port = spawn_port_file_server("benchmarks.echo_server", workdir)
    ladder_proc, ladder_port = spawn_port_file_server("benchmarks.ladder_server", workdir, *extra)
    options = {"compression": grpc.Compression.NoCompression}
    try:
        wait_serving(f"127.0.0.1:{ladder_port}")
        with grpc.insecure_channel(f"127.0.0.1:{echo_port}", **options) as echo_channel, \
                grpc.insecure_channel(f"127.0.0.1:{ladder_port}", **options) as channel:
            measured = measure(_callers(echo_channel, channel, payload), args.rounds, args.calls, args.seed)
    finally:
        for proc in (ladder_proc, echo_proc):
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    warm = warm_code_ms(ckpt, payload)
    series = {k: summary(v) for k, v in measured["series"].items()}
    steps = {k: summary(v) for k, v in measured["steps"].items()}
    result = {
        "policy": args.policy, "rounds": args.rounds, "calls_per_round": args.calls, "seed": args.seed,
        # the frame's action: device and server MACs, the device's share of the unsplit model's
        "action_compute": ComputeModel(ckpt).cost(Action.parse(args.policy)).to_dict(),
        "series_ms": series,  # round trip minus the server's reported compute, per series
        "steps_ms": steps,  # each rung minus the one before it, paired call by call
        "what_each_step_adds": {f"{b}_minus_{a}": WHAT[b] for a, b in zip(SERIES, SERIES[1:])},
        "compute_ms": {k: summary(v) for k, v in measured["compute"].items()},
        "warm_code_ms": warm,  # splitnet's per-frame code in a hot loop, no compute between (see warm_code_ms)
        "infer_minus_echo_ms": series["Infer"]["median"] - series["echo"]["median"],  # in this mix; see above
        "per_round_ms": measured,
    }
    print(f"{'series':>10}  {'ms':>6}  step over the one before")
    for a, b in zip(("",) + SERIES, SERIES):
        step = steps.get(f"{b}_minus_{a}")
        print(f"{b:>10}  {series[b]['median']:6.3f}  " + (f"{step['median']:+.3f}  {WHAT[b]}" if step else ""))
    print(f"Infer minus echo in this mix: {result['infer_minus_echo_ms']:.3f} ms (warmer than grpc_overhead's "
          "alternation of Infer and echo alone; not its figure)")
    print(f"the same splitnet code in a hot loop, no compute between: {warm['median']:.4f} ms per frame")
    write_json("overhead_ladder", result, args.json)


if __name__ == "__main__":
    main()
