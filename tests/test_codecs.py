from __future__ import annotations

import numpy as np
import pytest
import torch

from splitnet.codecs import FEATURE_CODECS, ImageCodec, QuantizedCodec, RawCodec, create_codec
from splitnet.errors import DecodeError, ShapeError, UnknownCodecError


@pytest.fixture
def features() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.relu(torch.randn(16, 8, 8)) * 3


def test_fp32_is_exact(features: torch.Tensor) -> None:
    codec = RawCodec("float32")
    data = codec.encode(features)
    assert len(data) == features.numel() * 4
    assert torch.equal(codec.decode(data, features.shape), features)


def test_fp16_halves_the_bytes(features: torch.Tensor) -> None:
    codec = RawCodec("float16")
    data = codec.encode(features)
    assert len(data) == features.numel() * 2
    assert torch.allclose(codec.decode(data, features.shape), features, atol=1e-2)


@pytest.mark.parametrize("bits", [8, 4])
def test_quantized_error_is_within_half_a_step(features: torch.Tensor, bits: int) -> None:
    codec = QuantizedCodec(bits)
    data = codec.encode(features)
    out = codec.decode(data, features.shape)
    step = (features.max() - features.min()) / ((1 << bits) - 1)
    assert (out - features).abs().max() <= step / 2 + 1e-5
    assert len(data) < features.numel() * bits / 8 + 64  # zstd never loses much over the packed codes


def test_int4_handles_odd_element_counts() -> None:
    x = torch.arange(7, dtype=torch.float32).view(7, 1, 1)
    codec = QuantizedCodec(4)
    assert torch.allclose(codec.decode(codec.encode(x), x.shape), x, atol=0.5)


def test_constant_tensor_round_trips() -> None:
    x = torch.full((4, 2, 2), 1.5)
    for codec_id in FEATURE_CODECS:
        codec = create_codec(codec_id)
        assert torch.allclose(codec.decode(codec.encode(x), x.shape), x, atol=1e-3)


@pytest.mark.parametrize("codec_id", FEATURE_CODECS)
def test_feature_codecs_reject_wrong_shape_and_bad_bytes(features: torch.Tensor, codec_id: str) -> None:
    codec = create_codec(codec_id)
    data = codec.encode(features)
    with pytest.raises(DecodeError):
        codec.decode(data, (16, 8, 9))
    with pytest.raises(DecodeError):
        codec.decode(data[: len(data) // 2], features.shape)
    with pytest.raises(ShapeError):
        codec.decode(data, (0, 8, 8))
    with pytest.raises(ShapeError):
        codec.decode(data, (1 << 20, 1 << 20))


def test_png_is_lossless_and_jpeg_webp_are_close(frames: np.ndarray) -> None:
    frame = frames[0]
    png = ImageCodec("png")
    assert np.array_equal(png.decode(png.encode(frame), frame.shape).numpy(), frame)
    smooth = np.tile(np.linspace(0, 255, 32, dtype=np.uint8)[None, :, None], (32, 1, 3))
    for fmt in ("jpeg", "webp"):
        codec = ImageCodec(fmt, quality=95)
        out = codec.decode(codec.encode(smooth), smooth.shape).numpy().astype(int)
        assert np.abs(out - smooth).mean() < 4


def test_image_quality_changes_size(frames: np.ndarray) -> None:
    for fmt in ("jpeg", "webp"):
        low = len(ImageCodec(fmt, 10).encode(frames[0]))
        high = len(ImageCodec(fmt, 95).encode(frames[0]))
        assert low < high


def test_image_codec_rejects_bad_input(frames: np.ndarray) -> None:
    codec = ImageCodec("jpeg", 75)
    data = codec.encode(frames[0])
    with pytest.raises(DecodeError, match="expected 64x64"):
        codec.decode(data, (64, 64, 3))
    with pytest.raises(DecodeError):
        codec.decode(b"not an image", (32, 32, 3))
    with pytest.raises(DecodeError):
        ImageCodec("webp").decode(data, (32, 32, 3))  # a JPEG is not accepted as WebP
    with pytest.raises(ShapeError):
        codec.encode(frames[0].astype(np.float32))


def test_unknown_codec() -> None:
    with pytest.raises(UnknownCodecError, match="unknown codec 'h265'"):
        create_codec("h265")
    with pytest.raises(UnknownCodecError, match="needs a trained bottleneck"):
        create_codec("factorized")
