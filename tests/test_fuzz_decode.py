"""Random and mutated coded bytes through every decoder: a specific error or a bounded tensor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from splitnet.codecs import BottleneckCodec, create_codec
from splitnet.errors import PayloadError, SplitnetError
from tests.conftest import make_bottleneck

_BOTTLENECKS = {prior: make_bottleneck(16, prior, latent=8) for prior in ("factorized", "hyperprior")}
_FEATURES = torch.relu(torch.randn(16, 16, 16))


def _valid(codec_id: str) -> tuple[object, bytes, tuple[int, ...]]:
    if codec_id in _BOTTLENECKS:
        codec = BottleneckCodec(_BOTTLENECKS[codec_id])
        return codec, codec.encode(_FEATURES), (16, 16, 16)
    if codec_id in ("jpeg", "webp", "png"):
        codec = create_codec(codec_id)
        frame = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
        return codec, codec.encode(frame), (16, 16, 3)
    codec = create_codec(codec_id)
    return codec, codec.encode(_FEATURES), (16, 16, 16)


CODECS = ["factorized", "hyperprior", "fp32", "fp16", "int8+zstd", "int4+zstd", "jpeg", "webp", "png"]


@pytest.mark.parametrize("codec_id", CODECS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_bytes(codec_id: str, data: st.DataObject) -> None:
    codec, valid, shape = _valid(codec_id)
    raw = bytearray(valid)
    mode = data.draw(st.sampled_from(["flip", "truncate", "random", "extend"]))
    if mode == "flip" and raw:
        for _ in range(data.draw(st.integers(1, 8))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    elif mode == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    elif mode == "random":
        raw = bytearray(data.draw(st.binary(max_size=2048)))
    else:
        raw += data.draw(st.binary(min_size=1, max_size=512))
    try:
        out = codec.decode(bytes(raw), shape)
    except PayloadError:
        return
    except SplitnetError as exc:  # any other splitnet error must still be specific
        pytest.fail(f"unexpected {type(exc).__name__}: {exc}")
    assert tuple(out.shape) == shape
    if out.is_floating_point():
        assert torch.isfinite(out).all()
