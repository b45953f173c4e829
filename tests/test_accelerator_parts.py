"""The training split goes to the accelerator machine in parts and is joined there into the same arrays."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PARTS = ROOT / "scripts" / "accelerator" / "parts.py"


def _parts(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PARTS), *args], capture_output=True, text=True, cwd=ROOT, timeout=60)


@pytest.fixture
def train_npz(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "train.npz"
    np.savez_compressed(path, x=rng.integers(0, 256, (103, 32, 32, 3), dtype=np.uint8),
                        y=rng.integers(0, 10, 103), classes=np.array([f"c{i}" for i in range(10)]),
                        files=np.array([f"img{i}.jpg" for i in range(103)]))
    return path


def test_parts_join_into_the_same_arrays_in_the_same_order(train_npz: Path, tmp_path: Path) -> None:
    assert _parts("split", str(train_npz), str(tmp_path / "parts"), "--parts", "3").returncode == 0
    assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == [f"train-part{i}.npz" for i in (1, 2, 3)]
    joined = _parts("join", str(tmp_path / "parts"), str(tmp_path / "joined.npz"))
    assert joined.returncode == 0 and "103 images" in joined.stdout
    with np.load(train_npz) as a, np.load(tmp_path / "joined.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            assert np.array_equal(a[key], b[key]), key


def test_a_missing_part_is_named(train_npz: Path, tmp_path: Path) -> None:
    _parts("split", str(train_npz), str(tmp_path / "parts"), "--parts", "4")
    (tmp_path / "parts" / "train-part3.npz").unlink()
    joined = _parts("join", str(tmp_path / "parts"), str(tmp_path / "joined.npz"))
    assert joined.returncode != 0 and "parts [3] of 4 have not arrived" in joined.stderr
    assert not (tmp_path / "joined.npz").exists()


def test_the_device_script_refuses_an_unknown_step() -> None:
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "accelerator" / "device.sh"), "deploy"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2 and "unknown step 'deploy'" in proc.stderr
