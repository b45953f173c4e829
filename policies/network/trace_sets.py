"""The written-down split of the shared traces into training and evaluation files."""

from __future__ import annotations

import json
from pathlib import Path

from policies.network.traces import Trace, load_trace
from splitnet.errors import DataError

SPLIT_FILE = Path(__file__).parents[1] / "assets" / "trace_split.json"
REPO = Path(__file__).resolve().parents[2]


def split_files(which: str, root: str | Path | None = None) -> list[Path]:
    """Paths of the ``"train"`` or ``"eval"`` traces (root defaults to ``../shared/traces``)."""
    spec = json.loads(SPLIT_FILE.read_text())
    if which not in ("train", "eval"):
        raise DataError(f"trace set must be 'train' or 'eval', got {which!r}")
    base = Path(root) if root else (REPO / spec["root"]).resolve()
    return [base / rel for rel in spec[which]]


def load_split(which: str, root: str | Path | None = None) -> list[Trace]:
    files = split_files(which, root)
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise DataError(f"{len(missing)} {which} traces are missing (e.g. {missing[0]}); "
                        "pass trace files or a directory explicitly")
    return [load_trace(f) for f in files]
