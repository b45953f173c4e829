"""Pieces shared by the training loops: seeding, resumable state, evaluation."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from splitnet.data import ImageSet, batches, to_tensor
from splitnet.errors import CheckpointError, SplitnetError
from splitnet.models.registry import ModelSpec
from splitnet.models.weights import read_checkpoint


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch generator for data order and augmentation."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def training_device(name: str = "auto") -> torch.device:
    """The torch device a training run computes on: ``auto`` (the first CUDA GPU when there is one, else the
    CPU), ``cpu``, ``cuda`` or ``cuda:N``. Raises :class:`SplitnetError` for another name, or for a GPU that is
    not there."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise SplitnetError(f"unknown training device {name!r}: give auto, cpu, cuda or cuda:N") from exc
    if device.type not in ("cpu", "cuda"):
        raise SplitnetError(f"unknown training device {name!r}: give auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise SplitnetError(f"training device {name!r} asked for, but this machine has "
                                f"{count or 'no'} CUDA GPU{'' if count == 1 else 's'} torch can use")
    return device


def to_device(obj: Any, device: torch.device) -> Any:
    """``obj`` with every tensor in it (also inside dicts, lists and tuples) on ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def save_atomic(obj: dict, path: str | Path) -> None:
    """``torch.save`` to a temporary file, then rename, so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_run_state(last: str | Path, config: dict) -> dict | None:
    """The state a resumable run saved after its last finished epoch, or None when there is none.

    Raises :class:`CheckpointError` when that state was written with other settings: resuming
    would mix two runs.
    """
    last = Path(last)
    if not last.is_file():
        return None
    state = read_checkpoint(last)
    if state.get("config") != config:
        raise CheckpointError(f"{last} was written by a run with other settings; "
                              f"remove {last.parent} to start afresh")
    return state


def split_holdout(data: ImageSet, holdout: int, seed: int) -> tuple[ImageSet, ImageSet]:
    """Split a training set into (train, holdout) with a seeded permutation."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data))
    held, kept = order[:holdout], order[holdout:]
    return (
        ImageSet(data.images[kept], data.labels[kept], data.classes, data.path),
        ImageSet(data.images[held], data.labels[held], data.classes, data.path),
    )


@torch.no_grad()
def top1_accuracy(model: nn.Module, data: ImageSet, spec: ModelSpec, batch_size: int = 500) -> float:
    """Top-1 accuracy of a classifier on an image set (model put in eval mode; the images go to its device)."""
    if len(data) == 0:
        return float("nan")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for s in batches(len(data), batch_size):
        logits = model(to_tensor(data.images[s], spec).to(device)).cpu()
        correct += int((logits.argmax(1).numpy() == data.labels[s]).sum())
    model.train(was_training)
    return correct / len(data)
