"""Light encoders for torchvision models, end to end: a torchvision classifier and SSDLite
(random weights, tiny synthetic data) trained by ``splitnet train bottleneck --encoder light``,
saved as split checkpoints, served by ``splitnet serve`` in a child process and queried by
``SplitClient``; the server's answers equal the in-process :class:`ServerSide`'s."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from device_client import SplitClient
from edge_server.process import ServerProcess, spawn_server, wait_serving
from splitnet.checkpoint import SplitCheckpoint
from splitnet.models import create_model, model_spec
from splitnet.models.registry import registered_split_points, split_registered
from splitnet.models.tv_detection import BatchedDetector
from splitnet.pipeline import Action, DeviceSide, ServerSide
from splitnet.rpc import convert
from splitnet_cli.main import main

CLASSIFIER = "mobilenet_v3_small"
SSD = "ssdlite320_mobilenet_v3_large"
START_S = 900.0  # a loaded 2-core machine can take minutes to import torch in a fresh process


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """The server runs with one thread: so does the in-process reference, for identical numerics."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _frames(n: int, size: tuple[int, int], seed: int) -> np.ndarray:
    """Smooth random uint8 frames [n, H, W, 3] (blurred noise, so they are not pure noise)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, size[0] // 16, size[1] // 16, generator=g)
    x = torch.nn.functional.interpolate(low, size=size, mode="bilinear", align_corners=False)
    return (x.permute(0, 2, 3, 1) * 255).round().clamp(0, 255).to(torch.uint8).numpy()


def _write_data(path: Path, n: int, size: tuple[int, int], num_classes: int, seed: int) -> str:
    y = np.random.default_rng(seed).integers(0, num_classes, n).astype(np.int64)
    np.savez(path, x=_frames(n, size, seed), y=y)
    return str(path)


def _random_weights(name: str, path: Path, seed: int, **kwargs: object) -> str:
    torch.manual_seed(seed)
    torch.save(create_model(name, **kwargs).state_dict(), path)
    return str(path)


def _train(*args: str) -> None:
    assert main(["--threads", "1", "train", "bottleneck", "--encoder", "light", "--latent-channels", "8",
                 "--hidden-channels", "8", "--decoder-channels", "16", "--batch-size", "3", "--holdout", "1",
                 "--widths", "0.5", "1.0", "--widths-per-step", "1", *args]) == 0


def _serve(workdir: Path, checkpoint: Path) -> ServerProcess:
    """``splitnet serve --checkpoint`` as a child process on 127.0.0.1, SERVING."""
    server = spawn_server("--checkpoint", str(checkpoint), workdir=workdir, timeout_s=START_S)
    wait_serving(server.address, timeout_s=START_S)
    return server


def _in_process(ckpt: SplitCheckpoint, frames: np.ndarray, action: Action) -> tuple[list, list[convert.Prediction]]:
    """Payloads the device makes for ``frames`` (one each) and the in-process server's predictions."""
    device, server = DeviceSide(ckpt), ServerSide(ckpt)
    payloads, preds = [], []
    for i, frame in enumerate(frames):
        payload = device.encode(frame[None], action, seq=i)[0]
        payloads.append(payload)
        with torch.no_grad():
            output = server.infer([payload])
        preds += convert.predictions_from_output(ckpt.model_name, output, top_k=1000)
    return payloads, preds


# ---------------------------------------------------------------- classifier
@pytest.mark.slow
def test_light_encoder_for_a_torchvision_classifier_through_serve_and_split_client(tmp_path: Path) -> None:
    spec = model_spec(CLASSIFIER)
    weights = _random_weights(CLASSIFIER, tmp_path / "teacher.pt", seed=0)
    data = _write_data(tmp_path / "train.npz", 10, spec.input_size, spec.num_classes, seed=0)
    out = tmp_path / "split.pt"
    _train("--teacher", CLASSIFIER, "--weights", weights, "--split", "features.3", "--downsample", "3",
           "--data", data, "--epochs", "1", "--finetune-epochs", "1", "--out", str(out))

    ckpt = SplitCheckpoint.load(out)
    config = ckpt.split("features.3").bottleneck.config
    assert ckpt.model_name == CLASSIFIER and config.is_light and config.out_channels == 24
    assert not config.out_relu  # MobileNet's block outputs are linear (can be negative): derived, not ReLU'd
    assert ckpt.split("features.3").tail_state is not None  # stage 2 fine-tuned the tail
    assert torch.equal(ckpt.teacher.state_dict()["classifier.3.weight"],
                       torch.load(weights, weights_only=True)["classifier.3.weight"])

    frames = _frames(3, spec.input_size, seed=7)
    action = Action.parse("features.3/w0.5")
    payloads, expected = _in_process(ckpt, frames, action)
    server = _serve(tmp_path, out)
    try:
        with SplitClient(server.address, checkpoint=ckpt, policy=action.name, rpc_timeout_ms=60_000,
                         link_probe_s=0) as client:
            results = [client.infer(f) for f in frames]
    finally:
        server.terminate(START_S)
    for r, p, want in zip(results, payloads, expected):
        assert r.offloaded and r.fallback == "" and r.action == "features.3/w0.5", r
        assert r.payload_bytes == len(p.data) > 0
        assert r.class_ids[0] == want.class_ids[0]
        probs = dict(zip(want.class_ids, want.scores))
        np.testing.assert_allclose(r.scores, [probs[c] for c in r.class_ids], rtol=0, atol=1e-6)


# ------------------------------------------------------------------ detector
@pytest.fixture(scope="module")
def ssd_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SSDLite (random weights) with a light encoder at features.4, trained one tiny epoch (stage 1)."""
    tmp = tmp_path_factory.mktemp("ssd")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        weights = _random_weights(SSD, tmp / "teacher.pt", seed=0)
        data = _write_data(tmp / "frames.npz", 10, model_spec(SSD).input_size, 1, seed=1)
        out = tmp / "split.pt"
        _train("--teacher", SSD, "--weights", weights, "--split", "features.4", "--downsample", "3",
               "--data", data, "--epochs", "1", "--finetune-epochs", "0", "--out", str(out))
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.mark.slow
def test_ssdlite_is_a_registered_model_whose_split_equals_the_model() -> None:
    spec = model_spec(SSD)
    assert spec.is_detector and spec.input_size == (320, 320) and spec.mean == (0, 0, 0) and spec.std == (1, 1, 1)
    torch.manual_seed(0)
    model = create_model(SSD, score_thresh=0.0)  # random weights; keep every box: the comparison is not vacuous
    assert isinstance(model, BatchedDetector)
    assert {"features.2", "features.4", "features.7"} <= set(registered_split_points(SSD, model))
    x = torch.rand(2, 3, *spec.input_size)
    head, tail = split_registered(SSD, model, "features.4")
    with torch.no_grad():
        want = model(x)
        features = head(x)
        got = tail(features)
    assert features.shape == (2, 40, 40, 40)
    assert len(got) == len(want) == 2
    for g, w in zip(got, want):
        assert len(w["boxes"]) > 0
        torch.testing.assert_close(g["labels"], w["labels"], rtol=0, atol=0)
        torch.testing.assert_close(g["boxes"], w["boxes"], rtol=0, atol=1e-4)
        torch.testing.assert_close(g["scores"], w["scores"], rtol=0, atol=1e-5)


@pytest.mark.slow
def test_ssdlite_weights_file_of_the_bare_torchvision_model_loads(tmp_path: Path) -> None:
    from splitnet.models.tv_detection import create_detector

    torch.manual_seed(3)
    bare = create_detector(SSD, weights_backbone=None)
    torch.save(bare.state_dict(), tmp_path / "bare.pt")
    model = create_model(SSD, weights=tmp_path / "bare.pt")
    assert all(torch.equal(v, model.model.state_dict()[k]) for k, v in bare.state_dict().items())


@pytest.mark.slow
def test_ssdlite_light_encoder_through_serve_and_split_client(ssd_checkpoint: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture) -> None:
    ckpt = SplitCheckpoint.load(ssd_checkpoint)
    point = ckpt.split("features.4")
    assert point.bottleneck.config.is_light and not point.bottleneck.config.out_relu
    assert point.tail_state is None  # stage 1 only
    history = ckpt.meta["bottlenecks"]["features.4"]["history"]
    assert [sorted(r) for r in history[-1]["holdout"]] == [["bytes_mean", "feature_mse", "width"]] * 2

    assert main(["checkpoint", "info", str(ssd_checkpoint)]) == 0
    info = capsys.readouterr().out
    assert "light encoder on the image" in info and "w0.5: device" in info and "M MACs" in info

    frames = _frames(2, model_spec(SSD).input_size, seed=5)
    action = Action.parse("features.4/w1")
    payloads, expected = _in_process(ckpt, frames, action)
    server = _serve(tmp_path, ssd_checkpoint)
    try:
        with SplitClient(server.address, checkpoint=ckpt, policy=action.name, rpc_timeout_ms=60_000,
                         link_probe_s=0) as client:
            results = [client.infer(f) for f in frames]
    finally:
        server.terminate(START_S)
    for r, p, want in zip(results, payloads, expected):
        assert r.offloaded and r.fallback == "" and r.action == "features.4/w1", r
        assert r.payload_bytes == len(p.data) > 0
        assert want.is_detection and len(r.boxes) == len(want.boxes)
        got = np.array([[b.x1, b.y1, b.x2, b.y2, b.score, b.label] for b in r.boxes]).reshape(-1, 6)
        ref = np.array([[b.x1, b.y1, b.x2, b.y2, b.score, b.label] for b in want.boxes]).reshape(-1, 6)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4)


def test_ssdlite_stage_two_is_refused_with_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "bottleneck", "--teacher", SSD, "--weights", str(tmp_path / "none.pt"), "--encoder",
                 "light", "--split", "features.4", "--downsample", "3", "--finetune-epochs", "2",
                 "--out", str(tmp_path / "x.pt")]) == 2
    assert "no stage-2 task" in capsys.readouterr().err


@pytest.mark.slow
def test_models_lists_ssdlite_split_points(capsys: pytest.CaptureFixture) -> None:
    assert main(["models", "--split-points", SSD]) == 0
    out = capsys.readouterr().out
    assert "input 320x320, detector, 91 classes" in out
    assert "split points: " + ", ".join(f"features.{i}" for i in range(13)) in out
