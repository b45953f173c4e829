"""Measuring what every action costs on this machine: compute ms, payload bytes, accuracy.

For each image of a data set and each action (local, split x width, features,
image codecs) the profile keeps the payload's bytes and whether the answer was
right, aligned by image, so a simulator can replay real frames. Compute times are
single-frame (batch 1) runs, timed in interleaved rounds (the median of the round medians,
with their spread); each action also records its device and server
MACs and the device's share of the model's MACs (:mod:`splitnet.compute`).
"""

from __future__ import annotations

import platform
import re
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from splitnet.checkpoint import SplitCheckpoint
from splitnet.compute import ComputeModel
from splitnet.data import ImageSet, batches
from splitnet.pipeline import Action, DeviceSide, ServerSide, Timing
from splitnet.rpc.convert import wire_overhead_bytes


def default_actions(ckpt: SplitCheckpoint, image_qualities: Sequence[int] = (10, 50, 90),
                    feature_codecs: Sequence[str] = ("int8+zstd",)) -> list[Action]:
    """local, every split x width, raw features with ``feature_codecs``, WebP/JPEG at ``image_qualities``."""
    acts = DeviceSide(ckpt).actions(feature_codecs=feature_codecs, image_qualities=())
    acts += [Action("input", codec=fmt, quality=q) for fmt in ("webp", "jpeg") for q in image_qualities]
    return acts


def _frame_times(device: DeviceSide, server: ServerSide, frames: np.ndarray, action: Action) -> tuple[float, float]:
    """Median device and server ms of ``action`` over ``frames``, one frame at a time."""
    dev, srv = [], []
    for i, frame in enumerate(frames):
        if action.kind == "local":
            t0 = time.perf_counter()
            device.run_local(frame)
            dev.append((time.perf_counter() - t0) * 1e3)
            continue
        t = Timing()
        payloads = device.encode(frame, action, seq=i, timing=t)
        server.infer(payloads, t)
        dev.append(t.head_ms + t.encode_ms)
        srv.append(t.decode_ms + t.tail_ms)
    return statistics.median(dev), (statistics.median(srv) if srv else 0.0)


@dataclass
class ActionTiming:
    """One action's batch-1 times over several rounds: the median of the round medians (ms) and each round's."""

    device_ms: float
    server_ms: float
    device_rounds_ms: list[float]
    server_rounds_ms: list[float]

    def as_row(self) -> dict:
        return {"device_ms": self.device_ms, "server_ms": self.server_ms,
                "device_ms_spread": [min(self.device_rounds_ms), max(self.device_rounds_ms)],
                "server_ms_spread": [min(self.server_rounds_ms), max(self.server_rounds_ms)]}


def time_actions(device: DeviceSide, server: ServerSide, frames: np.ndarray, actions: Sequence[Action],
                 rounds: int = 5) -> dict[str, ActionTiming]:
    """Time every action in ``rounds`` interleaved rounds (each round runs every action over ``frames``), so a
    slow spell of a noisy machine lands on all actions alike instead of on whichever ran then."""
    for action in actions:
        _frame_times(device, server, frames[:5], action)  # warm up
    per_round: dict[str, list[tuple[float, float]]] = {a.name: [] for a in actions}
    for _ in range(max(1, rounds)):
        for action in actions:
            per_round[action.name].append(_frame_times(device, server, frames, action))
    out = {}
    for name, rows in per_round.items():
        dev, srv = [r[0] for r in rows], [r[1] for r in rows]
        out[name] = ActionTiming(statistics.median(dev), statistics.median(srv), dev, srv)
    return out


def width_order_violations(rows: Sequence[dict], tolerance: float = 0.05) -> list[str]:
    """Slimmable actions whose device ms falls as the width grows (by more than ``tolerance``, relative):
    compute grows with width, so such a timing is noise and says the measurement should be repeated."""
    by_prefix: dict[str, list[tuple[float, str, float]]] = {}
    for row in rows:
        m = re.fullmatch(r"(.+)/w([0-9.]+)", row["name"])
        if m:
            by_prefix.setdefault(m.group(1), []).append((float(m.group(2)), row["name"], row["device_ms"]))
    problems = []
    for entries in by_prefix.values():
        entries.sort()
        for (_, narrow, narrow_ms), (_, wide, wide_ms) in zip(entries, entries[1:]):
            if wide_ms < narrow_ms * (1 - tolerance):
                problems.append(f"{wide} ({wide_ms:.3f} ms) is faster than {narrow} ({narrow_ms:.3f} ms)")
    return problems


@torch.no_grad()
def profile_actions(ckpt: SplitCheckpoint, data: ImageSet, actions: Sequence[Action] | None = None,
                    timing_frames: int = 50, timing_rounds: int = 5, batch_size: int = 100,
                    progress: bool = True) -> dict:
    """Per action: device and server ms (batch 1, this machine: median over ``timing_rounds`` interleaved rounds
    of ``timing_frames`` frames, with the spread of the round medians), bytes and correctness per image, and
    the uplink bytes a frame adds besides its payload."""
    device, server, compute = DeviceSide(ckpt), ServerSide(ckpt), ComputeModel(ckpt)
    actions = list(actions) if actions is not None else default_actions(ckpt)
    timing_set = data.images[: max(1, min(timing_frames, len(data)))]
    timings = time_actions(device, server, timing_set, actions, timing_rounds)
    rows = []
    for action in tqdm(actions, desc="profile", disable=not progress, leave=False):
        sizes: list[int] = []
        correct: list[bool] = []
        overhead = 0
        for s in batches(len(data), batch_size):
            if action.kind == "local":
                logits = device.run_local(data.images[s])
                sizes += [0] * len(logits)
            else:
                payloads = device.encode(data.images[s], action)
                sizes += [len(p.data) for p in payloads]
                if s.start == 0:
                    overhead = wire_overhead_bytes(payloads[0])
                logits = server.infer(payloads)
            correct += (logits.argmax(1).numpy() == data.labels[s]).tolist()
        cost = compute.cost(action)
        rows.append({"name": action.name, "kind": action.kind, **timings[action.name].as_row(),
                     "device_macs": cost.device_macs, "server_macs": cost.server_macs,
                     "device_share": cost.device_share, "bytes_mean": float(np.mean(sizes)),
                     "top1": float(np.mean(correct)), "bytes": sizes, "correct": [int(c) for c in correct],
                     "overhead_bytes": overhead})
    return {"model": ckpt.model_name, "checkpoint_sha256": ckpt.sha256, "data": data.path, "n_images": len(data),
            "model_macs": compute.model_macs,
            "measured_on": {"machine": platform.machine(), "processor": platform.processor(),
                            "torch_threads": torch.get_num_threads(), "timing_frames": len(timing_set),
                            "timing_rounds": max(1, timing_rounds)},
            "width_order_violations": width_order_violations(rows), "actions": rows}
