from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from splitnet.checkpoint import SplitCheckpoint
from splitnet.data import ImageSet
from splitnet.evaluation import EvalOptions, evaluate, format_table, plot_rate_accuracy, summarize

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def small_set() -> ImageSet:
    rng = np.random.default_rng(1)
    return ImageSet(rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 12), (), "random")


@pytest.fixture(scope="module")
def report(tiny_checkpoint: SplitCheckpoint, small_set: ImageSet) -> dict:
    opts = EvalOptions(jpeg_qualities=(10, 90), webp_qualities=(50,), timing_frames=3, batch_size=5, progress=False)
    return evaluate(tiny_checkpoint, small_set, opts)


def test_report_follows_the_design_contract(report: dict, tiny_checkpoint: SplitCheckpoint) -> None:
    assert {"model", "checkpoint_sha256", "data", "n_images", "teacher_top1", "configs"} <= set(report)
    assert report["checkpoint_sha256"] == tiny_checkpoint.sha256 and report["n_images"] == 12
    kinds = {c["kind"] for c in report["configs"]}
    assert kinds == {"local", "local_label", "bottleneck", "features", "input"}
    for c in report["configs"]:
        assert {"kind", "top1", "bytes_mean", "device_macs", "server_macs", "device_params", "device_share"} <= set(c)
        assert 0.0 <= c["top1"] <= 1.0
        assert c["device_share"] == pytest.approx(c["device_macs"] / report["model_macs"])
        if c["kind"] == "bottleneck":
            assert {"codec", "split", "width", "bytes_p95", "encode_ms", "decode_ms"} <= set(c)
            assert c["bytes_mean"] > 0
        if c["kind"] == "input" and c["codec"] != "png":
            assert "quality" in c
    n_bottleneck = sum(c["kind"] == "bottleneck" for c in report["configs"])
    assert n_bottleneck == 2 * 4  # two splits x four widths
    local, label = report["configs"][:2]
    assert local["kind"] == "local" and local["top1"] == report["teacher_top1"] and local["bytes_mean"] == 0
    assert label["kind"] == "local_label" and label["top1"] == local["top1"] and label["bytes_mean"] == 1
    assert local["device_share"] == label["device_share"] == 1.0 and local["server_macs"] == 0
    assert [f["device_budget"] for f in report["frontier"]] == [0.05, 0.10, 0.20, 1.0]
    json.dumps(report)  # serializable as is


def test_compute_of_each_kind_of_action(report: dict) -> None:
    """A light encoder (layer1 of the tiny checkpoint) runs no part of the teacher on the device;
    a bottleneck on layer2's features runs the teacher's head; images cost the device no MACs."""
    rows = {(c["kind"], c.get("split"), c.get("width"), c["codec"]): c for c in report["configs"]}
    light = [c for c in report["configs"] if c["kind"] == "bottleneck" and c["split"] == "layer1"]
    on_features = [c for c in report["configs"] if c["kind"] == "bottleneck" and c["split"] == "layer2"]
    features = rows[("features", "layer2", None, "int8+zstd")]
    assert all(c["encoder"] == "light" for c in light) and all(c["encoder"] == "features" for c in on_features)
    # device MACs grow with the width and stay a few percent of ResNet-20's for the light encoder
    assert [c["device_macs"] for c in light] == sorted(c["device_macs"] for c in light)
    assert light[0]["device_macs"] < light[-1]["device_macs"] and light[-1]["device_share"] < 0.05
    # the head of layer2 is most of the model; the encoder adds to it
    assert all(c["device_macs"] > features["device_macs"] > 0.6 * report["model_macs"] for c in on_features)
    # the server runs everything after the cut
    assert features["device_macs"] + features["server_macs"] == pytest.approx(report["model_macs"])
    for c in report["configs"]:
        if c["kind"] == "input":
            assert c["device_macs"] == 0 and c["server_macs"] == report["model_macs"] and c["device_params"] == 0


def test_png_through_the_model_equals_local(report: dict) -> None:
    png = next(c for c in report["configs"] if c["codec"] == "png")
    assert png["top1"] == report["teacher_top1"]


def test_summary_picks_the_smallest_within_tolerance() -> None:
    configs = [
        {"kind": "bottleneck", "codec": "factorized", "split": "a", "width": 1.0, "top1": 0.90, "bytes_mean": 100},
        {"kind": "bottleneck", "codec": "factorized", "split": "a", "width": 0.5, "top1": 0.895, "bytes_mean": 50},
        {"kind": "bottleneck", "codec": "factorized", "split": "a", "width": 0.25, "top1": 0.85, "bytes_mean": 20},
        {"kind": "input", "codec": "webp", "quality": 90, "top1": 0.902, "bytes_mean": 500},
        {"kind": "input", "codec": "webp", "quality": 50, "top1": 0.88, "bytes_mean": 300},
    ]
    s = summarize(configs, 0.90, 1.0)
    assert s["smallest_bottleneck"]["bytes_mean"] == 50 and s["smallest_image"]["bytes_mean"] == 500
    assert s["image_to_bottleneck_bytes_ratio"] == 10


def test_summary_keeps_to_the_device_budget() -> None:
    """A configuration over the budget is not the verdict, however few bytes it sends."""
    configs = [
        {"kind": "bottleneck", "codec": "factorized", "split": "a", "width": 1.0, "top1": 0.90, "bytes_mean": 100,
         "device_share": 0.04},
        {"kind": "bottleneck", "codec": "factorized", "split": "b", "width": 1.0, "top1": 0.90, "bytes_mean": 10,
         "device_share": 0.99},
        {"kind": "input", "codec": "webp", "quality": 90, "top1": 0.902, "bytes_mean": 500, "device_share": 0.0},
    ]
    assert summarize(configs, 0.90, 1.0, device_budget=0.10)["smallest_bottleneck"]["split"] == "a"
    assert summarize(configs, 0.90, 1.0, device_budget=1.0)["smallest_bottleneck"]["split"] == "b"
    assert summarize(configs, 0.90, 1.0, device_budget=0.03)["smallest_bottleneck"] is None


def test_table_and_plot(report: dict, tmp_path: Path) -> None:
    table = format_table(report)
    assert "layer1/w0.25 light" in table and "local+label" in table and "teacher top-1" in table
    assert "device <= 10 % of MACs" in table and "device <= 100 % of MACs" in table
    plot_rate_accuracy(report, tmp_path / "ra.png")
    assert (tmp_path / "ra.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_eval_writes_json_and_plot(tiny_checkpoint: SplitCheckpoint, small_set: ImageSet, tmp_path: Path) -> None:
    data = tmp_path / "d.npz"
    np.savez(data, x=small_set.images, y=small_set.labels)
    out = tmp_path / "eval.json"
    cmd = [sys.executable, "-m", "splitnet_cli.main", "eval", "--checkpoint", tiny_checkpoint.path, "--data",
           str(data), "--qualities", "50", "--timing-frames", "2", "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "teacher top-1" in proc.stdout
    report = json.loads(out.read_text())
    assert report["n_images"] == 12 and out.with_suffix(".png").exists()


def test_cli_reports_errors_without_a_traceback(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "splitnet_cli.main", "eval", "--data", str(tmp_path / "missing.npz")]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 2
    assert "data file not found" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "splitnet_cli.main", "models", "nope"], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 2 and "unknown model 'nope'" in proc.stderr
