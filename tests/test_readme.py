"""The README's generated tables are what the committed reports under reports/ give."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def test_readme_tables_match_the_committed_reports() -> None:
    proc = subprocess.run([sys.executable, "scripts/readme_figures.py", "--check"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_every_generated_block_has_its_report_and_provenance() -> None:
    """Every block the README generator knows is in the README, and every committed report (the benchmarks'
    repeated runs under their folders included) says which command made it, when, on what and at which commit."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from readme_figures import BLOCKS

    readme = (ROOT / "README.md").read_text()
    for name in BLOCKS:
        assert f"<!-- generated: {name} -->" in readme and f"<!-- end: {name} -->" in readme, name
    reports = sorted((ROOT / "reports").rglob("*.json"))
    assert len(reports) >= 20
    for report in reports:
        data = json.loads(report.read_text())
        assert {"command", "date", "machine", "commit"} <= set(data), report
    for report in ("eval_resnet56_cifar.json", "eval_tinydet_synth.json", "device_time.json", "live_agreement.json",
                   "rpc_path.json", "simulate_eval.json", "simulate_train_oracle.json", "grpc_overhead.json",
                   "overhead_ladder.json"):
        assert f"reports/{report}" in readme, report
    for folder in ("coder_speed", "width_switch", "sim_speed", "detection_loop", "rpc_path", "control_loop",
                   "runtime_overhead", "batching_gain", "load_test"):  # timings measured several times
        assert len(list((ROOT / "reports" / folder).glob("run-*.json"))) >= 3, folder
        assert f"reports/{folder}/run-*.json" in readme, folder


def test_the_overhead_ladder_backs_the_readme_claim() -> None:
    """"No single piece of splitnet's code holds the 0.3 ms": every step of the committed ladder is a few
    hundredths of a millisecond (<= 0.1 ms), the tail alone costs a step of its own (>= 0.02 ms) and splitnet's
    code costs several times (>= 3x) more per frame on the server than in a hot loop."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from readme_figures import LADDER_CODE_STEPS

    report = json.loads((ROOT / "reports" / "overhead_ladder.json").read_text())
    steps = {k: v["median"] for k, v in report["steps_ms"].items()}
    assert set(LADDER_CODE_STEPS) <= set(steps) and len(steps) == 6
    assert all(ms <= 0.1 for ms in steps.values()), steps
    assert steps["Tail_minus_Proto"] >= 0.02
    assert sum(steps[k] for k in LADDER_CODE_STEPS) >= 3 * report["warm_code_ms"]["median"]
    assert report["rounds"] >= 9 and report["calls_per_round"] >= 100


def test_the_detection_loop_report_backs_the_readme_claim() -> None:
    """The README's 10 results/s claim: every committed run of the benchmark ran the shipped detector and,
    recomputed from its own rows, kept >= 95 % of the camera's rate on the fast link and latency within two
    deadlines with every frame accounted for on every link (timings are measured by the benchmark, not re-timed
    here)."""
    manifest = json.loads((ROOT / "splitnet" / "assets" / "MANIFEST.json").read_text())
    runs = sorted((ROOT / "reports" / "detection_loop").glob("run-*.json"))
    assert len(runs) >= 3
    for path in runs:
        report = json.loads(path.read_text())
        assert report["checkpoint_sha256"] == manifest["detector"]["checkpoint"]["sha256"]
        assert len(report["scenarios"]) == 3
        fast = report["scenarios"][0]
        assert fast["result_fps"] >= 0.95 * report["fps"], path.name
        for s in report["scenarios"]:
            assert s["latency_ms"]["max"] <= 2 * report["deadline_ms"], (path.name, s["scenario"])
            assert s["unaccounted"] == 0 and s["results_delivered"] + s["dropped"] == s["frames_submitted"]
        assert report["ok"] and report["server_exit_code"] == 0


def test_the_control_loop_runs_back_the_readme_claims() -> None:
    """The README's control-loop claims, recomputed from every committed run's rows: on a 0.2 Mbit/s link the
    mean latency stays within 1.3x local-only's (greedy and a fixed offloading action) in the median run, a
    near-dead link costs at most 1.2x local-only's time with no frame over its budget, and after the link rises
    the client offloads in time again within 2 s in the median recovery (the benchmark's own check: the frame
    timeline is not kept). "In every run" / "in every recovery" is the README's NOT met where a run says so (a
    loaded machine: the committed run-1 ran its slow-link scenarios' local frames at twice the local-only
    scenario's time, 1.93x; an earlier run had local runs of 80 ms against a 100 ms deadline, which sent the
    client into waiting for late answers), and is not asserted here."""
    runs = sorted((ROOT / "reports" / "control_loop").glob("run-*.json"))
    assert len(runs) >= 3
    recoveries: list[float | None] = []
    slow_over_local: dict[str, list[float]] = {"slow_greedy": [], "slow_fixed": []}
    for path in runs:
        report = json.loads(path.read_text())
        sc, checks = report["scenarios"], report["checks"]
        local = sc["local_paced"]
        for name, ratios in slow_over_local.items():
            ratios.append(sc[name]["latency_ms"]["mean"] / local["latency_ms"]["mean"])
        for r in sc.values():
            assert r["results"] == r["frames"], path.name  # every frame has a result
        dead = sc["near_dead"]
        assert dead["elapsed_s"] <= 1.2 * local["elapsed_s"] and dead["latency_ms"]["max"] <= dead["budget_ms"]
        recoveries.extend(c["recovery_s"] for c in checks["recovery_runs"])
        assert report["server_exit"] == 0
    assert np.median([math.inf if s is None else s for s in recoveries]) <= 2.0, recoveries
    for name, ratios in slow_over_local.items():
        assert np.median(ratios) <= 1.3, (name, ratios)
