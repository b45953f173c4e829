"""The client's control loop (late = miss, circuit breaker, probes back), frames of any size,
and ``splitnet client`` on unlabelled image folders with per-frame records."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from device_client import SplitClient
from device_client.breaker import CircuitBreaker
from device_client.client import TimedFrame
from edge_server.process import spawn_server
from splitnet.checkpoint import SplitCheckpoint
from splitnet.errors import ShapeError
from splitnet.frames import fit_frame
from splitnet.models.registry import ModelSpec
from tests.servers import ROOT


# ------------------------------------------------------------------ pure parts
def test_the_link_estimate_separates_serialization_from_the_round_trip() -> None:
    """A 0.1 Mbit/s link with a 20 ms RTT, seen as the client's probes see it: an empty probe (base
    RTT) and a 200-byte one (16 ms more) per round. The estimate must read 0.1 Mbit/s and 20 ms and
    predict a 500-byte payload at 20 + 40 ms, not count serialization in the RTT too."""
    from device_client.estimator import LinkEstimator, LinkSample

    est = LinkEstimator()
    for _ in range(5):
        est.add(LinkSample(0, 20.0))
        est.add(LinkSample(200, 20.0 + 200 * 8 / 100.0))
    est.add(LinkSample(0, 26.0))  # a slow empty probe (jitter) is no throughput sample: it carries no bytes
    est.add(LinkSample(0, 20.0))
    assert est.throughput_mbps == pytest.approx(0.1, rel=0.01)
    assert 20.0 <= est.rtt_ms < 21.5  # smoothed: the 26 ms probe still shows a little
    assert est.transfer_ms(500) == pytest.approx(60.0, rel=0.02)
    one_size = LinkEstimator()  # a single probe size cannot tell serialization from delay: no rate
    for _ in range(5):
        one_size.add(LinkSample(200, 36.0))
    assert one_size.throughput_mbps == 0.0 and one_size.rtt_ms == pytest.approx(36.0)


def test_the_link_estimate_follows_a_link_that_speeds_up() -> None:
    """0.2 Mbit/s with a 60 ms RTT (1000-byte frames take 40 ms to serialize), then 5 Mbit/s (1.6 ms):
    the first fast answer, too quick to count as a throughput sample against the 60 ms RTT, must still
    lift the estimate to the rate it proves (1000 B in 1.6 ms over a noiseless RTT: 5 Mbit/s; with
    +-5 ms of RTT noise seen on empty probes, the round trip less the quickest of them bounds the transfer,
    1000 B within 6.6 ms: >= 1.21 Mbit/s) instead of waiting for the window of slow samples to age out; a
    noisy but steady link keeps its estimate."""
    import random

    from device_client.estimator import LinkEstimator, LinkSample

    for noise_ms, proven_mbps in ((0.0, 5.0), (5.0, 8 / 6.6)):
        est = LinkEstimator()
        for i in range(20):
            est.add(LinkSample(0, 60.0 + noise_ms * (-1, 0, 1)[i % 3]))  # empty probes, their RTT jittered
            est.add(LinkSample(1000, 60.0 + 40.0))
        # within 2 %: the first two samples come before three empty probes, against the quickest of them
        assert est.throughput_mbps == pytest.approx(0.2, rel=0.02)
        est.add(LinkSample(1000, 60.0 + 1.6))
        assert est.throughput_mbps == pytest.approx(proven_mbps, rel=0.01)
        assert est.transfer_ms(1000) < 67.0  # was 100 ms on the slow link
    measured = LinkEstimator()  # a measurable rise (10 kB frames: 320 ms -> 16 ms) replaces the slow samples too
    for _ in range(20):
        measured.add(LinkSample(0, 60.0))
        measured.add(LinkSample(10_000, 60.0 + 400.0))
    measured.add(LinkSample(10_000, 60.0 + 16.0))
    assert measured.throughput_mbps == pytest.approx(5.0, rel=0.01)
    rng = random.Random(0)
    steady = LinkEstimator()  # 0.1 Mbit/s, 16 ms per 200-byte probe, 0-5 ms of jitter on every answer
    for _ in range(200):
        steady.add(LinkSample(0, 20.0 + rng.uniform(0, 5)))
        steady.add(LinkSample(200, 36.0 + rng.uniform(0, 5)))
    assert 0.075 < steady.throughput_mbps < 0.105
    assert min(steady.recent_throughputs()) > 0.07 and len(steady.recent_throughputs()) == 20
    busy = LinkEstimator()  # 0.1 Mbit/s, RTT 30 ms: probes at the start, then only frames of 150-250 B (12-20 ms)
    for _ in range(3):
        busy.add(LinkSample(0, 30.0))
    for i in range(40):
        size = 150 + 50 * (i % 3)
        busy.add(LinkSample(size, 30.0 + size * 8 / 100))
    # every recent round trip carried a payload: the quickest of them is no RTT, and a frame as slow as it proves
    # no fast link (it read as 3.2 Mbit/s before)
    busy.add(LinkSample(200, 30.0 + 150 * 8 / 100))
    assert max(busy.recent_throughputs()) < 0.2 and busy.throughput_mbps < 0.15


def test_breaker_opens_after_misses_and_a_probe_closes_it() -> None:
    b = CircuitBreaker(trip_after=3, cooldown_s=0.05)
    for _ in range(2):
        b.record("layer2/w0.5", False)
    assert not b.is_open("layer2/w0.5")
    b.record("layer2/w0.5", False)
    assert b.is_open("layer2/w0.5") and not b.is_open("webp/q75")
    assert not b.take_probe("layer2/w0.5", 0.01)  # still cooling down
    time.sleep(0.06)
    assert b.take_probe("layer2/w0.5", 0.01)
    assert not b.take_probe("layer2/w0.5", 0.01)  # one probe at a time
    b.record("layer2/w0.5", False)  # the probe missed: stays open
    assert b.is_open("layer2/w0.5")
    time.sleep(0.06)
    assert b.take_probe("layer2/w0.5", 0.01)
    b.record("layer2/w0.5", True)
    assert not b.is_open("layer2/w0.5")
    assert [e.what for e in b.events] == ["open", "probe", "probe", "close"]


def test_fit_frame_follows_the_input_spec() -> None:
    cls = ModelSpec("c", (32, 32), 10)
    det = ModelSpec("d", (128, 128), 10, task="detection")
    wide = np.zeros((480, 640, 3), dtype=np.uint8)
    img, fit = fit_frame(wide, cls)
    assert img.shape == (32, 32, 3) and fit.frame_size == (480, 640)
    img, fit = fit_frame(wide, det)  # letterbox: 640 -> 128 wide, 480 -> 96 high, padded below
    assert img.shape == (128, 128, 3)
    assert fit.box_to_frame(0, 0, 128, 96) == pytest.approx((0, 0, 640, 480))
    assert fit.box_to_frame(64, 48, 128, 128) == pytest.approx((320, 240, 640, 480))  # clipped to the frame
    gray = np.zeros((20, 30), dtype=np.uint8)
    assert fit_frame(gray, cls)[0].shape == (32, 32, 3)
    same = np.ones((32, 32, 3), dtype=np.uint8)
    assert fit_frame(same, cls)[1].identity
    with pytest.raises(ShapeError, match="uint8"):
        fit_frame(np.zeros((32, 32, 3), dtype=np.float32), cls)
    with pytest.raises(ShapeError, match="shape"):
        fit_frame(np.zeros((32, 32, 5), dtype=np.uint8), cls)


# ------------------------------------------------------------- real processes
@pytest.fixture(scope="module")
def server(tiny_checkpoint: SplitCheckpoint, tmp_path_factory: pytest.TempPathFactory):
    proc = spawn_server("--checkpoint", str(tiny_checkpoint.path), workdir=tmp_path_factory.mktemp("srv"),
                        timeout_s=900)  # generous: a loaded 2-core machine can take minutes to start one
    yield proc
    proc.kill()


@pytest.mark.slow
def test_frames_of_any_size_are_offloaded_not_run_locally(server, tiny_checkpoint: SplitCheckpoint) -> None:
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in ((64, 64, 3), (480, 640, 3), (40, 48))]
    # no time limit that a slow machine could hit: this checks that every size is taken, not speed
    with SplitClient(server.address, checkpoint=tiny_checkpoint, policy="layer2/w1", rpc_timeout_ms=600_000,
                     default_budget_ms=600_000) as client:
        client.wait_until_ready(60)
        streamed = list(client.stream(frames))
        unary = [client.infer(f) for f in frames]
        fitted = [client.infer(fit_frame(f, tiny_checkpoint.spec)[0]) for f in frames]
    for s, u, f in zip(streamed, unary, fitted):
        assert s.offloaded and u.offloaded and not s.fallback, (s.fallback, u.fallback)
        assert s.class_ids == u.class_ids == f.class_ids  # the same as fitting the frame by hand


@pytest.mark.slow
def test_a_probe_answer_is_judged_from_when_an_offload_would_have_started(tiny_checkpoint) -> None:
    """A breaker probe goes out after the frame's local run; with a local run of 90 ms and a 100 ms deadline
    its answer 40 ms after sending can never be within 100 ms of the frame's arrival, yet the offload would
    have made it (10 ms head + encode + 40 ms): the probe must count as a hit and close the breaker."""
    from device_client.client import _Pending
    from splitnet.pipeline import Timing
    from splitnet.rpc.v1 import splitnet_pb2 as pb

    with SplitClient(None, checkpoint=tiny_checkpoint, policy="local", link_probe_s=0, deadline_ms=100,
                     calibration=False, breaker=CircuitBreaker(trip_after=1, cooldown_s=0.0)) as client:
        action = "layer2/w1"
        for probe, want_open in ((False, True), (True, False)):
            client.breaker.record(action, False)  # open
            arrival = time.perf_counter()
            p = _Pending(0, np.zeros((32, 32, 3), np.uint8), arrival, action, sent=arrival + 0.090,
                         timing=Timing(head_ms=6.0, encode_ms=4.0), payload_bytes=100)
            client._late_answer(p, probe=probe)(pb.InferResponse(status_code=0), arrival + 0.130)
            assert client.breaker.is_open(action) is want_open, (probe, client.breaker.events)


def test_late_answers_are_misses_open_the_breaker_and_probes_bring_offloading_back(
        server, tiny_checkpoint: SplitCheckpoint) -> None:
    frames = np.random.default_rng(1).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    # a 10 us deadline no local run makes either: the wait for the answer lasts the default budget, 20 us here;
    # no calibration (the local time unknown), so an open breaker sends frames to the device
    with SplitClient(server.address, checkpoint=tiny_checkpoint, policy="layer2/w1", deadline_ms=0.01,
                     default_budget_ms=0.02, rpc_timeout_ms=600_000, calibration=False,
                     breaker=CircuitBreaker(trip_after=3, cooldown_s=0.2)) as client:
        client.wait_until_ready(60)
        # Every frame that goes out misses: the server refuses it (its budget spent before it could run: "late")
        # or answers after the deadline (a late answer, which also gives the client a prediction: later frames
        # may stay local as predicted misses, "deadline", until the prediction is 1 s old). Each goes against
        # the action, so the breaker opens; frames are streamed until it has (generous bound: a slow machine).
        first = list(client.stream(frames[:20]))
        end = time.monotonic() + 60
        while not client.breaker.is_open("layer2/w1") and time.monotonic() < end:
            first += client.stream(frames[:5])
        assert client.breaker.is_open("layer2/w1")
        first += client.stream(frames[:1])  # the open breaker keeps it on the device
        assert all(r.deadline_missed for r in first)  # no answer can come within 10 us
        assert all(not r.fallback for r in first if r.offloaded)  # a late answer is a result, not a fallback
        reasons = {r.fallback for r in first if not r.offloaded}
        assert "breaker" in reasons and reasons <= {"late", "deadline", "breaker"}, reasons
        assert client.breaker.is_open("layer2/w1")
        client.deadline_ms = 60_000.0  # the "link" recovers: answers now come in time
        back_at = None
        end = time.monotonic() + 120  # generous: this machine can be very slow
        while back_at is None and time.monotonic() < end:
            r = client.infer(frames[0])
            if r.offloaded:
                back_at = time.monotonic()
            time.sleep(0.05)
        assert back_at is not None, "the client never offloaded again"
        assert not client.breaker.is_open("layer2/w1")
        assert any(e.what == "probe" for e in client.breaker.events)
        assert client.estimator.rtt_ms > 0  # answers informed the link estimate


class _ProbeCountingClient(SplitClient):
    """The client, noting the size of each link probe call it makes."""

    def _probe(self, size: int) -> str:
        self.probe_sizes.append(size)
        return super()._probe(size)


def test_an_empty_probe_goes_out_while_frames_do(server, tiny_checkpoint: SplitCheckpoint) -> None:
    """While frames go out every 50 ms (so the idle-link probe pair never comes), the probe thread still sends a
    lone empty call about every ``link_probe_s`` (0.3 s here): the base RTT stays an empty call's round trip."""
    def paced(frames: np.ndarray):
        for frame in frames:
            time.sleep(0.05)
            yield frame

    frames = np.random.default_rng(2).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    with _ProbeCountingClient(server.address, checkpoint=tiny_checkpoint, policy="layer2/w1", calibration=False,
                              link_probe_s=0.3, rpc_timeout_ms=600_000, default_budget_ms=600_000) as client:
        client.probe_sizes = []
        client.wait_until_ready(60)
        list(client.stream(frames[:2]))  # the stream is open and the first probes are done
        time.sleep(0.4)
        before = len(client.probe_sizes)
        t0 = time.monotonic()
        results = list(client.stream(paced(frames[2:])))
        elapsed_s = time.monotonic() - t0
        sizes = client.probe_sizes[before:]
    assert all(r.offloaded for r in results)
    assert client.probe_bytes not in sizes, sizes  # frames kept going out: no idle-link pair
    assert len(sizes) >= elapsed_s / 0.3 / 2 and set(sizes) == {0}, (elapsed_s, sizes)  # >= half the due ones


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_client_cli_on_an_unlabelled_folder_writes_frame_records(server, tiny_checkpoint: SplitCheckpoint,
                                                                  tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(2)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(folder / f"f{i}.png")
    out = tmp_path / "run.json"
    cmd = [sys.executable, "-m", "splitnet_cli.main", "--threads", "1", "client", "--checkpoint",
           str(tiny_checkpoint.path), "--data", str(folder), "--policy", "layer2/w1", "--quiet", "--no-calibration"]
    proc = subprocess.run([*cmd, "--server", server.address, "--json", str(out), "--fps", "20", "--every-frame"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["frames"] == 5 and report["frames_answered"] == 5 and report["top1"] is None
    assert report["frames_dropped"] == 0 and report["camera"] == "every frame"
    assert report["deadline_miss_rate"] is not None and "client_queue_ms" in report["stage_ms_mean"]
    rec = report["frames_detail"][0]
    assert rec["ran_on"] == "server" and set(rec["stages_ms"]) >= {"network", "client_queue", "head"}
    # a live camera (the default with --fps) and the shipped profile's slow device running everything locally
    # (> 100 ms a frame at 20 FPS): frames are overtaken and dropped, none lost; the records name each frame
    live = [*cmd[:-4], "--policy", "local", "--quiet", "--no-calibration", "--emulate-device", "--fps", "20"]
    proc = subprocess.run([*live, "--server", server.address, "--json", str(out)], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    taken = [rec["frame"] for rec in report["frames_detail"]]
    assert report["camera"] == "live" and report["frames_lost"] == 0 and report["frames_dropped"] >= 1
    assert len(taken) + report["frames_dropped"] == 5 and taken == sorted(taken) and taken[0] == 0
    assert "dropped by the camera" in proc.stdout
    # nothing answers: every frame runs locally, and that is an error unless --allow-local
    dead = [*cmd, "--server", f"127.0.0.1:{_free_port()}", "--budget-ms", "200"]
    proc = subprocess.run(dead, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 3 and "no frame was answered" in proc.stderr
    proc = subprocess.run([*dead, "--allow-local"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr


def test_emulation_pads_device_compute_to_the_profiled_device(tiny_checkpoint: SplitCheckpoint) -> None:
    from policies.simulation.profile import Profile

    profile = Profile.load()  # the shipped profile: a slow device (its local run is well over 100 ms)
    frame = np.zeros((32, 32, 3), dtype=np.uint8)
    with SplitClient(None, checkpoint=tiny_checkpoint, policy="local", emulate=profile, link_probe_s=0) as client:
        assert client.calibration is None  # the emulated device's times are the profile's
        r = client.infer(frame)
    assert r.local_ms >= 0.95 * profile.device_ms(0)
    with SplitClient(None, checkpoint=tiny_checkpoint, policy="local", link_probe_s=0) as client:
        assert client.calibration is not None and client.calibration.device_ms["local"] > 0
        assert "layer1/w0.25" in client.calibration.device_ms  # every action of the checkpoint is timed


def test_the_fallback_reserve_covers_the_devices_slow_local_runs(tiny_checkpoint) -> None:
    """The time kept back for a local fallback is 1.2x the usual local run, or the 95th percentile of the
    recent ones when that is longer (a loaded device), plus twice the polling interval; where that slow run's
    fallback would not fit the budget, the usual run's time is kept back (the device still never waits past
    its budget: a loaded moment is not a device that cannot make its deadline)."""
    from device_client.calibration import DeviceCalibration

    def wait_ms(client: SplitClient) -> tuple[float, float]:
        """The wait left for a frame arriving now, and the ms the call itself took (a busy machine's)."""
        t0 = time.perf_counter()
        left = client._wait_left_ms(t0)
        return left, (time.perf_counter() - t0) * 1e3

    def assert_wait(client: SplitClient, expected_ms: float) -> None:
        left, took_ms = wait_ms(client)
        assert expected_ms - took_ms - 0.5 <= left <= expected_ms + 0.5

    calibration = DeviceCalibration({"local": 10.0})
    with SplitClient(None, checkpoint=tiny_checkpoint, policy="local", link_probe_s=0, deadline_ms=100,
                     calibration=calibration) as client:
        for _ in range(18):
            calibration.observe("local", 10.0)
        assert_wait(client, 100 - 1.2 * 10 - 4)
        calibration.observe("local", 30.0)
        calibration.observe("local", 30.0)  # 2 of 20 at 30 ms: the 95th percentile is 30 ms
        assert calibration.device_ms["local"] < 25  # the running average has not caught up
        assert_wait(client, 100 - 30 - 4)
        for _ in range(6):
            calibration.observe("local", 116.0)  # 6 of 26 at 116 ms: a fallback at that pace misses anyway
        usual_ms = calibration.device_ms["local"]
        assert 1.2 * usual_ms + 4 < 100 < calibration.local_p95_ms()
        assert_wait(client, 100 - 1.2 * usual_ms - 4)  # the usual run's reserve, not a 2 s wait


def test_the_device_keeps_free_for_a_fallback_that_is_due(tiny_checkpoint) -> None:
    """While a frame waits for its answer and will give up on it before a local run started now would end,
    the device starts no new frame (its fallback goes first); not when the frame's fallback misses anyway."""
    from collections import deque

    from device_client.calibration import DeviceCalibration
    from device_client.client import _Pending

    def window(wait_left_ms: float, client: SplitClient) -> deque:
        now = time.perf_counter()
        t0 = now - (client._wait_left_ms(now) - wait_left_ms) / 1e3  # arrived so that this much wait is left
        return deque([_Pending(0, np.zeros((32, 32, 3), np.uint8), t0, "layer2/w0.5", sent=now)])

    lock = threading.Condition()
    for deadline_ms, due_soon in ((100, True), (10, False)):  # local 10 ms: 1.2x + 4 fits 100 ms, not 10 ms
        with SplitClient(None, checkpoint=tiny_checkpoint, policy="local", link_probe_s=0, deadline_ms=deadline_ms,
                         calibration=DeviceCalibration({"local": 10.0})) as client:
            assert client._give_up_is_due(window(5.0, client), lock) is due_soon
            assert not client._give_up_is_due(window(50.0, client), lock)  # not before a local run would end
            assert not client._give_up_is_due(window(-1.0, client), lock)  # past it: already falling back


def test_a_wait_ends_at_the_budget_while_the_camera_has_no_new_frame(tiny_checkpoint) -> None:
    """A camera at 2.5 FPS and a server that accepts the connection and never answers: each frame's result
    comes within its 100 ms deadline of its arrival (margin 100 ms for a loaded machine), not when the next
    frame arrives 400 ms later; every frame is kept (run locally)."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    silent.settimeout(0.05)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(silent.accept()[0])
            except OSError:
                pass

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    frames = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)

    def camera():
        for frame in frames:
            yield TimedFrame(frame, time.perf_counter())
            time.sleep(0.4)

    try:
        with SplitClient(f"127.0.0.1:{silent.getsockname()[1]}", checkpoint=tiny_checkpoint, policy="layer2/w0.5",
                         deadline_ms=100, calibration=False, link_probe_s=0) as client:
            results = list(client.stream(camera()))
    finally:
        stop.set()
        acceptor.join(1)
        for conn in held:
            conn.close()
        silent.close()
    assert len(results) == 4 and not any(r.offloaded for r in results)
    assert max(r.latency_ms for r in results) < 200, [round(r.latency_ms) for r in results]


@pytest.mark.slow
def test_the_client_measures_the_link_before_its_first_frame(server, tiny_checkpoint: SplitCheckpoint) -> None:
    """``measure_link`` leaves an RTT estimate behind (the background probes are off here); against a dead
    server it returns quietly and the frames then run locally."""
    with SplitClient(server.address, checkpoint=tiny_checkpoint, policy="layer2/w1", link_probe_s=0,
                     calibration=False) as client:
        client.wait_until_ready(60)
        assert client.estimator.rtt_ms == 0
        client.measure_link(2)
        assert client.estimator.rtt_ms > 0
    with SplitClient(f"127.0.0.1:{_free_port()}", checkpoint=tiny_checkpoint, policy="layer2/w1", link_probe_s=0,
                     calibration=False, rpc_timeout_ms=500) as client:
        client.measure_link(2)
        assert client.estimator.rtt_ms == 0
        assert not client.infer(np.zeros((32, 32, 3), dtype=np.uint8)).offloaded


class _CountingProxy:
    """A TCP proxy on 127.0.0.1 that counts the bytes from the client to ``upstream`` (the uplink)."""

    def __init__(self, upstream: str) -> None:
        import asyncio

        self.uplink_bytes = 0
        self._ready = threading.Event()
        self.port = 0
        host, port = upstream.rsplit(":", 1)

        async def pump(reader, writer, count: bool) -> None:
            try:
                while data := await reader.read(65536):
                    if count:
                        self.uplink_bytes += len(data)
                    writer.write(data)
                    await writer.drain()
            except ConnectionError:
                pass
            finally:
                writer.close()

        async def handle(client_r, client_w) -> None:
            up_r, up_w = await asyncio.open_connection(host, int(port))
            await asyncio.gather(pump(client_r, up_w, True), pump(up_r, client_w, False))

        async def main() -> None:
            srv = await asyncio.start_server(handle, "127.0.0.1", 0)
            self.port = srv.sockets[0].getsockname()[1]
            self._ready.set()
            await srv.serve_forever()

        threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()
        assert self._ready.wait(10)


@pytest.mark.slow
def test_the_wire_bytes_the_simulator_charges_match_a_real_connection(server, tiny_checkpoint: SplitCheckpoint) -> None:
    """A link probe costs ``PROBE_CALL_OVERHEAD_BYTES`` on the uplink besides its padding and a streamed frame
    ``wire_overhead_bytes`` (what the profile charges each frame in the simulator) besides its payload. Counted
    on a real gRPC connection through a proxy (the bytes ``splitnet link`` shapes), a call's own framing (the least
    over 7 calls: HPACK-indexed headers, no control frame riding along) is within 20 B of that, for probes and unary
    frames alike; HTTP/2 control frames (window updates, ping acks: 30-40 B) ride on some calls and not on others,
    so the mean over the calls after the first (whose headers go out in full) is within 40 B. A streamed frame's
    mean is within 10 B of its modelled bytes, which include the control frames the client sends as it reads each
    answer (measured: 128-133 B against 130 B modelled)."""
    from splitnet.pipeline import Action
    from splitnet.rpc.convert import PROBE_CALL_OVERHEAD_BYTES, request, request_overhead_bytes, wire_overhead_bytes

    proxy = _CountingProxy(server.address)
    with SplitClient(f"127.0.0.1:{proxy.port}", checkpoint=tiny_checkpoint, policy="layer2/w1", link_probe_s=0,
                     calibration=False) as client:
        client.wait_until_ready(60)
        sizes: dict[int, list[int]] = {0: [], 200: []}
        for _ in range(7):
            for size in sizes:
                before = proxy.uplink_bytes
                assert client._probe(size) == "ok"
                time.sleep(0.05)  # the proxy has copied the call by then
                sizes[size].append(proxy.uplink_bytes - before - size)
        for size, extra in sizes.items():
            assert abs(min(extra) - PROBE_CALL_OVERHEAD_BYTES) <= 20, (size, extra)
            assert abs(float(np.mean(extra[1:])) - PROBE_CALL_OVERHEAD_BYTES) <= 40, (size, extra)
        frames = np.random.default_rng(3).integers(0, 256, (30, 32, 32, 3), dtype=np.uint8)
        list(client.stream(frames[:2]))  # the stream is open
        time.sleep(0.05)
        before = proxy.uplink_bytes
        results = list(client.stream(frames[2:]))
        time.sleep(0.05)
        streamed_bytes = proxy.uplink_bytes - before
        unary_extra = []
        for frame in frames[:7]:
            before_call = proxy.uplink_bytes
            r = client.infer(frame)
            time.sleep(0.05)
            unary_extra.append(proxy.uplink_bytes - before_call - r.payload_bytes)
    assert all(r.offloaded for r in results)
    per_frame = (streamed_bytes - sum(r.payload_bytes for r in results)) / len(results)
    payload = client.device.encode(frames[:1], Action.parse("layer2/w1"))[0]
    modelled = wire_overhead_bytes(payload)
    assert abs(per_frame - modelled) <= 10, (per_frame, modelled)
    assert modelled == request_overhead_bytes(request(payload, budget_ms=100.0), streamed=True)
    # a unary Infer call carries about an empty Probe call's framing besides the request (what the estimator's
    # samples of unary frames count), as the probes
    unary_modelled = request_overhead_bytes(request(payload, budget_ms=client.budget_ms), streamed=False)
    assert abs(min(unary_extra) - unary_modelled) <= 20, (unary_extra, unary_modelled)
    assert abs(float(np.mean(unary_extra[1:])) - unary_modelled) <= 40, (unary_extra, unary_modelled)
