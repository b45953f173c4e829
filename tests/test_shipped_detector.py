"""The split detector and the detection demo scenes that ship inside the package."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from splitnet.checkpoint import DETECTION_DEMO_DATA, SHIPPED_DETECTOR, SplitCheckpoint
from splitnet.data import load_npz
from splitnet.detection.evaluation import DetectionEvalOptions, evaluate_detection, summarize_detection
from splitnet.detection.synth import DetectionSet, make_detection_set
from splitnet.models import file_sha256
from tests.conftest import CIFAR_VAL, needs_shared

MANIFEST = json.loads((SHIPPED_DETECTOR.parent / "MANIFEST.json").read_text())["detector"]


@pytest.fixture(scope="module")
def detector() -> SplitCheckpoint:
    return SplitCheckpoint.load(SHIPPED_DETECTOR)


def test_manifest_matches_the_files(detector: SplitCheckpoint) -> None:
    assert file_sha256(SHIPPED_DETECTOR) == MANIFEST["checkpoint"]["sha256"] == detector.sha256
    assert file_sha256(DETECTION_DEMO_DATA) == MANIFEST["demo_data"]["sha256"]
    assert MANIFEST["checkpoint"]["detector_command"].startswith("splitnet")
    for node, point in detector.splits.items():
        assert f"--split {node}" in MANIFEST["checkpoint"]["splits"][node]["command"]
        if point.object_filter is not None:
            assert f"--split {node}" in MANIFEST["checkpoint"]["splits"][node]["filter_command"]


def test_shipped_detector_shape(detector: SplitCheckpoint) -> None:
    """Teacher cuts at layer2 and layer3, each with an object filter; a light encoder at layer1 (no filter: the
    filter reads teacher features the light split's device never computes) under the 15 % device budget."""
    from splitnet.compute import ComputeModel
    from splitnet.pipeline import Action

    assert detector.model_name == "tinydet_synth" and detector.spec.is_detector
    assert sorted(detector.splits) == ["layer1", "layer2", "layer3"]
    for node, point in detector.splits.items():
        assert point.bottleneck.widths == (0.25, 0.5, 0.75, 1.0)
        assert point.tail_state is not None
        assert point.bottleneck.config.is_light == (node == "layer1")
        assert (point.object_filter is None) == (node == "layer1")
    compute = ComputeModel(detector)
    shares = [compute.cost(Action("bottleneck", "layer1", w, "factorized")).device_share for w in (0.25, 0.5, 0.75, 1)]
    assert shares == sorted(shares) and shares[-1] <= 0.15, shares


def test_the_object_filter_is_refused_at_a_light_split() -> None:
    from splitnet.errors import SplitnetError
    from splitnet.training.filter import FilterTrainConfig, train_filter

    with pytest.raises(SplitnetError, match="light encoder"):
        train_filter(FilterTrainConfig(checkpoint=str(SHIPPED_DETECTOR), split="layer1"))


@needs_shared(CIFAR_VAL)
def test_demo_scenes_are_validation_scenes_as_the_manifest_says() -> None:
    """The demo scenes are rebuilt exactly from validation images with the recorded seed."""
    demo = DetectionSet.load(DETECTION_DEMO_DATA)
    entry = MANIFEST["demo_data"]
    rebuilt = make_detection_set(load_npz(CIFAR_VAL), entry["scenes"], seed=entry["seed"])
    assert np.array_equal(rebuilt.images, demo.images) and np.array_equal(rebuilt.boxes, demo.boxes)
    assert np.array_equal(rebuilt.labels, demo.labels)


REPORT = json.loads((Path(__file__).resolve().parents[1] / "reports" / "eval_tinydet_synth.json").read_text())


def test_committed_report_is_of_the_shipped_detector() -> None:
    assert REPORT["checkpoint_sha256"] == MANIFEST["checkpoint"]["sha256"] and REPORT["n_images"] == 1000
    assert {"command", "date", "machine", "commit"} <= set(REPORT)
    for verdict in [REPORT["summary"]] + REPORT["frontier"]:
        again = summarize_detection(REPORT["configs"], REPORT["teacher_map_50"], verdict["within_pt"],
                                    verdict["device_budget"])
        assert again == verdict


@pytest.mark.slow
@needs_shared(CIFAR_VAL)
def test_split_detector_claims_on_validation_scenes(detector: SplitCheckpoint) -> None:
    """On 500 of the report's 1,000 validation scenes: the teacher-cut splits leave 59-95 % of the MACs on the
    device; with that allowed (budget 100 %), the smallest bottleneck within 2 mAP@0.5 points of the unsplit
    detector needs fewer bytes than the smallest JPEG/WebP within 2 points by at least 0.8x the report's
    ratio (margin for the half-size subset); the object filter drops at least 95 % of the empty frames and misses
    at most 1 % of the objects (the report: all 176 empty frames at layer2, 3 of 1,673 objects)."""
    committed = next(f for f in REPORT["frontier"] if f["device_budget"] == 1.0)
    scenes = make_detection_set(load_npz(CIFAR_VAL), 500, size=detector.spec.input_size[0], seed=1)
    qualities = (50, 60, 70, 75, 80)
    report = evaluate_detection(detector, scenes, DetectionEvalOptions(jpeg_qualities=qualities,
                                                                       webp_qualities=qualities,
                                                                       device_budget=1.0, progress=False))
    assert report["teacher_map_50"] == pytest.approx(REPORT["teacher_map_50"], abs=0.03)
    s = report["summary"]
    assert s["smallest_bottleneck"] is not None and s["smallest_image"] is not None
    assert s["image_to_bottleneck_bytes_ratio"] >= 0.8 * committed["image_to_bottleneck_bytes_ratio"], s
    learned = [c for c in report["configs"] if c["kind"].startswith("bottleneck")]
    assert all(0.59 <= c["device_share"] <= 0.96 for c in learned if c["split"] != "layer1")
    light = {c["width"]: c for c in learned if c["split"] == "layer1"}
    committed_light = {c["width"]: c for c in REPORT["configs"] if c["kind"].startswith("bottleneck")
                       and c["split"] == "layer1"}
    assert sorted(light) == sorted(committed_light) == [0.25, 0.5, 0.75, 1.0]
    for w, row in light.items():  # the light encoder's rows as committed, within 3 pts / 5 % on half the scenes
        assert row["device_share"] <= 0.15
        assert row["map_50"] == pytest.approx(committed_light[w]["map_50"], abs=0.03), (w, row)
        assert row["bytes_mean"] == pytest.approx(committed_light[w]["bytes_mean"], rel=0.05), (w, row)
    for row in (c for c in report["configs"] if c["kind"] == "bottleneck+filter"):
        assert row["empty_frames_filtered"] >= 0.95 * row["empty_frames"]
        assert row["objects_missed"] <= 0.01 * row["objects"]
