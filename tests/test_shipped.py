"""The checkpoint, demo sample and policies that ship inside the package."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from splitnet.checkpoint import DEMO_DATA, SHIPPED_CHECKPOINT, SplitCheckpoint
from splitnet.data import load_npz
from splitnet.evaluation import EvalOptions, evaluate, summarize
from splitnet.models import file_sha256
from tests.conftest import CIFAR_VAL, SHARED, needs_shared

SHIPPED_PROFILE_TRAIN = Path(__file__).resolve().parents[1] / "policies" / "assets" / "profile_train.json"
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


@pytest.mark.slow
@needs_shared(SHARED / "traces")
def test_shipped_profile_is_a_regime_where_the_choice_matters() -> None:
    """On the training traces the oracle uses at least three actions, each for at least 10 % of frames."""
    from policies.baselines import baseline
    from policies.profile import Profile
    from policies.simulate import simulate
    from policies.trace_sets import load_split

    profile = Profile.load()
    assert profile.checkpoint_sha256 == MANIFEST["checkpoint"]["sha256"]
    assert Profile.load(SHIPPED_PROFILE_TRAIN).scenario == profile.scenario
    report, _ = simulate(profile, load_split("train"), {"oracle": baseline("oracle", profile)}, frames=1000)
    shares = report["policies"]["oracle"]["actions"]
    assert sum(share >= 0.10 for share in shares.values()) >= 3, shares


def test_shipped_policies_load_and_fit_the_shipped_profile() -> None:
    from policies.profile import Profile
    from policies.rl import load_policy

    names = Profile.load().names
    split = json.loads((Path(__file__).resolve().parents[1] / "policies" / "assets" / "trace_split.json").read_text())
    for algo in ("ppo", "dqn"):
        policy = load_policy(algo)
        policy.check_actions(names)
        trained_on = {next((f for f in split["train"] + split["eval"] if t.endswith(f)), t)
                      for t in policy.meta["traces"]}
        assert trained_on == set(split["train"])  # the training traces, all of them, nothing else
