"""Measuring what every action costs on this machine: compute ms, payload bytes, accuracy.

For each image of a data set and each action (local, split x width, features,
image codecs) the profile keeps the payload's bytes and whether the answer was
right, aligned by image, so a simulator can replay real frames. Compute times are
medians of single-frame (batch 1) runs; each action also records its device and server
MACs and the device's share of the model's MACs (:mod:`splitnet.compute`).
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Sequence

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


def _median_timing(device: DeviceSide, server: ServerSide, frames: np.ndarray, action: Action) -> tuple[float, float]:
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


@torch.no_grad()
def profile_actions(ckpt: SplitCheckpoint, data: ImageSet, actions: Sequence[Action] | None = None,
                    timing_frames: int = 50, batch_size: int = 100, progress: bool = True) -> dict:
    """Per action: device and server ms (batch 1, this machine), bytes and correctness per image, and the
    uplink bytes a frame adds besides its payload."""
    device, server, compute = DeviceSide(ckpt), ServerSide(ckpt), ComputeModel(ckpt)
    actions = list(actions) if actions is not None else default_actions(ckpt)
    timing_set = data.images[: max(1, min(timing_frames, len(data)))]
    rows = []
    for action in tqdm(actions, desc="profile", disable=not progress, leave=False):
        _median_timing(device, server, timing_set[:5], action)  # warm up
        device_ms, server_ms = _median_timing(device, server, timing_set, action)
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
        rows.append({"name": action.name, "kind": action.kind, "device_ms": device_ms, "server_ms": server_ms,
                     "device_macs": cost.device_macs, "server_macs": cost.server_macs,
                     "device_share": cost.device_share, "bytes_mean": float(np.mean(sizes)),
                     "top1": float(np.mean(correct)), "bytes": sizes, "correct": [int(c) for c in correct],
                     "overhead_bytes": overhead})
    return {"model": ckpt.model_name, "checkpoint_sha256": ckpt.sha256, "data": data.path, "n_images": len(data),
            "model_macs": compute.model_macs,
            "measured_on": {"machine": platform.machine(), "processor": platform.processor(),
                            "torch_threads": torch.get_num_threads()},
            "actions": rows}
