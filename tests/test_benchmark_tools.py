"""The figures the benchmarks derive from run records (no runs here: records written by hand)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.live_agreement import observation_summary, server_speed
from policies.network.channel_models import Channel, ChannelConfig
from policies.network.traces import Trace
from tests.test_policies import toy_profile


def _obs(frame: int, mbps: float) -> dict:
    return {"frame": frame, "throughput_mbps": mbps, "rtt_ms": 40.0, "last_latency_ms": 80.0, "last_fallback": False}


def test_observation_summary_compares_the_estimate_with_the_link_at_each_decision(tmp_path: Path) -> None:
    # 1 Mbit/s for 10 s, then 0.25 Mbit/s (x0.5 scale): an estimate of twice the rate, placed 10 frames a second
    # from trace time 5 s, reads 2.0 with correlation 1; the first decision had no estimate and is left out
    trace = Trace("step", np.arange(0.0, 30.0), np.where(np.arange(30) < 10, 2.0, 0.5))
    link = Channel(trace, ChannelConfig(scale=0.5))
    rows = [_obs(0, 0.0)] + [_obs(n, 2 * link.rate_mbps(5.0 + n / 10)) for n in range(1, 100)]
    log = tmp_path / "obs.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = observation_summary(log, link, first_frame_s=5.0, fps=10.0)
    assert out["no_throughput_estimate"] == pytest.approx(0.01)
    assert out["estimate_over_link"] == pytest.approx(2.0)
    assert out["estimate_link_corr"] == pytest.approx(1.0)
    assert "estimate_over_link" not in observation_summary(log)


def test_server_speed_is_the_live_server_time_over_the_profiled_time_of_the_same_frames() -> None:
    profile = toy_profile()  # layer1/w0.5: 1.0 ms measured on the server, layer2/w0.5: 0.5 ms

    def frame(action: str, ran_on: str, queue: float, decode: float, tail: float) -> dict:
        return {"action": action, "ran_on": ran_on, "stages_ms": {"queue": queue, "decode": decode, "tail": tail}}

    reports = [{"frames_detail": [frame("layer1/w0.5", "server", 0.5, 0.5, 2.0), frame("local", "device", 0, 0, 0)]},
               {"frames_detail": [frame("layer2/w0.5", "server", 0.0, 0.5, 1.0)]}]
    assert server_speed(reports, profile) == pytest.approx((3.0 + 1.5) / (1.0 + 0.5))
    assert server_speed([{"frames_detail": [frame("local", "device", 0, 0, 0)]}], profile) is None


def test_the_overhead_ladders_methods_do_what_their_rungs_say(tiny_checkpoint, tmp_path: Path) -> None:
    """benchmarks.ladder_server: the real server with the ladder's methods beside Infer (build_server's
    extra handlers); each rung does its part, and ``Answer`` gives Infer's own answer."""
    import grpc

    from benchmarks.common import spawn_port_file_server
    from benchmarks.ladder_server import LADDER_SERVICE
    from splitnet.pipeline import Action, DeviceSide
    from splitnet.rpc import convert
    from splitnet.rpc.v1 import splitnet_pb2 as pb
    from splitnet.rpc.v1 import splitnet_pb2_grpc as pb_grpc

    frame = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    payload = DeviceSide(tiny_checkpoint).encode(frame, Action.parse("layer2/w1"))[0]
    request = convert.request(payload)
    proc, port = spawn_port_file_server("benchmarks.ladder_server", tmp_path, "--checkpoint",
                                        str(tiny_checkpoint.path), timeout_s=300)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
            rung = {name: channel.unary_unary(f"/{LADDER_SERVICE}/{name}",
                                              request_serializer=pb.InferRequest.SerializeToString,
                                              response_deserializer=pb.InferResponse.FromString)
                    for name in ("Proto", "Tail", "DecodeTail", "Answer")}
            raw = channel.unary_unary(f"/{LADDER_SERVICE}/Bytes")
            assert raw(request.SerializeToString(), timeout=60) == request.SerializeToString()
            proto, tail, decode_tail = (rung[n](request, timeout=60) for n in ("Proto", "Tail", "DecodeTail"))
            assert proto.timings.tail_ms == 0 and len(proto.classification.class_ids) == 5
            assert tail.timings.tail_ms > 0 and tail.timings.decode_ms == 0
            assert decode_tail.timings.tail_ms > 0 and decode_tail.timings.decode_ms > 0
            answer = rung["Answer"](request, timeout=60)
            infer = pb_grpc.SplitInferenceStub(channel).Infer(request, timeout=60)
            assert list(answer.classification.class_ids) == list(infer.classification.class_ids)
            assert list(answer.classification.scores) == pytest.approx(list(infer.classification.scores))
        # grpc_overhead's timed calls, unary and a frame at a time on one open stream: each times a real answer
        # (round trip beyond the server's compute) and the stream answers frame after frame
        from benchmarks.grpc_overhead import _StreamTarget, _Target

        for target in (_Target("direct", f"127.0.0.1:{port}"), _StreamTarget("stream", f"127.0.0.1:{port}")):
            try:
                for _ in range(3):
                    rtt_ms, compute_ms = target.call(payload)
                    assert rtt_ms > compute_ms > 0, (target.name, rtt_ms, compute_ms)
            finally:
                target.close()
    finally:
        proc.terminate()
        assert proc.wait(60) == 0
