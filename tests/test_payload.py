"""The frame's payload on the wire: the protobuf message ``splitnet.rpc.v1`` defines, and nothing else.

Bytes a server receives go through ``InferRequest.FromString`` and ``convert.request_payload``;
anything malformed is a :class:`PayloadError` (or protobuf's ``DecodeError`` for bytes that are
not a message at all), never a crash or a half-built frame.
"""

from __future__ import annotations

import pytest
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

from splitnet.errors import PayloadError
from splitnet.payload import MAX_DATA_BYTES, Payload
from splitnet.rpc import convert
from splitnet.rpc.v1 import splitnet_pb2 as pb


def _payload(**kw: object) -> Payload:
    base = dict(model="resnet56_cifar", weights_sha256="ab" * 32, split="layer1", width=0.5, codec="factorized",
                shape=(16, 32, 32), dtype="float32", data=b"\x01\x02\x03", seq=7, sent_us=1_700_000_000_000_000)
    base.update(kw)
    return Payload(**base)  # type: ignore[arg-type]


def _received(raw: bytes, max_data_bytes: int = MAX_DATA_BYTES) -> Payload:
    """What a server makes of the bytes of one ``InferRequest``."""
    return convert.request_payload(pb.InferRequest.FromString(raw), max_data_bytes)


def test_round_trip_through_the_wire_bytes() -> None:
    p = _payload()
    assert _received(convert.request(p).SerializeToString()) == p


def test_only_data_types_in_the_protocol() -> None:
    """Scalars, strings, bytes, enums and this package's own messages: no ``Any`` (a type chosen by the
    sender), nothing that names code to run."""
    for msg in pb.DESCRIPTOR.message_types_by_name.values():
        for f in msg.fields:
            if f.message_type is not None:
                assert f.message_type.full_name.startswith("splitnet.rpc.v1."), f"{msg.name}.{f.name}"


def test_size_limit() -> None:
    raw = convert.request(_payload(data=b"x" * 5000)).SerializeToString()
    with pytest.raises(PayloadError, match="exceeds the limit"):
        _received(raw, max_data_bytes=1000)
    assert _received(raw, max_data_bytes=5000).data == b"x" * 5000


def test_a_request_without_payload_is_refused() -> None:
    with pytest.raises(PayloadError, match="no payload"):
        _received(pb.InferRequest(seq=3).SerializeToString())


@pytest.mark.parametrize("bad", [dict(width=1.5), dict(width=float("nan")), dict(shape=(0, 3)),
                                 dict(shape=tuple(range(1, 11))), dict(dtype="object"), dict(model="m" * 300),
                                 dict(seq=-1)])
def test_invalid_fields_are_rejected(bad: dict) -> None:
    with pytest.raises(PayloadError):
        _payload(**bad)


@pytest.mark.parametrize("change", [dict(width=2.0), dict(dtype="pickle"), dict(shape=[0, 4]),
                                    dict(shape=list(range(1, 12)))])
def test_invalid_fields_on_the_wire_are_rejected(change: dict) -> None:
    req = convert.request(_payload())
    for k, v in change.items():
        if k == "shape":
            req.payload.shape[:] = v
        else:
            setattr(req.payload, k, v)
    with pytest.raises(PayloadError):
        _received(req.SerializeToString())


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_never_crash(raw: bytes) -> None:
    try:
        _received(raw)
    except (PayloadError, DecodeError):
        pass


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_mutated_requests_are_rejected_or_parse_consistently(data: st.DataObject) -> None:
    raw = bytearray(convert.request(_payload(data=bytes(range(64)))).SerializeToString())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    try:
        p = _received(bytes(raw))
    except (PayloadError, DecodeError):
        return
    # anything accepted is a valid frame that travels again unchanged
    assert _received(convert.request(p).SerializeToString()) == p
