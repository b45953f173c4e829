"""The edge server under abuse and the client under misconfiguration (issue 13).

``splitnet serve`` runs as a separate process; clients talk to it over loopback sockets.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest
import torch
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from device_client import InsecureTokenError, ServerConfigError, SplitClient
from device_client.client import _Backoff
from device_client.connection import target_for
from edge_server.server import EVENT_LOOPS, ServerOptions, check_options, new_event_loop
from splitnet.checkpoint import SplitCheckpoint, SplitPoint
from splitnet.errors import SplitnetError
from splitnet.models import create_model
from splitnet.pipeline import Action, DeviceSide
from splitnet.rpc import convert
from splitnet.rpc.v1 import splitnet_pb2 as pb
from splitnet.rpc.v1 import splitnet_pb2_grpc as pb_grpc
from splitnet_cli.main import build_parser
from tests.conftest import make_bottleneck
from tests.servers import ROOT, start_server

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _frames(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def _request(ckpt: SplitCheckpoint, seq: int = 0, name: str = "layer1/w0.5") -> pb.InferRequest:
    payload = DeviceSide(ckpt).encode(_frames(1, seq), Action.parse(name))[0]
    req = convert.request(payload)
    req.seq = seq
    return req


def _wait_until(check: Callable[[], bool], timeout_s: float = 1200.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"{what} not reached within {timeout_s:.0f} s")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return _free_port()


@pytest.fixture(scope="module")
def server(tiny_checkpoint: SplitCheckpoint, tmp_path_factory: pytest.TempPathFactory, metrics_port: int):
    """Batches of one frame (a busy server is easy to make); idle streams are never timed out here."""
    proc = start_server(tmp_path_factory.mktemp("srv"), tiny_checkpoint.path, "--max-batch", "1",
                        "--stream-idle-timeout-s", "0", "--metrics-port", str(metrics_port))
    yield proc
    proc.kill()


@pytest.fixture(scope="module")
def strict_server(tiny_checkpoint: SplitCheckpoint, tmp_path_factory: pytest.TempPathFactory):
    """Ends streams idle for 1 s; takes no message over 100 bytes (every frame: RESOURCE_EXHAUSTED)."""
    proc = start_server(tmp_path_factory.mktemp("strict"), tiny_checkpoint.path, "--stream-idle-timeout-s", "1",
                        "--max-message-bytes", "100")
    yield proc
    proc.kill()


def _stats(address: str) -> pb.GetStatsResponse:
    with grpc.insecure_channel(address) as channel:
        return pb_grpc.SplitInferenceStub(channel).GetStats(pb.GetStatsRequest(), timeout=10)


class IdleStreams:
    """InferStream calls that never send a frame, from an asyncio client on a thread of its own.

    Each batch of ``per_connection`` calls goes over a connection of its own.
    """

    def __init__(self, address: str) -> None:
        self.address = address
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.channels: list[grpc.aio.Channel] = []
        self.calls: list = []

    def open(self, connections: int, per_connection: int) -> None:
        async def go() -> None:
            for _ in range(connections):
                channel = grpc.aio.insecure_channel(self.address, options=[("grpc.use_local_subchannel_pool", 1)])
                self.channels.append(channel)
                stub = pb_grpc.SplitInferenceStub(channel)
                self.calls += [stub.InferStream() for _ in range(per_connection)]

        asyncio.run_coroutine_threadsafe(go(), self.loop).result(60)

    def close(self) -> None:
        async def go() -> None:
            for call in self.calls:
                call.cancel()
            for channel in self.channels:
                await channel.close()

        asyncio.run_coroutine_threadsafe(go(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_a_thousand_idle_streams_leave_health_and_model_info_answering(server) -> None:
    idle = IdleStreams(server.address)
    try:
        # One client, 1,000 streams that send nothing: ten connections with the 100 streams each
        # that the server allows per connection (its default).
        idle.open(connections=10, per_connection=100)
        _wait_until(lambda: _stats(server.address).counters["streams_open"] >= 1000, what="1,000 open streams")
        # Another client: health and GetModelInfo answer within their own 1 s deadline.
        with grpc.insecure_channel(server.address) as other:
            health = health_pb2_grpc.HealthStub(other).Check(health_pb2.HealthCheckRequest(), timeout=1)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            info = pb_grpc.SplitInferenceStub(other).GetModelInfo(pb.GetModelInfoRequest(), timeout=1)
            assert info.models[0].name == "resnet20_cifar"
        # A connection cannot hold more streams than the limit: 150 calls on one more
        # connection open 100 at the server, the other 50 wait in the client.
        idle.open(connections=1, per_connection=150)
        _wait_until(lambda: _stats(server.address).counters["streams_open"] >= 1100, what="1,100 open streams")
        for _ in range(10):
            assert _stats(server.address).counters["streams_open"] == 1100
            time.sleep(0.1)
    finally:
        idle.close()
    _wait_until(lambda: _stats(server.address).counters["streams_open"] == 0, what="streams closed")


def test_an_idle_stream_is_ended_with_a_clear_status(strict_server) -> None:
    with grpc.insecure_channel(strict_server.address) as channel:
        stub = pb_grpc.SplitInferenceStub(channel)
        release = threading.Event()

        def nothing():  # sends no frame until released, then half-closes
            release.wait(120)
            yield from ()

        call = stub.InferStream(nothing(), timeout=120)
        try:
            with pytest.raises(grpc.RpcError) as err:
                list(call)
        finally:
            release.set()
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "idle" in err.value.details() and "1 s" in err.value.details()
    assert _stats(strict_server.address).counters["streams_idle_closed"] >= 1


def test_deadline_less_calls_on_a_busy_server_never_fail_unknown_or_internal(server, tiny_checkpoint) -> None:
    reqs = [_request(tiny_checkpoint, seq) for seq in range(8)]
    codes: Counter = Counter()
    lock = threading.Lock()

    def note(code: grpc.StatusCode) -> None:
        with lock:
            codes[code] += 1

    def unary(stub: pb_grpc.SplitInferenceStub) -> None:
        for req in reqs * 3:
            try:
                stub.Infer(req)  # no deadline
                note(grpc.StatusCode.OK)
            except grpc.RpcError as exc:
                note(exc.code())

    def streaming(stub: pb_grpc.SplitInferenceStub) -> None:
        try:
            for resp in stub.InferStream(iter(reqs * 3)):  # no deadline
                note(grpc.StatusCode.OK if resp.status_code == 0 else
                     next(c for c in grpc.StatusCode if c.value[0] == resp.status_code))
        except grpc.RpcError as exc:
            note(exc.code())

    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.SplitInferenceStub(channel)
        threads = [threading.Thread(target=work, args=(stub,)) for work in (unary, streaming) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        assert not any(t.is_alive() for t in threads)
    assert codes[grpc.StatusCode.OK] > 0
    assert grpc.StatusCode.UNKNOWN not in codes and grpc.StatusCode.INTERNAL not in codes, codes
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED}


def test_prometheus_endpoint(server, tiny_checkpoint, metrics_port) -> None:
    with SplitClient(server.address, checkpoint=tiny_checkpoint, policy="layer2/w0.5") as client:
        assert all(r.offloaded for r in client.stream(_frames(5)))
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30) as resp:
        text = resp.read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    events = {s.labels["event"]: s.value for s in families["splitnet_events"].samples if s.name.endswith("_total")}
    stats = _stats(server.address).counters
    assert events["frames_ok"] >= 5 and events["streams"] >= 1
    assert events["frames_ok"] <= stats["frames_ok"]  # the same counters as GetStats (read a moment earlier)
    stages = {s.labels["stage"] for s in families["splitnet_stage_seconds"].samples}
    assert {"queue", "decode", "tail", "own", "total"} <= stages
    count = {s.labels["stage"]: s.value for s in families["splitnet_stage_seconds"].samples
             if s.name == "splitnet_stage_seconds_count"}
    assert count["tail"] >= 5
    assert count["own"] == count["total"] >= 5  # every answered frame has both
    recent = {st.stage: st for st in _stats(server.address).stages}
    assert 0 < recent["own"].p50_ms < recent["total"].p50_ms
    assert "splitnet_queue_depth" in families and "splitnet_streams_open" in families
    assert {s.labels["quantile"] for s in families["splitnet_stage_recent_ms"].samples} == {"50", "95", "99"}


def test_resource_exhausted_makes_the_client_back_off_and_no_frame_is_lost(strict_server, tiny_checkpoint) -> None:
    # Every request is over the server's 100-byte message limit: RESOURCE_EXHAUSTED, every time.
    frames = _frames(24)
    local = DeviceSide(tiny_checkpoint).run_local(frames).argmax(1).tolist()
    for mode in ("unary", "stream"):
        with SplitClient(strict_server.address, checkpoint=tiny_checkpoint, policy="layer2/w1",
                         backoff_ms=(30_000, 60_000), link_probe_s=0) as client:
            client.wait_until_ready(60)
            results = [client.infer(f) for f in frames] if mode == "unary" else list(client.stream(frames))
        assert len(results) == len(frames) and not any(r.offloaded for r in results)
        assert [r.top1 for r in results] == local  # every frame answered, by the device
        reasons = Counter(r.fallback for r in results)
        # The first frame(s) hit the server; then the client leaves it alone (at least 15 s of backoff)
        # and runs the rest locally without sending them.
        assert reasons["rpc:RESOURCE_EXHAUSTED"] >= 1 and reasons["server_busy"] >= 1, reasons
        assert set(reasons) == {"rpc:RESOURCE_EXHAUSTED", "server_busy"}, reasons
        assert reasons["rpc:RESOURCE_EXHAUSTED"] <= client.max_in_flight, reasons


def test_backoff_waits_are_jittered_and_grow() -> None:
    import random

    backoff = _Backoff(100, 800, rng=random.Random(0))
    waits = [backoff.failure("server_busy") for _ in range(6)]
    assert backoff.reason == "server_busy" and not backoff.available()
    for wait, delay in zip(waits, (0.1, 0.2, 0.4, 0.8, 0.8, 0.8)):
        assert delay / 2 <= wait <= delay
    assert len({round(w, 6) for w in waits[3:]}) == 3  # same nominal delay, different waits
    backoff.success()
    assert backoff.available() and backoff.delay == 0.1


def _checkpoint(model: str, path: Path, seed: int) -> SplitCheckpoint:
    torch.manual_seed(seed)
    ckpt = SplitCheckpoint(model, create_model(model))
    ckpt.splits["layer1"] = SplitPoint("layer1", make_bottleneck(16, "factorized", seed))
    ckpt.save(path)
    return SplitCheckpoint.load(path)


def test_configuration_errors_raise_instead_of_running_locally(server, tmp_path) -> None:
    other_weights = _checkpoint("resnet20_cifar", tmp_path / "w.pt", seed=1)
    with SplitClient(server.address, checkpoint=other_weights, policy="layer1/w0.5") as client:
        with pytest.raises(ServerConfigError) as err:
            list(client.stream(_frames(4)))
        assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION and "\n" not in str(err.value)
        with pytest.raises(ServerConfigError):  # and every later frame, unary too
            client.infer(_frames(1)[0])
    other_model = _checkpoint("resnet32_cifar", tmp_path / "m.pt", seed=2)
    with SplitClient(server.address, checkpoint=other_model, policy="layer1/w0.5") as client:
        with pytest.raises(ServerConfigError) as err:
            client.infer(_frames(1)[0])
        assert err.value.code == grpc.StatusCode.NOT_FOUND and "resnet32_cifar" in str(err.value)


def test_token_needs_tls_unless_explicitly_allowed(tiny_checkpoint, tmp_path) -> None:
    with pytest.raises(InsecureTokenError, match="--insecure-token-over-plaintext"):
        SplitClient("127.0.0.1:9", checkpoint=tiny_checkpoint, token="t0ken", warm_up=False)
    with pytest.raises(SplitnetError, match="--insecure-token-over-plaintext"):
        check_options(ServerOptions(token="t0ken"))
    check_options(ServerOptions(token="t0ken", insecure_token_over_plaintext=True))

    srv = start_server(tmp_path, tiny_checkpoint.path, "--token", "t0ken", "--insecure-token-over-plaintext")
    try:
        data = tmp_path / "frames.npz"
        np.savez(data, x=_frames(6), y=np.arange(6) % 10)
        base = [sys.executable, "-m", "splitnet_cli.main", "--threads", "1", "client", "--server", srv.address,
                "--checkpoint", tiny_checkpoint.path, "--data", str(data), "--quiet", "--token", "t0ken"]
        refused = subprocess.run(base, capture_output=True, text=True, cwd=ROOT, timeout=600)
        assert refused.returncode == 2
        errors = [line for line in refused.stderr.splitlines() if line.startswith("splitnet: error:")]
        assert len(errors) == 1 and "--insecure-token-over-plaintext" in errors[0], refused.stderr
        allowed = subprocess.run([*base, "--insecure-token-over-plaintext", "--json", str(tmp_path / "r.json")],
                                 capture_output=True, text=True, cwd=ROOT, timeout=600)
        assert allowed.returncode == 0, allowed.stderr
        assert '"frames_answered": 6' in (tmp_path / "r.json").read_text()
        assert _stats_with_token(srv.address, "t0ken").counters["frames_ok"] > 0  # the token was accepted
    finally:
        srv.kill()


def _stats_with_token(address: str, token: str) -> pb.GetStatsResponse:
    with grpc.insecure_channel(address) as channel:
        return pb_grpc.SplitInferenceStub(channel).GetStats(pb.GetStatsRequest(), timeout=10,
                                                            metadata=(("authorization", f"Bearer {token}"),))


def test_server_targets() -> None:
    assert target_for(["edge.example:50051"]) == "dns:///edge.example:50051"
    assert target_for(["dns://10.0.0.53/edge.example:50051"]) == "dns://10.0.0.53/edge.example:50051"
    assert target_for(["10.0.0.1:1", "10.0.0.2:1"]) == "ipv4:10.0.0.1:1,10.0.0.2:1"
    assert target_for(["[::1]:1", "[::2]:1"]) == "ipv6:[::1]:1,[::2]:1"
    with pytest.raises(SplitnetError, match="one DNS name"):
        target_for(["edge-1:50051", "edge-2:50051"])


def test_stage_histograms_fold_in_bulk_with_prometheus_bucket_rules() -> None:
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from edge_server import stats as stats_module

    stats = stats_module.ServerStats(window=10)
    stats.record(("frames_ok", "batches"), decode=0.1, tail=0.3)  # 0.1 ms lies on the first bound (0.0001 s)
    stats.observe("tail", 7000.0)  # 7 s: beyond the last bound, only in +Inf
    for _ in range(stats_module._FOLD_EVERY + 10):  # more than one fold's worth, folded while recording
        stats.observe("queue", 2.0)
    assert stats.counters() == {"frames_ok": 1, "batches": 1}
    hist = stats.histograms()
    bounds = stats_module.STAGE_BUCKETS_S
    decode, decode_sum = hist["decode"]
    assert decode == [1] * (len(bounds) + 1) and decode_sum == pytest.approx(0.0001)
    tail, tail_sum = hist["tail"]
    assert tail[bounds.index(0.00025)] == 0 and tail[bounds.index(0.0005)] == 1 and tail[-2] == 1 and tail[-1] == 2
    assert tail_sum == pytest.approx(7.0003)
    queue, _ = hist["queue"]
    assert queue[bounds.index(0.001)] == 0 and queue[bounds.index(0.0025)] == queue[-1] == stats_module._FOLD_EVERY + 10
    assert stats.stages()["queue"]["count"] == stats_module._FOLD_EVERY + 10  # the window keeps 10, the count all
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(stats.registry).decode())}
    samples = {(s.name, s.labels["stage"], s.labels.get("le")): s.value
               for s in families["splitnet_stage_seconds"].samples}
    assert samples[("splitnet_stage_seconds_bucket", "tail", "+Inf")] == 2
    assert samples[("splitnet_stage_seconds_count", "tail", None)] == 2
    assert samples[("splitnet_stage_seconds_bucket", "decode", "0.0001")] == 1


def test_a_frames_own_server_time_is_what_queue_decode_and_tail_leave_of_its_total() -> None:
    from edge_server import stats as stats_module

    stats = stats_module.ServerStats()
    t0 = time.monotonic()
    time.sleep(0.02)
    stats.record_answer(t0, convert.ServerTiming(queue_ms=3.0, decode_ms=4.0, tail_ms=5.0))
    elapsed_ms = (time.monotonic() - t0) * 1e3
    stages = stats.stages()
    total, own = stages["total"]["mean_ms"], stages["own"]["mean_ms"]
    assert 20.0 <= total <= elapsed_ms
    assert own == pytest.approx(total - 12.0)
    stats.record_answer(time.monotonic(), convert.ServerTiming(queue_ms=50.0))  # parts beyond the total: own is 0
    assert stats.stages()["own"]["count"] == 2 and min(stats._samples["own"]) == 0.0


def test_an_inline_answer_is_booked_whole_at_the_time_it_was_ready() -> None:
    """The servicer books an inline frame after its response is sent: one call records the batch counters, the
    queue/decode/tail timings and the total/own up to ``answered``, not up to the booking."""
    from edge_server import stats as stats_module

    stats = stats_module.ServerStats()
    t0 = time.monotonic()
    answered = t0 + 0.010
    stats.record_answer(t0, convert.ServerTiming(decode_ms=2.0, tail_ms=5.0), answered, inline=True)
    stages, counters = stats.stages(), stats.counters()
    assert {k: counters[k] for k in stats_module.INLINE_EVENTS} == dict.fromkeys(stats_module.INLINE_EVENTS, 1)
    assert stages["total"]["mean_ms"] == pytest.approx(10.0)
    assert stages["own"]["mean_ms"] == pytest.approx(3.0)
    assert (stages["queue"]["mean_ms"], stages["decode"]["mean_ms"], stages["tail"]["mean_ms"]) == (0.0, 2.0, 5.0)


def test_get_stats_message_carries_counters_uptime_and_every_stage() -> None:
    from edge_server import stats as stats_module

    stats = stats_module.ServerStats()
    for ms in (1.0, 2.0, 3.0, 4.0):
        stats.record(("frames_ok",), decode=ms, tail=2 * ms)
    uptime_s = stats.uptime_s
    msg = convert.stats_response({**stats.counters(), "replica_pid": 4242}, uptime_s, stats.stages())
    back = pb.GetStatsResponse.FromString(msg.SerializeToString())
    assert dict(back.counters) == {"frames_ok": 4, "replica_pid": 4242}
    assert back.uptime_s == pytest.approx(uptime_s)
    by_stage = {s.stage: s for s in back.stages}
    assert set(by_stage) == {"decode", "tail"}
    assert by_stage["decode"].count == 4 and by_stage["decode"].p50_ms == pytest.approx(2.5)
    assert by_stage["tail"].mean_ms == pytest.approx(5.0) and by_stage["tail"].p99_ms == pytest.approx(7.94)


def test_event_loop_choice() -> None:
    import uvloop  # a dependency on Linux and macOS (CI runs on Linux)

    for kind, cls in (("auto", uvloop.Loop), ("uvloop", uvloop.Loop), ("asyncio", asyncio.BaseEventLoop)):
        loop = new_event_loop(kind)
        try:
            assert isinstance(loop, cls), kind
            assert kind != "asyncio" or not isinstance(loop, uvloop.Loop)
        finally:
            loop.close()
    with pytest.raises(SplitnetError, match="unknown event loop 'trio'"):
        new_event_loop("trio")
    with pytest.raises(SplitnetError, match="unknown event loop 'trio'"):
        check_options(ServerOptions(event_loop="trio"))
    # the CLI names the loops itself (it parses before importing the server): it takes each of the server's
    for kind in EVENT_LOOPS:
        assert build_parser().parse_args(["serve", "--event-loop", kind]).event_loop == kind


def test_server_on_either_event_loop_gives_the_same_answers(tiny_checkpoint, tmp_path) -> None:
    requests = [_request(tiny_checkpoint, seq) for seq in range(4)]
    answers = {}
    for kind in ("asyncio", "uvloop"):
        srv = start_server(tmp_path / kind, tiny_checkpoint.path, "--event-loop", kind)
        try:
            with grpc.insecure_channel(srv.address) as channel:
                stub = pb_grpc.SplitInferenceStub(channel)
                replies = [stub.Infer(r, timeout=60) for r in requests]
                with_stream = list(stub.InferStream(iter(requests), timeout=60))
            assert all(r.status_code == 0 for r in replies + with_stream)
            answers[kind] = [list(r.classification.class_ids) for r in replies + with_stream]
        finally:
            assert srv.terminate() == 0
    assert answers["asyncio"] == answers["uvloop"]
