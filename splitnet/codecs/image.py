"""Input-image codecs for full offload (JPEG, WebP, PNG through Pillow)."""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from splitnet.codecs.base import Codec, check_shape
from splitnet.errors import DecodeError, ShapeError

_PIL_FORMAT = {"jpeg": "JPEG", "webp": "WEBP", "png": "PNG"}


class ImageCodec(Codec):
    """One uint8 RGB frame ``[H, W, 3]`` to a JPEG/WebP/PNG file's bytes and back.

    JPEG uses optimized Huffman tables and WebP its slowest, smallest method, so the
    baseline is as strong as Pillow makes it.
    """

    kind = "input"
    dtype = "uint8"

    def __init__(self, fmt: str = "jpeg", quality: int = 75) -> None:
        if fmt not in _PIL_FORMAT:
            raise ValueError(f"image format must be one of {sorted(_PIL_FORMAT)}, got {fmt!r}")
        if fmt != "png" and not 1 <= quality <= 100:
            raise ValueError(f"quality must be in [1, 100], got {quality}")
        self.codec_id = fmt
        self.quality = quality if fmt != "png" else None

    def describe(self) -> dict:
        d = super().describe()
        if self.quality is not None:
            d["quality"] = self.quality
        return d

    def _save_kwargs(self) -> dict:
        if self.codec_id == "jpeg":
            return {"quality": self.quality, "optimize": True}
        if self.codec_id == "webp":
            return {"quality": self.quality, "method": 6}
        return {"optimize": True}

    def encode(self, x: torch.Tensor | np.ndarray) -> bytes:
        arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
            raise ShapeError(f"{self.codec_id}: expected a uint8 [H, W, 3] frame, got {arr.dtype} {arr.shape}")
        buf = io.BytesIO()
        Image.fromarray(arr, "RGB").save(buf, format=_PIL_FORMAT[self.codec_id], **self._save_kwargs())
        return buf.getvalue()

    def decode(self, data: bytes, shape: Sequence[int]) -> torch.Tensor:
        h, w, c = check_shape(shape, ndim=3)
        if c != 3:
            raise DecodeError(f"{self.codec_id}: expected 3 channels, got shape {(h, w, c)}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(io.BytesIO(data), formats=[_PIL_FORMAT[self.codec_id]])
                if img.size != (w, h):  # checked from the header, before any pixel is decoded
                    raise DecodeError(f"{self.codec_id}: image is {img.size[0]}x{img.size[1]}, expected {w}x{h}")
                arr = np.asarray(img.convert("RGB"))
        except DecodeError:
            raise
        except Exception as exc:  # Pillow raises many types on a bad file
            raise DecodeError(f"{self.codec_id}: cannot decode image: {exc}") from exc
        return torch.from_numpy(arr.copy())
