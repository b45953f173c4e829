"""docs/bring-your-own-model.md runs as written: its files are written, its shell block runs with bash."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "bring-your-own-model.md"

pytestmark = pytest.mark.slow


def blocks(text: str) -> list[tuple[str, str]]:
    """(info string, body) of every fenced code block."""
    return [(m.group(1).strip(), m.group(2)) for m in re.finditer(r"^```([^\n]*)\n(.*?)^```", text, re.M | re.S)]


def test_tutorial_runs_end_to_end(tmp_path: Path) -> None:
    found = blocks(TUTORIAL.read_text())
    files = {info.split("file=")[1]: body for info, body in found if "file=" in info}
    scripts = [body for info, body in found if info == "sh"]
    assert set(files) == {"mymodels.py", "make_shapes.py"} and len(scripts) == 1
    for name, body in files.items():
        (tmp_path / name).write_text(body)
    bindir = Path(sys.executable).parent  # the environment's `splitnet` and `python`
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", scripts[0]], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=3000)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "shapes_resnet18" in proc.stdout and "layer2" in proc.stdout  # models, checkpoint info
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["model"] == "shapes_resnet18" and report["n_images"] == 36
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["frames"] == 36 and run["frames_lost"] == 0 and run["frames_answered"] == 36
    assert run["top1"] is not None and len(run["frames_detail"]) == 36
