"""The learned bottleneck as a codec: features at the split point to entropy-coded bytes."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from splitnet.bottleneck import SlimmableBottleneck
from splitnet.codecs.base import Codec, check_shape
from splitnet.errors import DecodeError


def _write_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(data: bytes, limit: int = 5) -> tuple[int, int]:
    value = 0
    for i in range(min(limit, len(data))):
        value |= (data[i] & 0x7F) << (7 * i)
        if not data[i] & 0x80:
            return value, i + 1
    raise DecodeError("truncated or overlong length prefix")


class BottleneckCodec(Codec):
    """Codes features ``[C, H, W]`` with a :class:`SlimmableBottleneck` at its active width.

    Factorized prior: the bytes are the latent's rANS stream. Hyperprior:
    ``varint(len(z)) + z stream + y stream``. ``decode`` takes the shape of what was
    encoded (features, or the image for a light encoder) and returns the decoder's
    output, i.e. the features the tail expects.
    """

    kind = "bottleneck"

    def __init__(self, bottleneck: SlimmableBottleneck) -> None:
        self.bottleneck = bottleneck
        self.codec_id = bottleneck.config.prior

    @property
    def width(self) -> float:
        return self.bottleneck.width

    def describe(self) -> dict:
        return {**super().describe(), "width": self.width}

    def encode(self, x: torch.Tensor) -> bytes:
        return self.encode_batch(x.unsqueeze(0))[0]

    def decode(self, data: bytes, shape: Sequence[int]) -> torch.Tensor:
        return self.decode_batch([data], shape)[0]

    def encode_batch(self, x: torch.Tensor) -> list[bytes]:
        out = self.bottleneck.compress(x)
        if len(out["strings"]) == 1:
            return list(out["strings"][0])
        return [_write_varint(len(z)) + z + y for y, z in zip(*out["strings"])]

    def _split(self, data: bytes) -> list[bytes]:
        if self.codec_id == "factorized":
            return [data]
        n, used = _read_varint(data)
        if used + n > len(data):
            raise DecodeError(f"hyperprior stream claims {n} bytes of side information, has {len(data) - used}")
        return [data[used + n :], data[used : used + n]]

    def decode_batch(self, data: Sequence[bytes], shape: Sequence[int]) -> torch.Tensor:
        dims = check_shape(shape, ndim=3)
        latent = self.bottleneck.latent_shape(dims)
        parts = [self._split(bytes(d)) for d in data]
        strings = [list(p) for p in zip(*parts)]
        x_hat = self.bottleneck.decompress(strings, latent)["x_hat"]
        _, h, w = self.bottleneck.output_shape(dims)
        return x_hat[:, :, :h, :w]
