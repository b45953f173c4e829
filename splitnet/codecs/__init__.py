"""Codecs: one interface (``encode(tensor) -> bytes``, ``decode(bytes, shape) -> tensor``)."""

from __future__ import annotations

from splitnet.codecs.base import MAX_ELEMENTS, Codec, check_shape
from splitnet.codecs.features import QuantizedCodec, RawCodec
from splitnet.codecs.image import ImageCodec
from splitnet.codecs.learned import BottleneckCodec
from splitnet.errors import UnknownCodecError

FEATURE_CODECS = ("fp32", "fp16", "int8+zstd", "int4+zstd")
IMAGE_CODECS = ("jpeg", "webp", "png")
BOTTLENECK_CODECS = ("factorized", "hyperprior")


def create_codec(codec_id: str, quality: int = 75) -> Codec:
    """A feature or image codec by id (``quality`` applies to JPEG/WebP).

    Bottleneck codecs need a trained bottleneck: build them with
    :class:`BottleneckCodec` or through a :class:`~splitnet.checkpoint.SplitCheckpoint`.
    """
    if codec_id == "fp32":
        return RawCodec("float32")
    if codec_id == "fp16":
        return RawCodec("float16")
    if codec_id == "int8+zstd":
        return QuantizedCodec(8)
    if codec_id == "int4+zstd":
        return QuantizedCodec(4)
    if codec_id in IMAGE_CODECS:
        return ImageCodec(codec_id, quality)
    if codec_id in BOTTLENECK_CODECS:
        raise UnknownCodecError(f"codec {codec_id!r} needs a trained bottleneck; load it from a checkpoint")
    known = FEATURE_CODECS + IMAGE_CODECS + BOTTLENECK_CODECS
    raise UnknownCodecError(f"unknown codec {codec_id!r}; known codecs: {', '.join(known)}")


__all__ = [
    "BOTTLENECK_CODECS",
    "FEATURE_CODECS",
    "IMAGE_CODECS",
    "MAX_ELEMENTS",
    "BottleneckCodec",
    "Codec",
    "ImageCodec",
    "QuantizedCodec",
    "RawCodec",
    "check_shape",
    "create_codec",
]
