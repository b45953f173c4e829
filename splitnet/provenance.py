"""Where a report came from: the command, the date, the machine and the code's commit.

Every JSON report (``splitnet eval/profile/simulate --json``, the benchmarks) carries these
fields so a figure quoted in the README can be traced to the run that produced it.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
_started: dict[str, str] = {}  # the commit when the measuring process started (see remember_start)


def machine() -> dict:
    """Facts about this machine that change timings: CPU, threads, library versions."""
    return {"python": platform.python_version(), "torch": torch.__version__, "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine()}


def commit() -> str:
    """The git commit of the code (``+dirty`` when the working tree has changes); "" outside a checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return ""
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return ""


def remember_start() -> None:
    """Record the commit now, at the start of a measuring process: a report written later names the code
    that ran, even if the working tree changed meanwhile."""
    _started.setdefault("commit", commit())


def provenance(command: str) -> dict:
    """``{"command", "date", "machine", "commit"}`` for a report written now (commit: at the process's start
    when :func:`remember_start` was called)."""
    return {"command": command, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(), "commit": _started.get("commit") or commit()}
