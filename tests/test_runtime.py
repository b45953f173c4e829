"""End to end: ``splitnet serve`` as a separate process, clients over real sockets on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from device_client import ServerConfigError, SplitClient, TlsOptions
from device_client.connection import open_channel
from device_client.stream import StreamSession
from splitnet.checkpoint import SplitCheckpoint
from splitnet.pipeline import Action, DeviceSide, ServerSide
from splitnet.rpc import convert
from splitnet.rpc.v1 import splitnet_pb2 as pb
from splitnet.rpc.v1 import splitnet_pb2_grpc as pb_grpc
from tests.servers import ROOT, dns_server, health_status, make_certificates, start_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tiny_checkpoint: SplitCheckpoint, tmp_path_factory: pytest.TempPathFactory):
    proc = start_server(tmp_path_factory.mktemp("srv"), tiny_checkpoint.path, "--max-wait-ms", "1")
    yield proc
    proc.kill()


@pytest.fixture(scope="module")
def stub(server) -> pb_grpc.SplitInferenceStub:
    channel = grpc.insecure_channel(server.address)
    grpc.channel_ready_future(channel).result(timeout=30)
    return pb_grpc.SplitInferenceStub(channel)


def _frames(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def test_a_lone_unary_frame_runs_inline_and_concurrent_frames_still_batch(server, stub, tiny_checkpoint) -> None:
    """An idle server answers a unary frame on its event loop (no thread hand-offs); frames from 16 clients at
    once (each sends all its frames without waiting for answers, so that they overlap at the server however
    loaded the machine is) still go through the batcher and share tail batches. Same answers either way."""
    frames = _frames(16, seed=7)
    payloads = DeviceSide(tiny_checkpoint).encode(frames, Action.parse("layer2/w0.5"))
    expected = ServerSide(tiny_checkpoint).infer(payloads).argmax(1).tolist()

    def counters() -> Counter:
        return Counter(dict(stub.GetStats(pb.GetStatsRequest(), timeout=10).counters))

    before = counters()
    lone = [stub.Infer(convert.request(p), timeout=30).classification.class_ids[0] for p in payloads]
    after_lone = counters()
    assert lone == expected
    assert after_lone["frames_inline"] - before["frames_inline"] == len(frames)
    answers: dict[int, list[int]] = {}
    start = threading.Barrier(16)

    def client(k: int) -> None:
        # a connection of its own, as a separate device has (channels of one process share one by default)
        with grpc.insecure_channel(server.address, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
            s = pb_grpc.SplitInferenceStub(channel)
            grpc.channel_ready_future(channel).result(timeout=30)
            start.wait()
            calls = [s.Infer.future(convert.request(p), timeout=60) for p in payloads]
            answers[k] = [call.result().classification.class_ids[0] for call in calls]

    threads = [threading.Thread(target=client, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    after = counters()
    assert all(answers[k] == expected for k in range(16))
    frames_ok, batches = (after[k] - after_lone[k] for k in ("frames_ok", "batches"))
    assert frames_ok == 16 * len(frames)
    assert batches < 0.8 * frames_ok, (batches, frames_ok, after["frames_inline"] - after_lone["frames_inline"])


def test_results_match_the_in_process_pipeline(server, tiny_checkpoint) -> None:
    frames = _frames(12)
    reference_side = ServerSide(tiny_checkpoint)
    device = DeviceSide(tiny_checkpoint)
    with SplitClient(server.address, checkpoint=tiny_checkpoint) as client:
        for name in ("layer1/w0.25", "layer2/w1", "layer2/int8+zstd", "webp/q75"):
            client.policy.action = name
            remote = list(client.stream(frames))
            unary = [client.infer(f) for f in frames]
            batched = list(client.stream(frames, device_batch=5))  # groups of 5, 5 and 2 frames
            logits = reference_side.infer(device.encode(frames, Action.parse(name)))
            expected = convert.predictions_from_logits(logits)
            assert len(remote) == len(unary) == len(batched) == len(frames)
            assert [b.seq for b in batched] == sorted(b.seq for b in batched)
            for r, u, b, e in zip(remote, unary, batched, expected):
                assert r.offloaded and u.offloaded and b.offloaded and r.action == b.action == name
                assert r.class_ids == e.class_ids == u.class_ids == b.class_ids
                assert np.allclose(r.scores, e.scores, atol=1e-6) and np.allclose(b.scores, e.scores, atol=1e-5)


def test_model_info_health_reflection_and_stats(server, stub) -> None:
    info = stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10)
    model = info.models[0]
    assert model.name == "resnet20_cifar" and len(model.weights_sha256) == 64
    assert {p.node for p in model.split_points} == {"layer1", "layer2"}
    assert list(model.split_points[0].widths) == [0.25, 0.5, 0.75, 1.0]
    assert "int8+zstd" in model.feature_codecs and "webp" in model.image_codecs
    channel = grpc.insecure_channel(server.address)
    assert health_status(channel) == 1 and health_status(channel, "splitnet.rpc.v1.SplitInference") == 1
    refl = reflection_pb2_grpc.ServerReflectionStub(channel)
    reply = next(refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    services = {s.name for s in reply.list_services_response.service}
    assert {"splitnet.rpc.v1.SplitInference", "grpc.health.v1.Health"} <= services
    stats = stub.GetStats(pb.GetStatsRequest(), timeout=10)
    assert stats.uptime_s > 0 and "queue_depth" in stats.counters


def _request(tiny_checkpoint: SplitCheckpoint, name: str = "layer1/w0.5", **change) -> pb.InferRequest:
    payload = DeviceSide(tiny_checkpoint).encode(_frames(1), Action.parse(name))[0]
    req = convert.request(payload)
    for key, value in change.items():
        if key == "shape":
            del req.payload.shape[:]
            req.payload.shape.extend(value)
        else:
            setattr(req.payload, key, value)
    return req


@pytest.mark.parametrize(("change", "code"), [
    (dict(data=b"\x00\x01"), grpc.StatusCode.INVALID_ARGUMENT),
    (dict(shape=[16, 32, 31]), grpc.StatusCode.INVALID_ARGUMENT),
    (dict(shape=[]), grpc.StatusCode.INVALID_ARGUMENT),
    (dict(codec="h265"), grpc.StatusCode.INVALID_ARGUMENT),
    (dict(width=0.3), grpc.StatusCode.INVALID_ARGUMENT),
    (dict(dtype="object"), grpc.StatusCode.INVALID_ARGUMENT),
    (dict(model="resnet9000"), grpc.StatusCode.NOT_FOUND),
    (dict(split="layer3"), grpc.StatusCode.NOT_FOUND),
    (dict(weights_sha256="0" * 64), grpc.StatusCode.FAILED_PRECONDITION),
])
def test_bad_input_gets_the_right_status_and_the_server_keeps_serving(stub, tiny_checkpoint, change, code) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stub.Infer(_request(tiny_checkpoint, **change), timeout=10)
    assert err.value.code() == code, err.value.details()
    assert err.value.details()
    assert stub.Infer(_request(tiny_checkpoint), timeout=10).classification.class_ids  # still serving


def test_empty_request_and_oversized_message(stub) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stub.Infer(pb.InferRequest(seq=1), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    huge = pb.InferRequest(payload=pb.TensorPayload(data=b"x" * (5 << 20)))
    with pytest.raises(grpc.RpcError) as err:
        stub.Infer(huge, timeout=10)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # over the explicit message size limit


def test_bad_frames_in_a_stream_get_statuses_and_the_stream_goes_on(stub, tiny_checkpoint) -> None:
    good = _request(tiny_checkpoint)
    bad = _request(tiny_checkpoint, data=b"\x00\x01")
    unknown = _request(tiny_checkpoint, split="layer3")
    reqs = []
    for i, r in enumerate([good, bad, good, unknown, good]):
        r = pb.InferRequest.FromString(r.SerializeToString())
        r.seq = i
        reqs.append(r)
    responses = list(stub.InferStream(iter(reqs), timeout=30))
    assert [r.seq for r in responses] == [0, 1, 2, 3, 4]
    assert [r.status_code for r in responses] == [0, grpc.StatusCode.INVALID_ARGUMENT.value[0], 0,
                                                  grpc.StatusCode.NOT_FOUND.value[0], 0]
    assert responses[1].status_message and responses[4].classification.class_ids


def test_stream_session_drops_late_answers_and_counts_bytes_in_flight(stub, tiny_checkpoint) -> None:
    session = StreamSession(stub)
    try:
        reqs = []
        for seq in range(3):
            r = _request(tiny_checkpoint)
            r.seq = seq
            reqs.append(r)
        session.send(reqs[0], 100)
        session.discard(0)  # given up before its answer came: the answer must not pile up
        session.send(reqs[1], 50)
        assert session.inflight_bytes in (0, 50, 100, 150)
        session.send(reqs[2], 7)
        assert session.wait(1, 30).seq == 1 and session.wait(2, 30).seq == 2
        # answers come in order, so the late one (seq 0) arrived first and was dropped on arrival
        assert session.inflight_bytes == 0 and session._responses == {} and session._discarded == {}
    finally:
        session.close()


def test_deadline_is_honoured(server, tiny_checkpoint) -> None:
    stub = pb_grpc.SplitInferenceStub(grpc.insecure_channel(server.address))
    req = _request(tiny_checkpoint)
    req.budget_ms = 1e-4  # expires before it can run
    with pytest.raises(grpc.RpcError) as err:
        stub.Infer(req, timeout=10)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_client_keeps_every_frame_when_no_server_listens(tiny_checkpoint) -> None:
    with SplitClient("127.0.0.1:9", checkpoint=tiny_checkpoint, rpc_timeout_ms=500) as client:
        results = list(client.stream(_frames(20)))
        grouped = list(client.stream(_frames(20), device_batch=4))
    assert [r.top1 for r in grouped] == [r.top1 for r in results] and not any(r.offloaded for r in grouped)
    assert len(results) == 20 and not any(r.offloaded for r in results)
    assert {r.fallback for r in results} <= {"rpc:UNAVAILABLE", "server_down"}
    local = DeviceSide(tiny_checkpoint).run_local(_frames(20)).argmax(1).tolist()
    assert [r.top1 for r in results] == local


def test_kill_mid_stream_then_restart(tiny_checkpoint, tmp_path: Path) -> None:
    srv = start_server(tmp_path, tiny_checkpoint.path)
    port = srv.port
    frames = _frames(500, seed=3)
    results = []
    restarted: list = []
    with SplitClient(srv.address, checkpoint=tiny_checkpoint, backoff_ms=(50, 400), rpc_timeout_ms=3000) as client:
        client.wait_until_ready(30)
        for i, r in enumerate(client.stream(frames)):
            results.append(r)
            if i == 150:
                srv.kill()
        assert len(results) == 500  # every frame has a result
        assert sum(r.offloaded for r in results[:140]) == 140
        assert sum(not r.offloaded for r in results[150:]) > 0
        restarted.append(start_server(tmp_path, tiny_checkpoint.path, port=port))
        deadline = time.monotonic() + 60
        again = []
        while time.monotonic() < deadline:
            again = list(client.stream(frames[:50]))
            if sum(r.offloaded for r in again) >= 40:
                break
            time.sleep(0.2)
        assert sum(r.offloaded for r in again) >= 40  # offloading again after the restart
    for proc in restarted:
        proc.kill()
    local = DeviceSide(tiny_checkpoint).run_local(frames).argmax(1).tolist()
    assert all(r.top1 == local[i] for i, r in enumerate(results) if not r.offloaded)  # fallbacks are the model's


def test_sigterm_shuts_down_gracefully(tiny_checkpoint, tmp_path: Path) -> None:
    srv = start_server(tmp_path, tiny_checkpoint.path, "--grace-s", "3")
    frames = _frames(200)
    with SplitClient(srv.address, checkpoint=tiny_checkpoint) as client:
        client.wait_until_ready(30)
        results = []
        for i, r in enumerate(client.stream(frames)):
            results.append(r)
            if i == 20:
                threading.Thread(target=srv.terminate, daemon=True).start()
    assert srv.proc.wait(30) == 0
    assert len(results) == 200
    out = srv.output()
    assert "shutting down" in out and "stopped" in out


def test_overload_answers_resource_exhausted_and_loses_nothing(tiny_checkpoint, tmp_path: Path) -> None:
    srv = start_server(tmp_path, tiny_checkpoint.path, "--max-queue", "1", "--max-batch", "1",
                       "--max-wait-ms", "0")
    stub = pb_grpc.SplitInferenceStub(grpc.insecure_channel(srv.address))
    req = _request(tiny_checkpoint, "layer1/w1")
    codes: Counter = Counter()
    lock = threading.Lock()

    def hammer() -> None:
        for _ in range(15):
            try:
                stub.Infer(req, timeout=30)
                code = grpc.StatusCode.OK
            except grpc.RpcError as exc:
                code = exc.code()
            with lock:
                codes[code] += 1

    threads = [threading.Thread(target=hammer) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert codes[grpc.StatusCode.RESOURCE_EXHAUSTED] > 0 and codes[grpc.StatusCode.OK] > 0
    with SplitClient(srv.address, checkpoint=tiny_checkpoint) as client:
        assert len(list(client.stream(_frames(30)))) == 30
    # A client offloading while others overload the server: it backs off, loses nothing.
    hammers = [threading.Thread(target=hammer) for _ in range(6)]
    for t in hammers:
        t.start()
    with SplitClient(srv.address, checkpoint=tiny_checkpoint, policy="layer1/w1") as client:
        results = list(client.stream(_frames(60)))
    for t in hammers:
        t.join()
    srv.kill()
    assert len(results) == 60 and all(r.class_ids and len(r.scores) == len(r.class_ids) for r in results)
    # Every way of backing off is allowed (a slow CI box makes late answers, and misses in a row open the
    # action's breaker); an unexpected RPC failure is not.
    assert {r.fallback for r in results} <= {"", "rpc:RESOURCE_EXHAUSTED", "server_busy", "late", "deadline",
                                             "breaker"}


def test_tls_mutual_tls_and_token(tiny_checkpoint, tmp_path: Path) -> None:
    certs = make_certificates(tmp_path / "certs")
    srv = start_server(tmp_path, tiny_checkpoint.path, "--tls-cert", str(certs["server_cert"]), "--tls-key",
                       str(certs["server_key"]), "--client-ca", str(certs["ca"]), "--token", "s3cret")
    req = _request(tiny_checkpoint)
    good_tls = TlsOptions(str(certs["ca"]), str(certs["client_cert"]), str(certs["client_key"]))

    def call(tls: TlsOptions | None, token: str | None) -> grpc.StatusCode:
        # The token rides as call credentials (TLS only); without TLS only through the explicit opt-in.
        channel = open_channel([srv.address], tls, token=token, insecure_token_over_plaintext=tls is None)
        try:
            pb_grpc.SplitInferenceStub(channel).Infer(req, timeout=10)
            return grpc.StatusCode.OK
        except grpc.RpcError as exc:
            return exc.code()
        finally:
            channel.close()

    assert call(good_tls, "s3cret") == grpc.StatusCode.OK
    assert call(good_tls, "wrong") == grpc.StatusCode.UNAUTHENTICATED
    assert call(good_tls, None) == grpc.StatusCode.UNAUTHENTICATED
    assert call(None, "s3cret") == grpc.StatusCode.UNAVAILABLE  # plaintext to a TLS port
    assert call(TlsOptions(str(certs["ca"])), "s3cret") == grpc.StatusCode.UNAVAILABLE  # no client cert
    rogue = TlsOptions(str(certs["ca"]), str(certs["rogue_cert"]), str(certs["rogue_key"]))
    assert call(rogue, "s3cret") == grpc.StatusCode.UNAVAILABLE  # client cert from another CA
    with SplitClient(srv.address, checkpoint=tiny_checkpoint, tls=good_tls, token="s3cret") as client:
        assert all(r.offloaded for r in client.stream(_frames(5)))
    # By name: gRPC resolves localhost itself and checks the certificate against that name.
    with SplitClient(f"localhost:{srv.port}", checkpoint=tiny_checkpoint, tls=good_tls, token="s3cret") as client:
        assert all(r.offloaded for r in client.stream(_frames(3)))
    # A wrong token is a configuration error: it raises (it used to run every frame locally, silently).
    with SplitClient(srv.address, checkpoint=tiny_checkpoint, tls=good_tls, token="nope") as client:
        with pytest.raises(ServerConfigError, match="UNAUTHENTICATED"):
            list(client.stream(_frames(5)))
    # ... and `splitnet client` exits non-zero with one line naming it.
    data = tmp_path / "frames.npz"
    np.savez(data, x=_frames(5), y=np.arange(5))
    proc = subprocess.run([sys.executable, "-m", "splitnet_cli.main", "--threads", "1", "client", "--server",
                           srv.address, "--checkpoint", tiny_checkpoint.path, "--data", str(data), "--quiet",
                           "--tls-ca", str(certs["ca"]), "--tls-cert", str(certs["client_cert"]),
                           "--tls-key", str(certs["client_key"]), "--token", "nope"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    srv.kill()
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("splitnet: error:")]
    assert len(errors) == 1 and "UNAUTHENTICATED" in errors[0] and "token" in errors[0], proc.stderr


def test_round_robin_across_two_servers(tiny_checkpoint, tmp_path: Path) -> None:
    """Two servers behind one DNS name (one A record each), and the same two as an address list."""
    a = start_server(tmp_path, tiny_checkpoint.path, host="127.0.0.1")
    b = start_server(tmp_path, tiny_checkpoint.path, host="127.0.0.2", port=a.port)

    def served() -> list[int]:
        return [pb_grpc.SplitInferenceStub(grpc.insecure_channel(srv.address)).GetStats(
            pb.GetStatsRequest(), timeout=10).counters.get("frames_ok", 0) for srv in (a, b)]

    try:
        with dns_server({"edge.test": ["127.0.0.1", "127.0.0.2"]}) as dns:
            with SplitClient(f"dns://{dns}/edge.test:{a.port}", checkpoint=tiny_checkpoint) as client:
                client.wait_until_ready(30)
                results = [client.infer(f) for f in _frames(40)]
        assert all(r.offloaded for r in results)
        by_name = served()
        assert sum(by_name) == 40 and min(by_name) >= 10
        with SplitClient([a.address, b.address], checkpoint=tiny_checkpoint) as client:
            client.wait_until_ready(30)
            results = [client.infer(f) for f in _frames(40)]
        assert all(r.offloaded for r in results)
        by_address = [n - m for n, m in zip(served(), by_name)]
        assert sum(by_address) == 40 and min(by_address) >= 10
    finally:
        a.kill()
        b.kill()


def test_cli_client_report(server, tiny_checkpoint, tmp_path: Path) -> None:
    data = tmp_path / "frames.npz"
    np.savez(data, x=_frames(30), y=np.arange(30) % 10)
    out = tmp_path / "client.json"
    cmd = [sys.executable, "-m", "splitnet_cli.main", "--threads", "1", "client", "--server", server.address,
           "--checkpoint", tiny_checkpoint.path, "--data", str(data), "--policy", "layer2/w0.5", "--quiet",
           "--device-batch", "4",
           "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    for key in ("frames_sent", "frames_answered", "frames_lost", "fallback_local", "top1", "latency_ms",
                "bytes_mean", "actions"):
        assert key in report
    assert report["frames_sent"] == report["frames_answered"] == 30 and report["frames_lost"] == 0
    assert set(report["latency_ms"]) == {"p50", "p95", "p99", "mean"}
    assert report["actions"] == {"layer2/w0.5": 30}


def test_deadline_and_bad_actions_keep_every_frame(server, tiny_checkpoint) -> None:
    with SplitClient(server.address, checkpoint=tiny_checkpoint, policy="layer2/w0.5", deadline_ms=0.5) as client:
        results = list(client.stream(_frames(10)))
        results += [client.infer(f) for f in _frames(5)]
    assert len(results) == 15 and all(not r.offloaded for r in results)
    # late ones first; after repeated misses the circuit breaker stops offloading the action
    assert {r.fallback for r in results} <= {"late", "deadline", "breaker"}

    from splitnet.errors import SplitnetError

    with pytest.raises(SplitnetError):
        SplitClient(server.address, checkpoint=tiny_checkpoint, policy="layer7/w0.5")

    class Wild:
        name = "wild"

        def act(self, observation) -> str:
            return "layer9/w0.5"

    with SplitClient(server.address, checkpoint=tiny_checkpoint, policy=Wild()) as client:
        results = list(client.stream(_frames(4)))
    assert [r.fallback for r in results] == ["invalid_action"] * 4


def test_idle_client_probes_the_link(server, tiny_checkpoint) -> None:
    stub = pb_grpc.SplitInferenceStub(grpc.insecure_channel(server.address))
    before = stub.GetStats(pb.GetStatsRequest(), timeout=10).counters.get("probes", 0)
    with SplitClient(server.address, checkpoint=tiny_checkpoint, link_probe_s=0.2) as client:
        client.wait_until_ready(30)
        time.sleep(1.5)
        assert client.estimator.rtt_ms > 0  # measured without sending a single frame
    after = stub.GetStats(pb.GetStatsRequest(), timeout=10).counters.get("probes", 0)
    assert after - before >= 3


class _SlowDevice:
    """An emulated device (``SplitClient(emulate=...)``) whose every action takes ``ms`` of device time."""

    def __init__(self, ms: float) -> None:
        self.ms = ms

    def index(self, name: str) -> int:
        return 0

    def device_ms(self, i: int) -> float:
        return self.ms


def test_a_result_comes_out_while_the_device_works_on_the_next_frame(server, tiny_checkpoint) -> None:
    """The device's work runs on the stream's device thread: frame 0's answer (back a few ms after its 300 ms
    of device work) is yielded while the device spends another 300 ms on frame 1, not after. A client that did
    the device's work in the generator's thread would hand frame 0 over at about 600 ms."""
    device_ms = 300.0
    with SplitClient(server.address, checkpoint=tiny_checkpoint, policy="layer2/w0.5", link_probe_s=0,
                     emulate=_SlowDevice(device_ms)) as client:
        start = time.perf_counter()
        stream = client.stream(_frames(2))
        first = next(stream)
        first_out_ms = (time.perf_counter() - start) * 1e3
        second = next(stream)
        assert list(stream) == []
    assert first.offloaded and second.offloaded and (first.seq, second.seq) == (0, 1)
    assert first_out_ms < 1.5 * device_ms, first_out_ms  # before frame 1's device work ends (2 x 300 ms)
    assert first.latency_ms < 1.5 * device_ms and second.latency_ms >= device_ms


def test_close_waits_for_the_clients_threads(server, tiny_checkpoint) -> None:
    """A daemon thread left inside gRPC when the interpreter exits can abort the process."""
    for _ in range(5):  # the threads end soon after a close that does not wait: try a few times
        before = set(threading.enumerate())
        client = SplitClient(server.address, checkpoint=tiny_checkpoint, policy="layer2/w0.5", link_probe_s=0.01)
        results = list(client.stream(_frames(6)))
        time.sleep(0.05)  # let the probe thread send a few probes
        client.close()
        alive = [t.name for t in set(threading.enumerate()) - before if t.name.startswith("splitnet-")]
        assert alive == [] and len(results) == 6


def test_a_device_batch_of_mixed_sizes_is_fitted_to_the_model_input(tiny_checkpoint) -> None:
    """Frames of different sizes share one device batch: each is fitted to the input (no error, none lost)."""
    from splitnet.errors import ShapeError
    from splitnet.frames import fit_frame

    frames = [_frames(1)[0], np.random.default_rng(3).integers(0, 256, (48, 40, 3), dtype=np.uint8)]
    with SplitClient("127.0.0.1:9", checkpoint=tiny_checkpoint, rpc_timeout_ms=200) as client:
        results = list(client.stream(frames, device_batch=2))
        with pytest.raises(ShapeError, match="uint8"):  # what is not an image is still refused
            list(client.stream([np.zeros((32, 32, 3), dtype=np.float32)]))
    fitted = np.stack([fit_frame(f, tiny_checkpoint.spec)[0] for f in frames])
    local = DeviceSide(tiny_checkpoint).run_local(fitted).argmax(1).tolist()
    assert [r.top1 for r in results] == local and not any(r.offloaded for r in results)
