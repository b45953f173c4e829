"""Pieces shared by the training loops: seeding, resumable state, evaluation."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from splitnet.data import ImageSet, batches, to_tensor
from splitnet.errors import CheckpointError
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
    """Top-1 accuracy of a classifier on an image set (model put in eval mode)."""
    if len(data) == 0:
        return float("nan")
    was_training = model.training
    model.eval()
    correct = 0
    for s in batches(len(data), batch_size):
        logits = model(to_tensor(data.images[s], spec))
        correct += int((logits.argmax(1).numpy() == data.labels[s]).sum())
    model.train(was_training)
    return correct / len(data)
