"""The console command's subcommands that the other test files do not already drive."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from splitnet.checkpoint import SplitCheckpoint, SplitPoint
from splitnet.errors import CheckpointError
from splitnet.models import create_model
from tests.conftest import make_bottleneck, make_light_bottleneck
from tests.test_policies import toy_profile

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "splitnet_cli.main", "--threads", "1", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout)


def test_checkpoint_merge_and_info(tmp_path: Path) -> None:
    torch.manual_seed(0)
    teacher = create_model("resnet20_cifar")
    a = SplitCheckpoint("resnet20_cifar", teacher, {"layer1": SplitPoint("layer1", make_light_bottleneck(16))})
    b = SplitCheckpoint("resnet20_cifar", teacher, {"layer2": SplitPoint("layer2", make_bottleneck(32))})
    a.save(tmp_path / "a.pt")
    b.save(tmp_path / "b.pt")
    proc = run("checkpoint", "merge", str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--out", str(tmp_path / "m.pt"))
    assert proc.returncode == 0, proc.stderr
    merged = SplitCheckpoint.load(tmp_path / "m.pt")
    assert list(merged.splits) == ["layer1", "layer2"]
    info = run("checkpoint", "info", str(tmp_path / "m.pt"))
    assert merged.sha256 in info.stdout and "unsplit model: 40.55 M MACs" in info.stdout  # ResNet-20
    assert "layer1: light encoder on the image" in info.stdout
    assert "layer2: bottleneck on the teacher's features at layer2; factorized" in info.stdout
    shares = re.findall(r"w[0-9.]+: device [0-9.]+ M MACs \(([0-9.]+) % of the model\)", info.stdout)
    assert len(shares) == 8 and all(float(s) < 5 for s in shares[:4]) and all(float(s) > 60 for s in shares[4:])
    other = SplitCheckpoint("resnet20_cifar", create_model("resnet20_cifar"), {})
    with pytest.raises(CheckpointError, match="another teacher"):
        merged.merge(other)


@pytest.mark.slow
def test_profile_command(tiny_checkpoint, tmp_path: Path) -> None:
    data = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    np.savez(data, x=rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8), y=rng.integers(0, 10, 20))
    out = tmp_path / "profile.json"
    proc = run("profile", "--checkpoint", tiny_checkpoint.path, "--data", str(data), "--timing-frames", "3",
               "--timing-rounds", "2", "--qualities", "50", "--device-class", "test device", "--device-speed", "8",
               "--trace-scale", "0.1", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    p = json.loads(out.read_text())
    names = [a["name"] for a in p["actions"]]
    assert names[0] == "local" and "layer1/w0.25" in names and "webp/q50" in names
    assert p["scenario"]["device_class"] == "test device" and p["scenario"]["device_speed"] == 8
    assert all(len(a["bytes"]) == len(a["correct"]) == 20 for a in p["actions"])
    # times are medians of interleaved rounds, with the spread of the round medians beside them
    assert p["measured_on"]["timing_rounds"] == 2 and p["measured_on"]["timing_frames"] == 3
    for a in p["actions"]:
        lo, hi = a["device_ms_spread"]
        assert lo <= a["device_ms"] <= hi and a["device_macs"] >= 0 and 0 <= a["device_share"] <= 1.01, a["name"]
    assert isinstance(p["width_order_violations"], list)
    # each offload's bytes on the wire besides its payload: protobuf fields (a 16-digit weights id among them),
    # stream framing and the HTTP/2 control frames sent back per answer; a local run sends nothing
    from splitnet.rpc.convert import STREAM_CONTROL_BYTES

    overhead = {a["name"]: a.get("overhead_bytes", 0) for a in p["actions"]}
    assert overhead["local"] == 0, overhead
    assert all(60 < v - STREAM_CONTROL_BYTES < 130 for k, v in overhead.items() if k != "local"), overhead
    assert p["command"].startswith("splitnet ")


@pytest.mark.slow
def test_simulate_and_train_policy_commands(tmp_path: Path) -> None:
    profile = tmp_path / "profile.json"
    toy_profile().save(profile)
    traces = tmp_path / "traces"
    (traces / "family").mkdir(parents=True)
    (traces / "family" / "square").write_text("".join(f"{t}\t{0.05 if (t // 20) % 2 else 2.0}\n" for t in range(120)))
    (traces / "notes.txt").write_text("not a trace\n")
    policy = tmp_path / "ppo.zip"
    proc = run("train", "policy", "--profile", str(profile), "--traces", str(traces), "--algo", "ppo", "--steps",
               "2048", "--out", str(policy))
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "sim.json"
    proc = run("simulate", "--profile", str(profile), "--traces", str(traces), "--frames", "300", "--policy", "local",
               "edge", "fixed:layer2:0.5", "greedy", "oracle", "static_best", str(policy), "--json", str(out),
               "--obs-log", str(tmp_path / "obs.jsonl"))
    assert proc.returncode == 0, proc.stderr
    assert "skipped" in proc.stderr and "notes.txt" in proc.stderr
    # --obs-log with several policies: one log each, a line per simulated frame (static_best is chosen by the
    # simulation and has none)
    greedy_log = (tmp_path / "obs-greedy.jsonl").read_text().splitlines()
    assert len(greedy_log) == 300 and json.loads(greedy_log[0])["deadline_ms"] == 100
    assert (tmp_path / "obs-fixed_layer2_0.5.jsonl").exists() and not (tmp_path / "obs-static_best.jsonl").exists()
    report = json.loads(out.read_text())
    assert set(report["policies"]) == {"local", "edge", "fixed:layer2:0.5", "greedy", "oracle", "static_best", "ppo"}
    assert (tmp_path / "sim_latency_cdf.png").exists() and (tmp_path / "sim_actions.png").exists()
    bad = run("simulate", "--profile", str(profile), "--traces", str(tmp_path / "nothing"), "--policy", "local")
    assert bad.returncode == 2 and "no traces" in bad.stderr


def test_simulate_takes_the_deployment_s_server_speed_and_rpc_path(tmp_path: Path) -> None:
    """``--server-speed`` and ``--request-overhead-ms`` change the simulated world by exactly what they say (a
    constant fast link: every frame of a fixed split pays the server's ms and the per-call ms once), and the
    profile's own figures stay what the policies see."""
    from splitnet_cli.main import main

    profile_path = tmp_path / "profile.json"
    profile = toy_profile()
    profile.save(profile_path)
    trace = tmp_path / "flat.log"
    trace.write_text("".join(f"{t}\t20.0\n" for t in range(60)))
    latency = {}
    for key, extra in (("profile", []), ("deployment", ["--server-speed", "41", "--request-overhead-ms", "5"])):
        out = tmp_path / f"sim-{key}.json"
        assert main(["simulate", "--profile", str(profile_path), "--traces", str(trace), "--frames", "100",
                     "--policy", "fixed:layer2:0.5", "--json", str(out), *extra]) == 0
        report = json.loads(out.read_text())
        latency[key] = report["policies"]["fixed:layer2:0.5"]["latency_ms_mean"]
    assert report["deployment"] == {"server_speed": 41.0, "request_overhead_ms": 5.0, "differs_from_profile": True}
    spread = tmp_path / "spread.json"
    spread.write_text(json.dumps({"server_time_factors": [0.5, 1.5], "request_overhead_samples_ms": [1.0, 9.0]}))
    out = tmp_path / "sim-spread.json"
    assert main(["simulate", "--profile", str(profile_path), "--traces", str(trace), "--frames", "100",
                 "--policy", "fixed:layer2:0.5", "--json", str(out), "--server-speed", "41",
                 "--deployment-spread", str(spread)]) == 0
    spread_report = json.loads(out.read_text())
    assert spread_report["deployment"]["server_time_factors_count"] == 2
    # the same mean figures (factors about 1, RPC path 5 ms on average), drawn per call: the mean latency moves
    # by the draws' luck only (100 frames: a few ms at most)
    assert spread_report["policies"]["fixed:layer2:0.5"]["latency_ms_mean"] == pytest.approx(
        latency["deployment"], abs=3.0)
    spread.write_text(json.dumps({"server_time_factor": [1.0]}))  # a typo: refused, naming the fields
    assert main(["simulate", "--profile", str(profile_path), "--traces", str(trace), "--policy", "local",
                 "--deployment-spread", str(spread)]) == 2
    # layer2/w0.5's server ms is 0.5 at speed 1: 20.5 ms at 41, plus 5 ms per call
    assert latency["deployment"] - latency["profile"] == pytest.approx(20.0 + 5.0, abs=0.5)
    assert profile.with_deployment() is profile and profile.with_deployment(server_speed=1.0) is profile
    world = profile.with_deployment(server_speed=2.0, request_overhead_ms=3.0)
    assert world.server_ms(2) == 1.0 and world.scenario.request_overhead_ms == 3.0 and profile.server_ms(2) == 0.5
