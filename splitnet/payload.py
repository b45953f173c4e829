"""The payload one frame sends to the server, and its versioned binary framing.

Framing (little-endian), version 1::

    magic   b"SNP"  (3 bytes)
    version u8      (1)
    model, weights_sha256, split, codec, dtype:  u8 length + UTF-8 each
    width   f32
    ndim    u8, then ndim x u32 dims
    seq     u64     frame sequence number
    sent_us u64     client's send time, microseconds since the epoch
    length  u32, then ``length`` bytes of coded data
    crc32   u32     over everything before it

Only data: no pickle, nothing executable. :func:`unpack` checks every bound
before it allocates, and raises :class:`PayloadError` for anything malformed.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

from splitnet.errors import PayloadError

MAGIC = b"SNP"
VERSION = 1
MAX_DATA_BYTES = 16 * 1024 * 1024  # default limit on the coded bytes of one frame
MAX_NDIM = 8
MAX_STRING = 255
DTYPES = ("float32", "float16", "uint8", "int8")

_HEAD = struct.Struct("<3sB")
_TAIL = struct.Struct("<fB")
_SEQ = struct.Struct("<QQI")
_CRC = struct.Struct("<I")


@dataclass(frozen=True)
class Payload:
    """Everything the server needs to finish one frame, and nothing executable.

    ``split`` is the node name where the model was cut ("" for a full-offload
    image); ``width`` is the bottleneck width fraction (1.0 when there is none);
    ``shape`` and ``dtype`` describe the tensor ``data`` decodes to.
    """

    model: str
    weights_sha256: str
    split: str
    width: float
    codec: str
    shape: tuple[int, ...]
    dtype: str
    data: bytes
    seq: int = 0
    sent_us: int = 0

    def __post_init__(self) -> None:
        for name in ("model", "weights_sha256", "split", "codec", "dtype"):
            value = getattr(self, name)
            if not isinstance(value, str) or len(value.encode()) > MAX_STRING:
                raise PayloadError(f"payload field {name!r} must be a string of at most {MAX_STRING} bytes")
        if self.dtype not in DTYPES:
            raise PayloadError(f"dtype {self.dtype!r} not one of {DTYPES}")
        shape = tuple(self.shape)
        if len(shape) > MAX_NDIM or any(not isinstance(d, int) or not 0 < d < 2**32 for d in shape):
            raise PayloadError(f"shape {shape} must have at most {MAX_NDIM} positive dims")
        object.__setattr__(self, "shape", shape)
        if not math.isfinite(self.width) or not 0.0 <= self.width <= 1.0:
            raise PayloadError(f"width {self.width} must be in [0, 1]")
        if not 0 <= self.seq < 2**64 or not 0 <= self.sent_us < 2**64:
            raise PayloadError("seq and sent_us must fit in 64 unsigned bits")
        if not isinstance(self.data, (bytes, bytearray, memoryview)):
            raise PayloadError("data must be bytes")


def _put_str(out: bytearray, value: str) -> None:
    raw = value.encode()
    out.append(len(raw))
    out += raw


def pack(p: Payload) -> bytes:
    """Serialize a payload to its versioned binary framing."""
    out = bytearray(_HEAD.pack(MAGIC, VERSION))
    for value in (p.model, p.weights_sha256, p.split, p.codec, p.dtype):
        _put_str(out, value)
    out += _TAIL.pack(p.width, len(p.shape))
    out += struct.pack(f"<{len(p.shape)}I", *p.shape)
    out += _SEQ.pack(p.seq, p.sent_us, len(p.data))
    out += p.data
    out += _CRC.pack(zlib.crc32(out))
    return bytes(out)


class _Reader:
    def __init__(self, buf: bytes) -> None:
        self.buf, self.pos = buf, 0

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise PayloadError(f"payload truncated while reading {what} "
                               f"(need {n} bytes at offset {self.pos}, have {len(self.buf) - self.pos})")
        chunk = self.buf[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: struct.Struct, what: str) -> tuple:
        return fmt.unpack(self.take(fmt.size, what))

    def string(self, what: str) -> str:
        (n,) = self.take(1, what)
        try:
            return self.take(n, what).decode()
        except UnicodeDecodeError as exc:
            raise PayloadError(f"payload field {what} is not UTF-8") from exc


def unpack(buf: bytes, max_data_bytes: int = MAX_DATA_BYTES) -> Payload:
    """Parse and validate a framed payload; raises :class:`PayloadError` on any defect."""
    if not isinstance(buf, (bytes, bytearray, memoryview)):
        raise PayloadError(f"payload must be bytes, got {type(buf).__name__}")
    buf = bytes(buf)
    if len(buf) > max_data_bytes + 4096:
        raise PayloadError(f"payload of {len(buf)} bytes exceeds the limit of {max_data_bytes} bytes")
    if len(buf) < _HEAD.size + _CRC.size:
        raise PayloadError(f"payload of {len(buf)} bytes is too short")
    (crc,) = _CRC.unpack_from(buf, len(buf) - _CRC.size)
    r = _Reader(buf[: -_CRC.size])
    magic, version = r.unpack(_HEAD, "header")
    if magic != MAGIC:
        raise PayloadError(f"not a splitnet payload (magic {magic!r})")
    if version != VERSION:
        raise PayloadError(f"payload version {version} not supported (this build reads version {VERSION})")
    if zlib.crc32(r.buf) != crc:
        raise PayloadError("payload checksum mismatch: corrupted in transit")
    model, sha, split, codec, dtype = (r.string(n) for n in ("model", "weights_sha256", "split", "codec", "dtype"))
    width, ndim = r.unpack(_TAIL, "width/ndim")
    if ndim > MAX_NDIM:
        raise PayloadError(f"payload has {ndim} dims, at most {MAX_NDIM} allowed")
    shape = struct.unpack(f"<{ndim}I", r.take(4 * ndim, "shape"))
    seq, sent_us, length = r.unpack(_SEQ, "seq/length")
    if length > max_data_bytes:
        raise PayloadError(f"payload data of {length} bytes exceeds the limit of {max_data_bytes} bytes")
    data = r.take(length, "data")
    if r.pos != len(r.buf):
        raise PayloadError(f"{len(r.buf) - r.pos} trailing bytes after the payload data")
    return Payload(model, sha, split, float(width), codec, tuple(shape), dtype, data, seq, sent_us)
