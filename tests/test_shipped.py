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

SHIPPED_PROFILE = Path(__file__).resolve().parents[1] / "policies" / "assets" / "profile.json"
SHIPPED_PROFILE_TRAIN = SHIPPED_PROFILE.with_name("profile_train.json")
DEADLINE_MS = 100.0  # the shipped profile's deadline (scripts/train_shipped_policies.sh, reports/simulate_eval.json)
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
    """Light encoders (the device runs no teacher layer) rebuilding the stem's output (relu) and layer2's,
    beside the teacher-cut splits at layer1 and layer3; every light width keeps the device within 10 % of the
    model's MACs, and compute grows with width."""
    from splitnet.compute import ComputeModel
    from splitnet.pipeline import Action

    assert shipped.model_name == "resnet56_cifar"
    assert list(shipped.splits) == ["layer1", "layer2", "layer3", "relu"]
    for point in shipped.splits.values():
        assert point.bottleneck.widths == (0.25, 0.5, 0.75, 1.0)
        assert point.tail_state is not None
    assert all(shipped.splits[n].bottleneck.config.is_light for n in ("relu", "layer2"))
    assert not any(shipped.splits[n].bottleneck.config.is_light for n in ("layer1", "layer3"))
    compute = ComputeModel(shipped)
    for node in ("relu", "layer2"):
        shares = [compute.cost(Action("bottleneck", node, w, "factorized")).device_share for w in (0.25, 0.5, 0.75, 1)]
        assert shares == sorted(shares) and shares[-1] <= 0.10, (node, shares)


def test_demo_sample() -> None:
    data = load_npz(DEMO_DATA)
    assert data.images.shape == (300, 32, 32, 3) and np.bincount(data.labels).tolist() == [30] * 10


@pytest.mark.slow
def test_rate_accuracy_on_the_demo_sample(shipped: SplitCheckpoint) -> None:
    report = evaluate(shipped, load_npz(DEMO_DATA), EvalOptions(jpeg_qualities=(), webp_qualities=(), png=False,
                                                                 feature_codecs=(), timing_frames=2, progress=False))
    # the committed report's full-split figure, less three standard errors of a 300-image sample (~1.8 points each)
    se = (REPORT["teacher_top1"] * (1 - REPORT["teacher_top1"]) / len(load_npz(DEMO_DATA).labels)) ** 0.5
    assert report["teacher_top1"] >= REPORT["teacher_top1"] - 3 * se, (report["teacher_top1"], REPORT["teacher_top1"])
    for node in ("layer1", "layer3"):  # the teacher-cut splits: wider sends more and loses less
        rows = [c for c in report["configs"] if c.get("split") == node]
        sizes = [c["bytes_mean"] for c in rows]
        assert sizes == sorted(sizes)
        assert rows[-1]["top1"] >= report["teacher_top1"] - 0.05
    for node in ("relu", "layer2"):
        light = [c for c in report["configs"] if c.get("split") == node]
        assert [c["width"] for c in light] == [0.25, 0.5, 0.75, 1.0] and all(c["encoder"] == "light" for c in light)


REPORT = json.loads((Path(__file__).resolve().parents[1] / "reports" / "eval_resnet56_cifar.json").read_text())


def test_committed_report_is_of_the_shipped_checkpoint_and_its_verdicts_follow_from_its_rows() -> None:
    """The README's rate-accuracy figures come from this report: it measured the shipped checkpoint on the
    whole validation split, and its verdicts (every budget) are what ``summarize`` gives for its rows."""
    assert REPORT["checkpoint_sha256"] == MANIFEST["checkpoint"]["sha256"]
    assert REPORT["n_images"] == 5000 and REPORT["data"].endswith("val.npz")
    assert {"command", "date", "machine", "commit"} <= set(REPORT)
    for verdict in [REPORT["summary"]] + REPORT["frontier"]:
        again = summarize(REPORT["configs"], REPORT["teacher_top1"], verdict["within_pt"], verdict["device_budget"])
        assert again == verdict


@pytest.mark.slow
@needs_shared(CIFAR_VAL)
def test_report_rows_reproduce_on_validation_images(shipped: SplitCheckpoint) -> None:
    """Re-measured now on all 5,000 validation images: the teacher, every light-encoder width, and the image
    settings the verdicts name give the report's top-1 (within 0.2 pt) and bytes (within 1 %). Every light
    width keeps the device at or under 10 % of the model's MACs, as the manifest says."""
    val = load_npz(CIFAR_VAL)
    named = {(c["codec"], c.get("quality")) for v in [REPORT["summary"]] + REPORT["frontier"]
             for c in [v["smallest_image"]] if c}
    report = evaluate(shipped, val, EvalOptions(jpeg_qualities=sorted(q for f, q in named if f == "jpeg"),
                                                webp_qualities=sorted(q for f, q in named if f == "webp"),
                                                png=False, feature_codecs=(), timing_frames=2, progress=False))
    assert report["teacher_top1"] == pytest.approx(REPORT["teacher_top1"], abs=0.002)

    def key(c: dict) -> tuple:
        return (c["kind"], c.get("split"), c.get("width"), c["codec"], c.get("quality"))

    committed = {key(c): c for c in REPORT["configs"]}
    light = [c for c in report["configs"] if c.get("encoder") == "light"]
    assert light, "the shipped checkpoint has a light encoder"
    for row in light + [c for c in report["configs"] if c["kind"] == "input"]:
        old = committed[key(row)]
        assert row["top1"] == pytest.approx(old["top1"], abs=0.002), key(row)
        assert row["bytes_mean"] == pytest.approx(old["bytes_mean"], rel=0.01), key(row)
    assert all(c["device_share"] <= 0.10 for c in light)


@pytest.mark.slow
@needs_shared(SHARED / "traces")
def test_shipped_profile_is_a_regime_where_the_choice_matters() -> None:
    """The regime of issue 12: the device cannot run the model in time (local >= 1.5x the deadline), and on the
    training traces the oracle uses several actions for at least 10 % of frames each (the README's 5 on the whole
    traces, where `local` sits at 10 %; 4 on these first 1,000 frames of each, asserted: the issue asks for 3) and
    learned-split actions (light encoders, bottlenecks) for a real share: the README's 27 % (whole traces; 27.6 %
    here), asserted as at least 22 % (5 points for the subset). The issue's target of half the frames is not met
    and the README says so. The profile is of the shipped checkpoint, and its timings grow with width."""
    from policies.agents.baselines import baseline
    from policies.network.trace_sets import load_split
    from policies.simulation.profile import Profile
    from policies.simulation.simulate import simulate

    profile = Profile.load()
    raw = json.loads(SHIPPED_PROFILE.read_text())
    shipped_sha = MANIFEST["checkpoint"]["sha256"]
    assert profile.checkpoint_sha256 == MANIFEST["policy_profile"]["checkpoint_sha256"] == shipped_sha
    assert Profile.load(SHIPPED_PROFILE_TRAIN).scenario == profile.scenario
    assert raw["width_order_violations"] == [] and raw["measured_on"]["timing_rounds"] >= 5
    assert profile.device_ms(0) >= 1.5 * DEADLINE_MS, profile.device_ms(0)
    report, _ = simulate(profile, load_split("train"), {"oracle": baseline("oracle", profile)}, frames=1000,
                         deadline_ms=DEADLINE_MS)
    shares = report["policies"]["oracle"]["actions"]
    assert sum(share >= 0.10 for share in shares.values()) >= 4, shares
    assert sum(share for name, share in shares.items() if "/w" in name) >= 0.22, shares


def test_shipped_profile_charges_the_measured_rpc_path() -> None:
    """The scenario's per-call overhead and server slowdown are the committed ``benchmarks.rpc_path`` report's
    (to the script's rounding), measured against this profile's checkpoint."""
    from policies.simulation.profile import Profile

    report = json.loads((Path(__file__).resolve().parents[1] / "reports" / "rpc_path.json").read_text())
    scenario = Profile.load().scenario
    assert report["profile_checkpoint_sha256"] == MANIFEST["policy_profile"]["checkpoint_sha256"]
    assert scenario.request_overhead_ms == pytest.approx(report["request_overhead_ms"], abs=0.05)
    assert scenario.server_speed == pytest.approx(report["server_slowdown"], abs=0.005)


def test_shipped_policies_load_and_fit_the_shipped_profile() -> None:
    from policies.agents.rl import load_policy
    from policies.simulation.profile import Profile

    names = Profile.load().names
    split = json.loads((Path(__file__).resolve().parents[1] / "policies" / "assets" / "trace_split.json").read_text())
    for algo in ("ppo", "dqn"):
        policy = load_policy(algo)
        policy.check_actions(names)
        trained_on = {next((f for f in split["train"] + split["eval"] if t.endswith(f)), t)
                      for t in policy.meta["traces"]}
        assert trained_on == set(split["train"])  # the training traces, all of them, nothing else


@pytest.mark.slow
@needs_shared(SHARED / "traces")
def test_shipped_policies_beat_greedy_and_robust_mpc_on_the_evaluation_traces() -> None:
    """The README's policy claims: PPO and DQN earn a better mean reward than both heuristics on the evaluation
    traces (first 1,500 frames of each here, against the whole traces in ``reports/simulate_eval.json``, where
    the smallest gap is 0.106 in reward: DQN against robust_mpc; 0.22 on this subset), and their mean latency is
    within 1.10x the oracle's (the report: PPO 1.032x, DQN 1.096x; this subset: PPO 1.00x, DQN 1.02x, asserted
    within 1.10x). Not asserted, as the README says NOT met: misses at most half of static_best's, which the oracle
    itself does not reach in this regime."""
    from policies.agents.factory import make_policy
    from policies.network.trace_sets import load_split
    from policies.simulation.profile import Profile
    from policies.simulation.simulate import simulate

    profile = Profile.load()
    names = ("greedy", "robust_mpc", "oracle", "ppo", "dqn")
    report, _ = simulate(profile, load_split("eval"), {n: make_policy(n, profile) for n in names}, frames=1500)
    pol = report["policies"]
    for learned in ("ppo", "dqn"):
        assert pol[learned]["reward_mean"] > max(pol["greedy"]["reward_mean"], pol["robust_mpc"]["reward_mean"]), pol
        assert pol[learned]["latency_ms_mean"] <= 1.10 * pol["oracle"]["latency_ms_mean"], pol
    committed = json.loads((Path(__file__).resolve().parents[1] / "reports" / "simulate_eval.json").read_text())
    p = committed["policies"]
    for learned in ("ppo", "dqn"):  # the committed report says the same on the whole traces
        assert p[learned]["reward_mean"] > max(p["greedy"]["reward_mean"], p["robust_mpc"]["reward_mean"])
        assert p[learned]["latency_ms_mean"] <= 1.10 * p["oracle"]["latency_ms_mean"]
