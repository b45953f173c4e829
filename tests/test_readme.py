"""The README's generated tables are what the committed reports under reports/ give."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_tables_match_the_committed_reports() -> None:
    proc = subprocess.run([sys.executable, "scripts/readme_figures.py", "--check"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_every_generated_block_has_its_report_and_provenance() -> None:
    readme = (ROOT / "README.md").read_text()
    for name, report in (("eval-classifier", "eval_resnet56_cifar.json"), ("eval-detector", "eval_tinydet_synth.json"),
                         ("device-time", "device_time.json"), ("light-speed", "coder_speed.json"),
                         ("light-speed", "width_switch.json")):
        assert f"<!-- generated: {name} -->" in readme and f"<!-- end: {name} -->" in readme
        data = json.loads((ROOT / "reports" / report).read_text())
        assert {"command", "date", "machine", "commit"} <= set(data), report
        assert f"reports/{report}" in readme
