from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from splitnet.errors import PayloadError
from splitnet.payload import MAX_DATA_BYTES, Payload, pack, unpack


def _payload(**kw: object) -> Payload:
    base = dict(model="resnet56_cifar", weights_sha256="ab" * 32, split="layer1", width=0.5, codec="factorized",
                shape=(16, 32, 32), dtype="float32", data=b"\x01\x02\x03", seq=7, sent_us=1_700_000_000_000_000)
    base.update(kw)
    return Payload(**base)  # type: ignore[arg-type]


def test_round_trip() -> None:
    p = _payload()
    assert unpack(pack(p)) == p


def test_no_pickle_on_the_wire() -> None:
    raw = pack(_payload())
    assert raw[:3] == b"SNP" and b"\x80\x04" not in raw[:8]  # our magic, not a pickle protocol header


@pytest.mark.parametrize("cut", [0, 1, 4, 20, -5, -1])
def test_truncation_is_detected(cut: int) -> None:
    raw = pack(_payload())
    with pytest.raises(PayloadError):
        unpack(raw[:cut])


def test_corruption_is_detected() -> None:
    raw = bytearray(pack(_payload()))
    raw[30] ^= 0x40
    with pytest.raises(PayloadError, match="checksum"):
        unpack(bytes(raw))


def test_version_and_magic_are_checked() -> None:
    raw = bytearray(pack(_payload()))
    raw[3] = 99
    with pytest.raises(PayloadError, match="version 99"):
        unpack(bytes(raw))
    with pytest.raises(PayloadError, match="not a splitnet payload"):
        unpack(b"GIF89a" + bytes(raw[6:]))


def test_size_limit() -> None:
    raw = pack(_payload(data=b"x" * 5000))
    with pytest.raises(PayloadError, match="exceeds the limit"):
        unpack(raw, max_data_bytes=1000)
    with pytest.raises(PayloadError, match="exceeds the limit"):
        unpack(b"x" * (MAX_DATA_BYTES + 5000))


@pytest.mark.parametrize("bad", [dict(width=1.5), dict(width=float("nan")), dict(shape=(0, 3)),
                                 dict(shape=tuple(range(1, 11))), dict(dtype="object"), dict(model="m" * 300),
                                 dict(seq=-1)])
def test_invalid_fields_are_rejected(bad: dict) -> None:
    with pytest.raises(PayloadError):
        _payload(**bad)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_never_crash(raw: bytes) -> None:
    try:
        unpack(raw)
    except PayloadError:
        pass


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_mutated_payloads_are_rejected_or_parse_consistently(data: st.DataObject) -> None:
    raw = bytearray(pack(_payload(data=bytes(range(64)))))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    try:
        p = unpack(bytes(raw))
    except PayloadError:
        return
    assert pack(p) == bytes(raw)  # anything accepted re-frames to the very same bytes
