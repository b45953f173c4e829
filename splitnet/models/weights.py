"""Loading weights from the checkpoint layouts found in the wild, safely."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from splitnet.errors import CheckpointError

_NESTED_KEYS = ("state_dict", "model", "model_state_dict", "teacher")


def read_checkpoint(path: str | Path) -> dict:
    """``torch.load`` a file onto the CPU with ``weights_only=True`` (no code runs)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, expected a dict")
    return obj


def extract_state_dict(obj: Mapping) -> dict[str, torch.Tensor]:
    """Find the state dict inside a checkpoint dict and strip ``module.`` prefixes."""
    for key in _NESTED_KEYS:
        inner = obj.get(key)
        if isinstance(inner, Mapping) and inner and all(isinstance(k, str) for k in inner):
            obj = inner
            break
    state = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            continue
        state[key.removeprefix("module.")] = value
    if not state:
        raise CheckpointError("no tensors found in checkpoint")
    return state


def load_weights(model: nn.Module, weights: str | Path | Mapping) -> nn.Module:
    """Load a checkpoint path or dict into ``model`` (strict: every key must match)."""
    obj = read_checkpoint(weights) if isinstance(weights, (str, Path)) else weights
    state = extract_state_dict(obj)
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"weights do not match {type(model).__name__}: "
            f"missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}"
        )
    return model


def state_dict_sha256(model: nn.Module) -> str:
    """SHA-256 over a module's parameters and buffers (names, dtypes, shapes, bytes)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(str(t.dtype).encode())
        digest.update(str(tuple(t.shape)).encode())
        digest.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
