"""``splitnet serve --engine ray``: a real local Ray instance (2 CPUs, no dashboard) in a child process,
Ray Serve's gRPC ingress on 127.0.0.1, ``SplitClient`` in this process over real sockets."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter

import grpc
import numpy as np
import pytest

from device_client import SplitClient
from edge_server.process import ServerProcess, spawn_server
from splitnet.checkpoint import SplitCheckpoint
from splitnet.pipeline import Action, DeviceSide, ServerSide
from splitnet.rpc import convert
from splitnet.rpc.v1 import splitnet_pb2 as pb
from splitnet.rpc.v1 import splitnet_pb2_grpc as pb_grpc
from splitnet_cli.main import main
from tests.servers import ROOT

pytestmark = pytest.mark.slow

POLICY = "layer2/w0.5"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _frames(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def ray_server(tiny_checkpoint: SplitCheckpoint, tmp_path_factory: pytest.TempPathFactory):
    """Two replicas on a local Ray of 2 CPUs; shut down (Serve and Ray) by SIGTERM at the end."""
    pytest.importorskip("ray.serve", reason="the Ray tests need the ray extra: pip install -e '.[dev,ray]'")
    port = _free_port()
    # start-up (Ray, Serve, two replicas loading the checkpoint) takes minutes on a loaded 2-core machine
    srv = spawn_server("--checkpoint", str(tiny_checkpoint.path), "--engine", "ray", "--replicas", "2",
                       "--ray-num-cpus", "2", "--replica-cpus", "0.5", "--max-wait-ms", "2",
                       "--request-timeout-s", "30", port=port, workdir=tmp_path_factory.mktemp("ray"),
                       timeout_s=900)
    yield srv
    assert srv.terminate(timeout=120) == 0, srv.output()
    with pytest.raises(grpc.RpcError) as err, grpc.insecure_channel(srv.address) as channel:
        pb_grpc.SplitInferenceStub(channel).GetModelInfo(pb.GetModelInfoRequest(), timeout=3)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE  # the ingress is gone with Ray


@pytest.fixture(scope="module")
def stub(ray_server: ServerProcess):
    with grpc.insecure_channel(ray_server.address) as channel:
        yield pb_grpc.SplitInferenceStub(channel)


def _replica_stats(stub, want: int = 2, timeout_s: float = 90.0) -> dict[int, dict[str, int]]:
    """Counters per replica pid. Each GetStats is answered by one replica, chosen by Ray Serve's router
    from its cached queue lengths (kept up to 10 s), so a replica that just served a burst may be passed
    over for a while: ask in rounds of 8 concurrent calls until ``want`` replicas answered or
    ``timeout_s`` is up."""
    out: dict[int, dict[str, int]] = {}
    end = time.monotonic() + timeout_s
    while True:
        calls = [stub.GetStats.future(pb.GetStatsRequest(), timeout=10) for _ in range(8)]
        for call in calls:
            counters = dict(call.result().counters)
            out[counters["replica_pid"]] = counters
        if len(out) >= want or time.monotonic() > end:
            return out
        time.sleep(0.5)


@pytest.mark.parametrize("extra, message", [
    (["--tls-cert", "c.pem", "--tls-key", "k.pem"], "no TLS"),
    (["--address", "127.0.0.1:0"], "fixed HOST:PORT"),
    (["--replicas", "0"], "--replicas must be >= 1"),
])
def test_ray_engine_refuses_what_it_cannot_do(extra, message, capsys) -> None:
    assert main(["serve", "--engine", "ray", "--address", "127.0.0.1:9000", *extra]) == 2
    assert message in capsys.readouterr().err


def test_client_streams_over_unary_calls_where_infer_stream_is_unimplemented(tiny_checkpoint, tmp_path) -> None:
    """No Ray here: a plain grpcio server running the Ray engine's replica class, InferStream unimplemented."""
    port_file = tmp_path / "port"
    proc = subprocess.Popen([sys.executable, "-m", "tests.unary_server", str(tiny_checkpoint.path), str(port_file)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        end = time.monotonic() + 600  # a loaded machine takes minutes to import torch
        while not port_file.exists():
            assert proc.poll() is None and time.monotonic() < end, "server did not start"
            time.sleep(0.05)
        address = f"127.0.0.1:{port_file.read_text()}"
        frames = _frames(40, seed=4)
        with SplitClient(address, checkpoint=tiny_checkpoint, policy=POLICY, max_in_flight=8) as client:
            client.wait_until_ready(30)
            results = list(client.stream(frames))
            assert client.unary_only
            more = list(client.stream(frames[:10]))  # later streams go unary from the start
        assert [r.seq for r in results] == sorted(r.seq for r in results)  # in order
        assert all(r.offloaded and r.fallback == "" for r in results + more)  # none fell back locally
        expected = ServerSide(tiny_checkpoint).infer(DeviceSide(tiny_checkpoint).encode(frames, Action.parse(POLICY)))
        assert [r.top1 for r in results] == expected.argmax(1).tolist()
        with grpc.insecure_channel(address) as channel:
            stub = pb_grpc.SplitInferenceStub(channel)
            req = convert.request(DeviceSide(tiny_checkpoint).encode(frames[:1], Action.parse(POLICY))[0])
            req.payload.shape[:] = [1, 2, 3]
            with pytest.raises(grpc.RpcError) as err:
                stub.Infer(req, timeout=10)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_same_protocol_status_codes_and_no_bidi_stream(ray_server, stub, tiny_checkpoint) -> None:
    info = stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10)
    assert info.models[0].weights_sha256 == tiny_checkpoint.sha256
    assert [p.node for p in info.models[0].split_points] == ["layer1", "layer2"]
    assert info.server_version.endswith("+ray")
    payload = DeviceSide(tiny_checkpoint).encode(_frames(1), Action.parse(POLICY))[0]
    good = stub.Infer(convert.request(payload), timeout=10)
    assert good.status_code == 0 and len(good.classification.class_ids) == 5
    for change, code in ((dict(split="layer9"), grpc.StatusCode.NOT_FOUND),
                         (dict(width=0.3), grpc.StatusCode.INVALID_ARGUMENT),
                         (dict(weights_sha256="0" * 64), grpc.StatusCode.FAILED_PRECONDITION)):
        req = convert.request(payload)
        for k, v in change.items():
            setattr(req.payload, k, v)
        with pytest.raises(grpc.RpcError) as err:
            stub.Infer(req, timeout=10)
        assert err.value.code() == code, err.value.details()
    # The Ray engine serves frames as unary calls (routed frame by frame); streams are refused.
    with pytest.raises(grpc.RpcError) as err:
        list(stub.InferStream(iter([convert.request(payload)]), timeout=10))
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED, err.value.details()


def test_16_clients_100_frames_every_frame_answered_remotely(ray_server, stub, tiny_checkpoint) -> None:
    frames = _frames(100, seed=1)
    results: dict[int, list] = {}
    unary_only: dict[int, bool] = {}

    def run(k: int) -> None:
        with SplitClient(ray_server.address, checkpoint=tiny_checkpoint, policy=POLICY,
                         rpc_timeout_ms=30000) as client:
            results[k] = list(client.stream(frames))
            unary_only[k] = client.unary_only

    threads = [threading.Thread(target=run, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert sorted(results) == list(range(16))
    flat = [r for k in range(16) for r in results[k]]
    assert len(flat) == 1600  # 0 lost
    assert Counter(r.fallback for r in flat) == {"": 1600}
    assert sum(r.offloaded for r in flat) == 1600  # every frame answered remotely, none ran locally
    assert all(unary_only.values())  # the stream went over unary Infer calls (no bidi stream on Ray Serve)
    expected = ServerSide(tiny_checkpoint).infer(DeviceSide(tiny_checkpoint).encode(frames, Action.parse(POLICY)))
    assert all(r.top1 == int(expected[i].argmax()) for k in range(16) for i, r in enumerate(results[k]))
    per_replica = _replica_stats(stub)
    assert len(per_replica) == 2  # both replicas answered
    served = {pid: c.get("frames_ok", 0) for pid, c in per_replica.items()}
    assert all(n > 0 for n in served.values()), served
    # Ray Serve's batching joined concurrent frames: fewer tail batches than frames
    assert sum(c.get("batches", 0) for c in per_replica.values()) < sum(served.values())


def test_a_replica_killed_mid_run_loses_no_frame(ray_server, stub, tiny_checkpoint) -> None:
    pids = sorted(_replica_stats(stub))
    assert len(pids) == 2
    frames = _frames(150, seed=2)
    results: dict[int, list] = {}
    progress = Counter()
    killed = threading.Event()

    def run(k: int) -> None:
        with SplitClient(ray_server.address, checkpoint=tiny_checkpoint, policy=POLICY, rpc_timeout_ms=30000,
                         backoff_ms=(50, 400)) as client:
            out = []
            for r in client.stream(frames):
                out.append(r)
                progress[k] += 1
            results[k] = out

    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    while sum(progress.values()) < 150 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(pids[0], signal.SIGKILL)  # as if its machine died
    killed.set()
    for t in threads:
        t.join(300)
    flat = [r for k in sorted(results) for r in results[k]]
    assert len(results) == 4 and len(flat) == 600  # every frame has a result: 0 lost
    tails = [r for k in sorted(results) for r in results[k][-30:]]
    assert sum(r.offloaded for r in tails) == len(tails)  # the surviving replica answers the rest
    local = DeviceSide(tiny_checkpoint).run_local(frames).argmax(1).tolist()
    for k in results:  # frames that fell back ran the whole model on the device
        assert all(r.top1 == local[i] for i, r in enumerate(results[k]) if not r.offloaded)
    # Ray Serve replaces the dead replica
    end = time.monotonic() + 120
    while time.monotonic() < end:
        now = set(_replica_stats(stub, timeout_s=5))
        if len(now) == 2 and pids[0] not in now:
            break
        time.sleep(1)
    assert len(now) == 2 and pids[0] not in now
