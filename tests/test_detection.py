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
