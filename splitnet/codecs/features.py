"""Codecs for the raw tensor at a split point: fp32, fp16, int8/int4 + zstandard."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

import numpy as np
import torch
import zstandard

from splitnet.codecs.base import Codec, check_shape
from splitnet.errors import DecodeError


class RawCodec(Codec):
    """Little-endian fp32 or fp16 bytes of the tensor, no compression."""

    kind = "features"

    def __init__(self, dtype: str = "float32") -> None:
        if dtype not in ("float32", "float16"):
            raise ValueError(f"dtype must be float32 or float16, got {dtype}")
        self._np = np.dtype("<f4" if dtype == "float32" else "<f2")
        self.codec_id = "fp32" if dtype == "float32" else "fp16"

    def encode(self, x: torch.Tensor) -> bytes:
        return x.detach().cpu().numpy().astype(self._np).tobytes()

    def decode(self, data: bytes, shape: Sequence[int]) -> torch.Tensor:
        dims = check_shape(shape)
        expected = math.prod(dims) * self._np.itemsize
        if len(data) != expected:
            raise DecodeError(f"{self.codec_id}: expected {expected} bytes for shape {dims}, got {len(data)}")
        arr = np.frombuffer(data, dtype=self._np).astype(np.float32).reshape(dims)
        if not np.isfinite(arr).all():
            raise DecodeError(f"{self.codec_id}: data holds NaN or infinite values")
        return torch.from_numpy(arr)


_QHEADER = struct.Struct("<ff")  # minimum, step
_F32_MAX = float(np.finfo(np.float32).max)


class QuantizedCodec(Codec):
    """Uniform per-tensor quantization to ``bits`` (8 or 4) bits, packed, then zstandard.

    Bytes: ``<float32 minimum><float32 step><zstd frame of the packed codes>``.
    """

    kind = "features"

    def __init__(self, bits: int = 8, level: int = 3) -> None:
        if bits not in (4, 8):
            raise ValueError(f"bits must be 4 or 8, got {bits}")
        self.bits = bits
        self.codec_id = f"int{bits}+zstd"
        self._levels = (1 << bits) - 1
        self._compressor = zstandard.ZstdCompressor(level=level)

    def describe(self) -> dict:
        return {**super().describe(), "bits": self.bits}

    def encode(self, x: torch.Tensor) -> bytes:
        arr = x.detach().cpu().float().numpy().reshape(-1)
        lo, hi = float(arr.min()), float(arr.max())
        step = (hi - lo) / self._levels if hi > lo else 1.0
        codes = np.clip(np.rint((arr - lo) / step), 0, self._levels).astype(np.uint8)
        if self.bits == 4:
            if codes.size % 2:
                codes = np.append(codes, np.uint8(0))
            codes = (codes[0::2] << 4) | codes[1::2]
        return _QHEADER.pack(lo, step) + self._compressor.compress(codes.tobytes())

    def decode(self, data: bytes, shape: Sequence[int]) -> torch.Tensor:
        dims = check_shape(shape)
        n = math.prod(dims)
        packed = n if self.bits == 8 else (n + 1) // 2
        if len(data) < _QHEADER.size:
            raise DecodeError(f"{self.codec_id}: {len(data)} bytes is shorter than the header")
        lo, step = _QHEADER.unpack_from(data)
        if not (math.isfinite(lo) and math.isfinite(step)):
            raise DecodeError(f"{self.codec_id}: non-finite quantization parameters")
        try:
            raw = zstandard.ZstdDecompressor().decompress(data[_QHEADER.size :], max_output_size=packed)
        except zstandard.ZstdError as exc:
            raise DecodeError(f"{self.codec_id}: corrupted zstd frame: {exc}") from exc
        if len(raw) != packed:
            raise DecodeError(f"{self.codec_id}: expected {packed} packed bytes for shape {dims}, got {len(raw)}")
        codes = np.frombuffer(raw, dtype=np.uint8)
        if self.bits == 4:
            codes = np.stack([codes >> 4, codes & 0x0F], axis=1).reshape(-1)[:n]
        span = self._levels * step  # the largest offset the codes can give
        if max(abs(span), abs(lo + span)) > _F32_MAX:  # a corrupted header: the values would overflow to inf
            raise DecodeError(f"{self.codec_id}: quantization range [{lo:g}, {lo + span:g}] overflows float32")
        values = lo + codes.astype(np.float32) * np.float32(step)
        return torch.from_numpy(values.reshape(dims))
