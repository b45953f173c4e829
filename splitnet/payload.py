"""The payload one frame sends to the server: a validated record and the limits on its fields.

The wire format is the protobuf message ``splitnet.rpc.v1.Payload`` (``splitnet/rpc/convert.py``
converts both ways and applies the size limit); there is no second framing. Only data: no
pickle, nothing executable. Constructing a :class:`Payload` checks every field and raises
:class:`PayloadError` for anything malformed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from splitnet.errors import PayloadError

MAX_DATA_BYTES = 16 * 1024 * 1024  # default limit on the coded bytes of one frame
MAX_NDIM = 8
MAX_STRING = 255
WEIGHTS_ID_HEX = 16  # hex digits of the checkpoint's sha256 a frame carries: a consistency check, not a secret
DTYPES = ("float32", "float16", "uint8", "int8")


@dataclass(frozen=True)
class Payload:
    """Everything the server needs to finish one frame, and nothing executable.

    ``split`` is the node name where the model was cut ("" for a full-offload
    image); ``width`` is the bottleneck width fraction (1.0 when there is none);
    ``shape`` and ``dtype`` describe the tensor ``data`` decodes to.
    """

    model: str
    weights_sha256: str  # the checkpoint's sha256 in hex, or its first WEIGHTS_ID_HEX digits (what devices send)
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
