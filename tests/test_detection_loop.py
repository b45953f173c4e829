"""``SplitDetector`` over a real ``splitnet serve`` process, and the perception-loop example.

The detector here is an untrained tinydet_synth with a layer2 bottleneck built in the
test: its boxes mean nothing, but they must be the same through the server as
in-process, and every submitted frame must be accounted for.
"""

from __future__ import annotations

import importlib.util
import math
import socket
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image

from device_client.detector import DetectorResult, SplitDetector
from splitnet.bottleneck import BottleneckConfig, SlimmableBottleneck
from splitnet.checkpoint import DETECTION_DEMO_DATA, SplitCheckpoint, SplitPoint
from splitnet.detection.synth import DetectionSet
from splitnet.models import create_model
from splitnet.pipeline import Action, DeviceSide, ServerSide
from splitnet.rpc.convert import Box, predictions_from_output
from tests.servers import ROOT, start_server

pytestmark = pytest.mark.slow

POLICY = "layer2/w0.5"


@pytest.fixture(scope="module")
def det_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tinydet_synth with a bottleneck at layer2, saved to disk."""
    torch.manual_seed(0)
    teacher = create_model("tinydet_synth")
    with torch.no_grad():  # spread the untrained scores (all ~0.1 otherwise): boxes ranked without near-ties
        teacher.heads.weight.mul_(20.0)
    bottleneck = SlimmableBottleneck(BottleneckConfig(in_channels=64))
    bottleneck.update(force=True)
    bottleneck.eval()
    path = tmp_path_factory.mktemp("det") / "tinydet_split.pt"
    SplitCheckpoint("tinydet_synth", teacher, {"layer2": SplitPoint("layer2", bottleneck)}).save(path)
    return path


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The device side on one thread, as on a small device (and no oversubscription of a busy CI machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def server(det_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory):
    # --max-batch 1: the server decodes and runs each frame alone, as the in-process reference does.
    proc = start_server(tmp_path_factory.mktemp("server"), str(det_checkpoint), "--max-batch", "1")
    yield proc
    proc.kill()


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return DetectionSet.load(DETECTION_DEMO_DATA).images[:12]


def _free_port() -> int:
    """A port nothing listens on (bound once, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _drain(det: SplitDetector, submitted: int) -> list[DetectorResult]:
    results = det.flush(timeout_s=60)
    assert len(results) == submitted, f"{submitted} submitted, {len(results)} results"
    return results


def _same_boxes(got: list[Box], want: list[Box]) -> None:
    assert [b.label for b in got] == [b.label for b in want]
    np.testing.assert_allclose([[b.x1, b.y1, b.x2, b.y2, b.score] for b in got],
                               [[b.x1, b.y1, b.x2, b.y2, b.score] for b in want], rtol=1e-4, atol=1e-3)


def test_results_in_order_with_in_process_boxes(det_checkpoint: Path, server, frames: np.ndarray) -> None:
    ckpt = SplitCheckpoint.load(det_checkpoint)
    device, edge = DeviceSide(ckpt), ServerSide(ckpt)
    reference = []
    for frame in frames:
        payload = device.encode(frame[None], Action.parse(POLICY))[0]
        reference.append(predictions_from_output(ckpt.model_name, edge.infer([payload]))[0].boxes)
    assert sum(len(b) for b in reference) > 0  # otherwise comparing boxes proves nothing

    with SplitDetector.connect(server.address, checkpoint=ckpt, policy=POLICY, max_in_flight=2,
                               max_pending=len(frames)) as det:
        for c in det.clients:
            c.wait_until_ready(30)
        indices = [det.submit(f) for f in frames]
        results = _drain(det, len(frames))

    assert indices == list(range(len(frames)))
    assert [r.index for r in results] == indices  # frame order, every frame once
    assert not any(r.dropped for r in results)
    for r, want in zip(results, reference):
        assert r.result.offloaded and r.result.action == POLICY, (r.result.action, r.result.fallback)
        assert r.result.payload_bytes > 0
        _same_boxes(r.boxes, want)


def test_dead_server_every_frame_runs_locally(det_checkpoint: Path, frames: np.ndarray) -> None:
    ckpt = SplitCheckpoint.load(det_checkpoint)
    local = predictions_from_output(ckpt.model_name, DeviceSide(ckpt).run_local(frames[:6]))
    with SplitDetector.connect(f"127.0.0.1:{_free_port()}", checkpoint=ckpt, policy=POLICY, max_in_flight=2,
                               max_pending=6) as det:
        for f in frames[:6]:
            det.submit(f)
        results = _drain(det, 6)

    assert [r.index for r in results] == list(range(6))
    assert det.dropped == 0 and not any(r.dropped for r in results)
    for r, want in zip(results, local):
        assert not r.result.offloaded and r.result.action == "local"
        assert r.result.fallback == "server_down" or r.result.fallback.startswith("rpc:"), r.result.fallback
        _same_boxes(r.boxes, want.boxes)


def test_burst_drops_the_oldest_keeps_the_newest(det_checkpoint: Path, server, frames: np.ndarray) -> None:
    ckpt = SplitCheckpoint.load(det_checkpoint)
    n = 20
    with SplitDetector.connect(server.address, checkpoint=ckpt, policy=POLICY, max_in_flight=1,
                               max_pending=1) as det:
        det.clients[0].wait_until_ready(30)
        for i in range(n):
            det.submit(frames[i % len(frames)])
        results = _drain(det, n)

    assert [r.index for r in results] == list(range(n))
    delivered = [r for r in results if not r.dropped]
    dropped = [r for r in results if r.dropped]
    assert len(delivered) + len(dropped) == n
    assert not results[-1].dropped  # the newest frame is never the one given up
    assert results[-1].result.offloaded
    assert dropped, "a burst of 20 frames into a queue of 1 must drop some"
    assert {r.drop_reason for r in dropped} == {"queue_full"}
    assert all(r.boxes == [] and r.result is None for r in dropped)
    assert det.dropped == len(dropped)


def _example() -> ModuleType:
    path = ROOT / "examples" / "detection_loop.py"
    spec = importlib.util.spec_from_file_location("detection_loop_example", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_example_loop_through_shaped_link(det_checkpoint: Path, tmp_path: Path) -> None:
    """The example starts its own server and link, runs 2 s at 10 FPS, and stops both."""
    example = _example()
    trace = example.write_trace(tmp_path / "five_mbps.txt", [(30, 5.0)])
    out, summary_file = tmp_path / "frames", tmp_path / "summary.json"
    summary = example.main(["--checkpoint", str(det_checkpoint), "--trace", str(trace),
                            "--rtt-ms", "20", "--fps", "10", "--seconds", "2", "--policy", POLICY,
                            "--out", str(out), "--save-every", "2", "--json", str(summary_file)])

    assert summary["frames_submitted"] > 0
    assert summary["results_delivered"] > 0
    assert summary["unaccounted"] == 0
    assert summary["results_delivered"] + summary["dropped"] == summary["frames_submitted"]
    assert summary["offloaded"] > 0  # through the link
    assert summary["bytes_per_sent_frame"] > 0 and summary["uplink_mbps"] > 0
    lat = summary["latency_ms"]
    assert all(math.isfinite(lat[k]) and lat[k] >= 0 for k in ("p50", "p95", "p99", "max"))
    assert lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert summary["exit_codes"] == {"link": 0, "server": 0}  # both child processes stopped cleanly
    pngs = sorted(out.glob("frame_*.png"))
    assert pngs and all(int(p.stem.split("_")[1]) % 2 == 0 for p in pngs)
    assert len(pngs) == summary["frames_saved"] <= summary["results_delivered"]
    with Image.open(pngs[0]) as img:
        assert img.size[0] >= 128 * 3 and img.mode == "RGB"
    assert summary_file.is_file()
