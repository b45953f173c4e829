"""The one interface every codec implements, and the registry of codec ids."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch

from splitnet.errors import ShapeError

MAX_ELEMENTS = 1 << 26  # largest tensor (elements) any codec will build from the wire


class Codec(ABC):
    """Turns one frame's tensor into bytes and back.

    ``kind`` says what is coded: ``"bottleneck"`` (a learned latent), ``"features"``
    (the tensor at a split point) or ``"input"`` (the image, for full offload).
    ``decode`` gets the shape of the original tensor from the payload; it raises a
    :class:`~splitnet.errors.PayloadError` subclass for bytes it cannot decode.
    """

    codec_id: str
    kind: str
    dtype: str = "float32"  # dtype of the tensor ``decode`` returns

    @abstractmethod
    def encode(self, x: torch.Tensor) -> bytes:
        """One frame (no batch dimension) to bytes."""

    @abstractmethod
    def decode(self, data: bytes, shape: Sequence[int]) -> torch.Tensor:
        """Bytes to one frame of ``shape`` (no batch dimension)."""

    def encode_batch(self, x: torch.Tensor) -> list[bytes]:
        """Each frame of a batch to bytes."""
        return [self.encode(frame) for frame in x]

    def decode_batch(self, data: Sequence[bytes], shape: Sequence[int]) -> torch.Tensor:
        """Bytes of several frames of the same ``shape`` to one batch."""
        return torch.stack([self.decode(d, shape) for d in data])

    def describe(self) -> dict:
        """Settings worth reporting (quality, bits, width)."""
        return {"codec": self.codec_id, "kind": self.kind}


def check_shape(shape: Sequence[int], ndim: int | None = None) -> tuple[int, ...]:
    """Validate a shape from the wire: positive ints, bounded element count."""
    try:
        dims = tuple(int(s) for s in shape)
    except (TypeError, ValueError) as exc:
        raise ShapeError(f"shape must be a sequence of ints, got {shape!r}") from exc
    if ndim is not None and len(dims) != ndim:
        raise ShapeError(f"expected a {ndim}-d shape, got {dims}")
    if not dims or any(d < 1 for d in dims) or math.prod(dims) > MAX_ELEMENTS:
        raise ShapeError(f"shape {dims} is empty, non-positive or larger than {MAX_ELEMENTS} elements")
    return dims
