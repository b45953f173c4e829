"""The checkpoint, demo sample and policies that ship inside the package."""

from __future__ import annotations

import json

import numpy as np
import pytest

from splitnet.checkpoint import DEMO_DATA, SHIPPED_CHECKPOINT, SplitCheckpoint
from splitnet.data import load_npz
from splitnet.evaluation import EvalOptions, evaluate, summarize
from splitnet.models import file_sha256
from tests.conftest import CIFAR_VAL, needs_shared

MANIFEST = json.loads((SHIPPED_CHECKPOINT.parent / "MANIFEST.json").read_text())


@pytest.fixture(scope="module")
def shipped() -> SplitCheckpoint:
    return SplitCheckpoint.load()


def test_manifest_matches_the_files(shipped: SplitCheckpoint) -> None:
    assert file_sha256(SHIPPED_CHECKPOINT) == MANIFEST["checkpoint"]["sha256"] == shipped.sha256
    assert file_sha256(DEMO_DATA) == MANIFEST["demo_data"]["sha256"]
    for node, entry in MANIFEST["checkpoint"]["splits"].items():
        assert entry["command"].startswith("splitnet") and f"--split {node}" in entry["command"]
    assert MANIFEST["checkpoint"]["teacher"]["command"].startswith("splitnet train teacher")


def test_shipped_checkpoint_shape(shipped: SplitCheckpoint) -> None:
    assert shipped.model_name == "resnet56_cifar"
    assert list(shipped.splits) == ["layer1", "layer2", "layer3"]
    for point in shipped.splits.values():
        assert point.bottleneck.widths == (0.25, 0.5, 0.75, 1.0)
        assert point.tail_state is not None


def test_demo_sample() -> None:
    data = load_npz(DEMO_DATA)
    assert data.images.shape == (300, 32, 32, 3) and np.bincount(data.labels).tolist() == [30] * 10


@pytest.mark.slow
def test_rate_accuracy_on_the_demo_sample(shipped: SplitCheckpoint) -> None:
    report = evaluate(shipped, load_npz(DEMO_DATA), EvalOptions(jpeg_qualities=(), webp_qualities=(), png=False,
                                                                 feature_codecs=(), timing_frames=2, progress=False))
    assert report["teacher_top1"] >= 0.85
    for node in shipped.splits:
        rows = [c for c in report["configs"] if c.get("split") == node]
        sizes = [c["bytes_mean"] for c in rows]
        assert sizes == sorted(sizes)  # wider means more bytes
        assert rows[-1]["top1"] >= report["teacher_top1"] - 0.10


@pytest.mark.slow
@needs_shared(CIFAR_VAL)
def test_teacher_and_bytes_claims_on_validation_images(shipped: SplitCheckpoint) -> None:
    """The shipped teacher scores >= 88 % on the validation split; and on its first 1000 images the
    smallest bottleneck within 1 pt of the teacher needs at most 1/8 of the bytes of the smallest
    JPEG/WebP within 1 pt (the full-set figure comes from benchmarks/rate_accuracy.py)."""
    from splitnet.training.common import top1_accuracy

    val = load_npz(CIFAR_VAL)
    assert top1_accuracy(shipped.teacher, val, shipped.spec) >= 0.88
    report = evaluate(shipped, val.subset(1000), EvalOptions(png=False, feature_codecs=(), timing_frames=2,
                                                             progress=False))
    s = summarize(report["configs"], report["teacher_top1"], 1.0)
    assert s["smallest_bottleneck"] is not None and s["smallest_image"] is not None
    assert s["image_to_bottleneck_bytes_ratio"] >= 8
