"""scripts/select_policy.py keeps the candidate with the best mean reward on the training traces, and only
judges on the training traces."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from policies.network.trace_sets import split_files

ROOT = Path(__file__).resolve().parents[1]


def _report(path: Path, traces: list[str], rewards: dict[str, float]) -> None:
    path.write_text(json.dumps({"command": "splitnet simulate ...", "traces": traces, "policies": {
        name: {"reward_mean": r, "latency_ms_mean": 100.0, "deadline_miss_rate": 0.5} for name, r in rewards.items()}}))


def _select(report: Path, candidates: list[Path], out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "select_policy.py"), "--report", str(report),
                           "--candidates", *map(str, candidates), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_the_best_reward_on_the_training_traces_is_kept(tmp_path: Path) -> None:
    candidates = [tmp_path / f"ppo_seed{i}.zip" for i in range(3)]
    for i, c in enumerate(candidates):
        c.write_bytes(bytes([i]) * 10)
    report, out = tmp_path / "select.json", tmp_path / "ppo.zip"
    _report(report, [str(f) for f in split_files("train")], {"ppo_seed0": -2.9, "ppo_seed1": -2.7, "ppo_seed2": -3.0})
    proc = _select(report, candidates, out)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == candidates[1].read_bytes()
    record = json.loads(Path(f"{out}.selection.json").read_text())
    assert record["selected"] == "ppo_seed1" and set(record["candidates"]) == {"ppo_seed0", "ppo_seed1", "ppo_seed2"}


def test_a_report_on_other_traces_or_without_a_candidate_is_refused(tmp_path: Path) -> None:
    candidates = [tmp_path / "a.zip", tmp_path / "b.zip"]
    for c in candidates:
        c.write_bytes(b"x")
    report, out = tmp_path / "select.json", tmp_path / "ppo.zip"
    _report(report, [str(f) for f in split_files("eval")], {"a": -1.0, "b": -2.0})
    proc = _select(report, candidates, out)
    assert proc.returncode != 0 and "training traces" in proc.stderr and not out.exists()
    _report(report, [str(f) for f in split_files("train")], {"a": -1.0})
    proc = _select(report, candidates, out)
    assert proc.returncode != 0 and "no result for b" in proc.stderr and not out.exists()
