"""Groundwork for split detection: synthetic data, the small detector, targets, decoding and mAP."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import splitnet
from splitnet.data import ImageSet
from splitnet.detection.synth import DetectionSet, make_detection_set
from splitnet.detection.train import mean_average_precision, to_input
from splitnet.models.tiny_detector import STRIDE, TinyDetector, decode, detection_loss, encode_targets


@pytest.fixture(scope="module")
def objects() -> ImageSet:
    rng = np.random.default_rng(0)
    return ImageSet(rng.integers(0, 256, (50, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 50))


def test_synthetic_set_is_seeded_and_sane(objects: ImageSet, tmp_path) -> None:
    a = make_detection_set(objects, 40, seed=3)
    b = make_detection_set(objects, 40, seed=3)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.boxes, b.boxes)
    assert a.images.shape == (40, 128, 128, 3) and a.offsets[-1] == len(a.labels) == len(a.boxes)
    assert (a.boxes >= 0).all() and (a.boxes <= 128).all() and (a.boxes[:, 2:] > a.boxes[:, :2]).all()
    counts = np.diff(a.offsets)
    assert (counts == 0).any() and (counts > 1).any()  # empty frames and crowded ones
    a.save(tmp_path / "d.npz")
    c = DetectionSet.load(tmp_path / "d.npz")
    assert np.array_equal(c.boxes, a.boxes) and np.array_equal(c.offsets, a.offsets)


def test_detector_splits_like_a_classifier() -> None:
    model = TinyDetector().eval()
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        ref = model(x)
        assert ref.shape == (2, 14, 128 // STRIDE, 128 // STRIDE)
        for node in ("layer1", "layer2"):
            head, tail = splitnet.split_model(model, node)
            assert torch.allclose(tail(head(x)), ref, atol=1e-5)


def test_decoding_perfect_outputs_gives_the_boxes_back() -> None:
    boxes = [torch.tensor([[16.0, 24.0, 56.0, 64.0], [70.0, 70.0, 118.0, 118.0]])]
    labels = [torch.tensor([3, 7])]
    t = encode_targets(boxes, labels, 10, (16, 16))
    logits = torch.where(t["heat"] == 1, torch.tensor(8.0), torch.tensor(-8.0))
    out = torch.cat([logits, t["reg"]], 1)
    det = decode(out, 10)[0]
    order = det["labels"].argsort()
    assert det["labels"][order].tolist() == [3, 7]
    assert torch.allclose(det["boxes"][order], boxes[0], atol=1e-4)


def test_training_loss_falls_and_map_of_truth_is_one(objects: ImageSet) -> None:
    data = make_detection_set(objects, 16, seed=1)
    model = TinyDetector()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    x = to_input(data.images)
    boxes = [torch.as_tensor(data.targets(i)[0]) for i in range(len(data))]
    labels = [torch.as_tensor(data.targets(i)[1]) for i in range(len(data))]
    losses = []
    for _ in range(15):
        out = model(x)
        loss = detection_loss(out, encode_targets(boxes, labels, 10, out.shape[2:]), 10)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]

    class Oracle(torch.nn.Module):
        num_classes = 10

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            i0 = self.start
            n = len(images)
            self.start += n
            t = encode_targets(boxes[i0 : i0 + n], labels[i0 : i0 + n], 10, (16, 16))
            return torch.cat([torch.where(t["heat"] == 1, 8.0, -8.0), t["reg"]], 1)

    oracle = Oracle()
    oracle.start = 0
    assert mean_average_precision(oracle, data, batch_size=8)["map_50"] == pytest.approx(1.0)


# ----------------------------------------------------------- split detection
from splitnet.bottleneck import BottleneckConfig, SlimmableBottleneck  # noqa: E402
from splitnet.checkpoint import SplitCheckpoint, SplitPoint  # noqa: E402
from splitnet.detection.filter import ObjectFilter, filter_report, train_object_filter  # noqa: E402
from splitnet.errors import ShapeError, UnknownModelError  # noqa: E402
from splitnet.models import create_model, detections_from_output, model_spec  # noqa: E402
from splitnet.rpc import convert  # noqa: E402


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory, objects: ImageSet) -> SplitCheckpoint:
    """An untrained detector with a layer2 bottleneck and an object filter, saved and loaded back."""
    torch.manual_seed(0)
    teacher = create_model("tinydet_synth")
    b = SlimmableBottleneck(BottleneckConfig(in_channels=64, widths=(0.5, 1.0)))
    b.update(force=True)
    head = splitnet.split_model(teacher, "layer2")[0]
    data = make_detection_set(objects, 48, seed=4)
    filt, _ = train_object_filter(head, data.subset(0, 32), data.subset(32, 48), epochs=1, batch_size=16)
    path = tmp_path_factory.mktemp("det") / "det.pt"
    SplitCheckpoint("tinydet_synth", teacher, {"layer2": SplitPoint("layer2", b.eval(), None, filt)}).save(path)
    return SplitCheckpoint.load(path)


def test_registry_knows_the_detector() -> None:
    spec = model_spec("tinydet_synth")
    assert spec.is_detector and spec.input_size == (128, 128) and not model_spec("resnet20_cifar").is_detector
    out = create_model("tinydet_synth")(torch.zeros(2, 3, 128, 128))
    dets = detections_from_output("tinydet_synth", out)
    assert len(dets) == 2 and dets[0]["boxes"].shape[1] == 4 and len(dets[0]["scores"]) == len(dets[0]["labels"])
    with pytest.raises(UnknownModelError, match="not a detector"):
        detections_from_output("resnet20_cifar", out)


def test_bottleneck_distillation_trains_on_a_detector(tmp_path, objects: ImageSet) -> None:
    from splitnet.training.bottleneck import BottleneckTrainConfig, train_bottleneck
    from splitnet.training.common import save_atomic

    teacher = create_model("tinydet_synth")
    save_atomic({"state_dict": teacher.state_dict()}, tmp_path / "t.pt")
    np.savez(tmp_path / "obj.npz", x=objects.images, y=objects.labels)
    cfg = BottleneckTrainConfig(teacher="tinydet_synth", weights=str(tmp_path / "t.pt"), split="layer2",
                                data=str(tmp_path / "obj.npz"), detection_images=48, holdout=8, epochs=3,
                                finetune_epochs=1, batch_size=8, widths=(0.5, 1.0), lr=5e-3)
    result = train_bottleneck(cfg, tmp_path / "split.pt")
    ckpt = SplitCheckpoint.load(tmp_path / "split.pt")
    assert ckpt.model_name == "tinydet_synth" and list(ckpt.splits) == ["layer2"]
    history = ckpt.meta["bottlenecks"]["layer2"]["history"]
    assert history[2]["loss"] < history[0]["loss"]  # stage 1 really fits the features
    assert {r["width"] for r in result["holdout"]} == {0.5, 1.0}
    assert all(r["bytes_mean"] > 0 and 0.0 <= r["map_50"] <= 1.0 for r in result["holdout"])


def test_object_filter_threshold_keeps_frames_with_objects(tiny_ckpt: SplitCheckpoint, objects: ImageSet) -> None:
    head = tiny_ckpt.teacher_split("layer2")[0]
    data = make_detection_set(objects, 60, seed=9)
    filt, report = train_object_filter(head, data.subset(0, 40), data.subset(40, 60), epochs=1, batch_size=16,
                                       max_object_frames_dropped=0.0)
    held = data.subset(40, 60)
    assert report.frames == 20 and report.objects == len(held.labels)
    # threshold set so that no frame with objects is dropped on the frames it was set on
    assert report.objects_missed == 0
    keep = filt.keep(head(to_input(held.images))).numpy()
    assert keep[held.has_objects()].all()
    assert filter_report(keep, held) == report
    with pytest.raises(ShapeError):
        filt(torch.zeros(1, 3, 16, 16))
    clone = ObjectFilter.from_state(filt.to_state())
    assert clone.config == filt.config


def test_device_sends_nothing_for_frames_the_filter_drops(tiny_ckpt: SplitCheckpoint, objects: ImageSet) -> None:
    from splitnet.pipeline import Action, DeviceSide

    point = tiny_ckpt.split("layer2")
    assert point.object_filter is not None
    data = make_detection_set(objects, 12, seed=11)
    device = DeviceSide(tiny_ckpt)
    keep = point.object_filter.keep(device.head("layer2")(device.preprocess(data.images))).tolist()
    payloads = device.encode(data.images, Action.parse("layer2/w0.5"), seq=5, use_filter=True)
    assert [p is not None for p in payloads] == keep
    unfiltered = device.encode(data.images, Action.parse("layer2/w0.5"), seq=5)
    for p, q in zip(payloads, unfiltered):
        if p is not None:
            assert p.data == q.data and p.seq == q.seq


def test_detections_cross_the_wire(tiny_ckpt: SplitCheckpoint) -> None:
    from splitnet.rpc.v1 import splitnet_pb2 as pb

    out = tiny_ckpt.teacher(torch.randn(2, 3, 128, 128))
    preds = convert.predictions_from_output("tinydet_synth", out)
    assert all(p.is_detection for p in preds) and len(preds[0].boxes) > 0
    msg = pb.InferResponse.FromString(convert.response(7, preds[0]).SerializeToString())
    assert msg.WhichOneof("result") == "detections"
    back = convert.prediction_from_response(msg)
    assert back.is_detection and len(back.boxes) == len(preds[0].boxes)
    for a, b in zip(back.boxes, preds[0].boxes):
        assert a.label == b.label and a.x1 == pytest.approx(b.x1, abs=1e-4) and a.score == pytest.approx(b.score)
    empty = convert.prediction_from_response(convert.response(8, convert.Prediction(is_detection=True)))
    assert empty.is_detection and empty.boxes == []


def test_detection_eval_reports_every_configuration(tiny_ckpt: SplitCheckpoint, objects: ImageSet) -> None:
    from splitnet.detection.evaluation import DetectionEvalOptions, evaluate_detection, format_detection_table

    data = make_detection_set(objects, 20, seed=12)
    report = evaluate_detection(tiny_ckpt, data, DetectionEvalOptions(jpeg_qualities=(50,), webp_qualities=(50,),
                                                                      batch_size=8, progress=False))
    kinds = [(c["kind"], c.get("width"), c["codec"]) for c in report["configs"]]
    assert kinds == [("local", None, ""), ("bottleneck", 0.5, "factorized"), ("bottleneck+filter", 0.5, "factorized"),
                     ("bottleneck", 1.0, "factorized"), ("bottleneck+filter", 1.0, "factorized"),
                     ("input", None, "jpeg"), ("input", None, "webp")]
    direct = mean_average_precision(tiny_ckpt.teacher, data, batch_size=8)
    assert report["teacher_map_50"] == pytest.approx(direct["map_50"])
    for c in report["configs"][1:]:
        assert c["bytes_mean"] > 0
    filtered = [c for c in report["configs"] if c["kind"] == "bottleneck+filter"]
    assert all(c["objects"] == len(data.labels) for c in filtered)
    assert "local (unsplit)" in format_detection_table(report)


def test_server_batches_detector_tails(tiny_ckpt: SplitCheckpoint, objects: ImageSet) -> None:
    from edge_server.batcher import MicroBatcher
    from splitnet.pipeline import Action, DeviceSide, ServerSide

    data = make_detection_set(objects, 6, seed=13)
    payloads = DeviceSide(tiny_ckpt).encode(data.images, Action.parse("layer2/w1"), seq=0)
    server = ServerSide(tiny_ckpt)
    alone = [convert.predictions_from_output("tinydet_synth", server.infer([p]))[0] for p in payloads]
    batcher = MicroBatcher(server, max_batch=8, max_wait_ms=200.0)
    try:
        futures = [batcher.submit(p) for p in payloads]
        answers = [f.result(timeout=30) for f in futures]
    finally:
        batcher.close()
    assert max(t.batch_size for _, t in answers) > 1  # several frames ran through one tail call
    for (pred, _), ref in zip(answers, alone):
        assert pred.is_detection and len(pred.boxes) == len(ref.boxes)
        for a, b in zip(pred.boxes, ref.boxes):
            assert a.label == b.label and a.x1 == pytest.approx(b.x1, abs=1e-3) and a.score == pytest.approx(
                b.score, abs=1e-4)


def test_filter_threshold_drops_no_object_frame_it_need_not() -> None:
    from splitnet.detection.filter import choose_threshold

    has = np.array([False, False, True, True, True, True])
    # Perfectly separated: every empty frame can go without dropping any frame with objects,
    # even though 1 of 4 object frames would be allowed.
    t = choose_threshold(np.array([0.1, 0.2, 0.6, 0.7, 0.8, 0.9]), has, 0.25)
    assert 0.2 < t <= 0.6 and t == pytest.approx(0.4)
    # Overlap: the one allowed object frame (0.15) is dropped to get rid of the empty frame at 0.2.
    t = choose_threshold(np.array([0.1, 0.2, 0.15, 0.7, 0.8, 0.9]), has, 0.25)
    assert 0.2 < t <= 0.7
    # Nothing allowed: only empty frames below every object frame go.
    t = choose_threshold(np.array([0.1, 0.5, 0.3, 0.7, 0.8, 0.9]), has, 0.0)
    assert 0.1 < t <= 0.3
