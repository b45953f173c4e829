"""Splittable torchvision detectors: tail(head(x)) equals the unsplit model, one tensor crosses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from splitnet.bottleneck import BottleneckConfig, SlimmableBottleneck
from splitnet.errors import ShapeError, UnknownModelError, UnknownSplitPointError
from splitnet.models.tv_detection import (
    DETECTOR_SPLITS,
    DetectorSplit,
    create_detector,
    detector_split_points,
    split_detector,
)

SSD = "ssdlite320_mobilenet_v3_large"
RCNN = "fasterrcnn_mobilenet_v3_large_320_fpn"
# Random weights give tiny scores: keep every box so the comparison is not vacuous.
LOW_THRESH = {SSD: {"score_thresh": 0.0}, RCNN: {"box_score_thresh": 0.0, "rpn_score_thresh": 0.0}}
EXPECTED_SHAPES = {"features.2": (24, 80, 80), "features.4": (40, 40, 40), "features.7": (80, 20, 20)}


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {name: create_detector(name, **LOW_THRESH[name]) for name in (SSD, RCNN)}


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(2, 3, 240, 320)


def _assert_same_detections(got: list[dict], want: list[dict]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert len(w["boxes"]) > 0
        assert g["labels"].dtype == torch.int64
        torch.testing.assert_close(g["labels"], w["labels"], rtol=0, atol=0)
        torch.testing.assert_close(g["boxes"], w["boxes"], rtol=0, atol=1e-4)
        torch.testing.assert_close(g["scores"], w["scores"], rtol=0, atol=1e-4)


def test_every_model_has_recommended_splits() -> None:
    assert set(DETECTOR_SPLITS) == {SSD, RCNN}
    assert all(len(nodes) >= 2 for nodes in DETECTOR_SPLITS.values())


@pytest.mark.parametrize("name", [SSD, RCNN])
def test_tail_of_head_equals_model(models: dict[str, nn.Module], images: torch.Tensor, name: str) -> None:
    model = models[name]
    sizes = [tuple(img.shape[-2:]) for img in images]
    with torch.no_grad():
        reference = model(list(images))
        for node in DETECTOR_SPLITS[name]:
            split = split_detector(model, name, node)
            features = split.head(images)
            assert isinstance(features, torch.Tensor)
            assert features.shape == (2, *EXPECTED_SHAPES[node]) == (2, *split.feature_shape)
            _assert_same_detections(split.tail(features, sizes), reference)
            # Stronger than near-tied random-weight scores: every multi-scale map matches the model's.
            maps = model.backbone(model.transform(list(images))[0].tensors)
            for got, want in zip(split.tail.rest(features).values(), maps.values(), strict=True):
                torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_non_square_fixed_size_is_padded_like_the_model(images: torch.Tensor) -> None:
    model = create_detector(RCNN, fixed_size=(304, 200), **LOW_THRESH[RCNN])  # (W, H); pads to 320x224
    split = split_detector(model, RCNN, "features.4")
    assert split.input_size == (200, 304) and split.feature_shape == (40, 28, 40)
    with torch.no_grad():
        reference = model(list(images))
        _assert_same_detections(split.tail(split.head(images), [(240, 320)] * 2), reference)


@pytest.mark.parametrize("name", [SSD, RCNN])
def test_split_records_fixed_input_and_feature_shape(models: dict[str, nn.Module], name: str) -> None:
    split = split_detector(models[name], name, "features.4")
    assert isinstance(split, DetectorSplit)
    assert split.node == "features.4"
    assert split.input_size == (320, 320)
    assert split.feature_channels == 40 and split.feature_shape == (40, 40, 40)
    with torch.no_grad():  # any original size gives the same feature shape
        assert split.head(torch.rand(1, 3, 100, 150)).shape == (1, 40, 40, 40)


def test_boxes_are_in_original_image_pixels(models: dict[str, nn.Module]) -> None:
    split = split_detector(models[SSD], SSD, "features.4")
    x = torch.rand(1, 3, 64, 200)
    with torch.no_grad():
        boxes = split.tail(split.head(x), [(64, 200)])[0]["boxes"]
    assert boxes[:, [0, 2]].max() <= 200 + 1e-3 and boxes[:, [1, 3]].max() <= 64 + 1e-3
    assert boxes[:, [0, 2]].max() > 100  # in 200-pixel-wide coordinates, not 320 or normalized


def test_split_points_stop_before_multiscale_features(models: dict[str, nn.Module]) -> None:
    ssd_points = detector_split_points(models[SSD], SSD)
    rcnn_points = detector_split_points(models[RCNN], RCNN)
    assert ssd_points == [f"features.{i}" for i in range(13)]  # block 13 feeds the first SSD map
    assert rcnn_points == [f"features.{i}" for i in range(14)]  # block 13 is the first FPN input
    for name, points in ((SSD, ssd_points), (RCNN, rcnn_points)):
        assert set(DETECTOR_SPLITS[name]) <= set(points)


@pytest.mark.parametrize(("name", "node"), [(SSD, "features.13"), (SSD, "features.15"), (RCNN, "features.14"),
                                            (RCNN, "features.16"), (RCNN, "fpn"), (SSD, "layer1"),
                                            (RCNN, "features.99")])
def test_invalid_nodes_are_rejected(models: dict[str, nn.Module], name: str, node: str) -> None:
    with pytest.raises(UnknownSplitPointError, match="valid nodes: features.0, features.1"):
        split_detector(models[name], name, node)


def test_unknown_model_is_rejected(models: dict[str, nn.Module]) -> None:
    with pytest.raises(UnknownModelError):
        create_detector("yolo_v42")
    with pytest.raises(UnknownModelError):
        split_detector(models[SSD], "yolo_v42", "features.4")


def test_tail_rejects_wrong_shapes(models: dict[str, nn.Module]) -> None:
    split = split_detector(models[RCNN], RCNN, "features.7")
    with pytest.raises(ShapeError):
        split.tail(torch.zeros(1, 79, 20, 20), [(240, 320)])
    with pytest.raises(ShapeError):
        split.tail(torch.zeros(2, 80, 20, 20), [(240, 320)])
    with pytest.raises(ShapeError):
        split.head(torch.zeros(3, 240, 320))


@pytest.mark.parametrize("name", [SSD, RCNN])
def test_bottleneck_between_head_and_tail(models: dict[str, nn.Module], images: torch.Tensor, name: str) -> None:
    split = split_detector(models[name], name, "features.7")
    torch.manual_seed(0)
    # Block outputs are linear projections (and features.0 a hardswish): features go negative, so no output ReLU.
    bottleneck = SlimmableBottleneck(BottleneckConfig(in_channels=split.feature_channels, latent_channels=8,
                                                      hidden_channels=16, out_relu=False))
    bottleneck.eval()
    bottleneck.update(force=True)
    sizes = [tuple(img.shape[-2:]) for img in images]
    with torch.no_grad():
        features = split.head(images)
        assert features.min() < 0
        coded = bottleneck.compress(features)
        assert all(isinstance(s, bytes) for s in coded["strings"][0])
        restored = bottleneck.decompress(coded["strings"], coded["shape"])["x_hat"]
        assert restored.shape == features.shape
        detections = split.tail(restored, sizes)
    assert len(detections) == 2
    for det in detections:
        assert det["boxes"].ndim == 2 and det["boxes"].shape[1] == 4
        assert det["scores"].shape == det["labels"].shape == det["boxes"].shape[:1]
        assert torch.isfinite(det["boxes"]).all() and torch.isfinite(det["scores"]).all()
