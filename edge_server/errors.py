"""Mapping of splitnet exceptions to gRPC status codes (one table, used by every RPC)."""

from __future__ import annotations

import grpc

from edge_server.batcher import DeadlineExpired, Overloaded, ShuttingDown
from splitnet.errors import (
    DecodeError,
    PayloadError,
    ShapeError,
    SplitnetError,
    UnknownCodecError,
    UnknownModelError,
    UnknownSplitPointError,
    UnknownWidthError,
)
from splitnet.pipeline import WeightsMismatchError

_TABLE: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (WeightsMismatchError, grpc.StatusCode.FAILED_PRECONDITION),
    (UnknownModelError, grpc.StatusCode.NOT_FOUND),
    (UnknownSplitPointError, grpc.StatusCode.NOT_FOUND),
    (Overloaded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (DeadlineExpired, grpc.StatusCode.DEADLINE_EXCEEDED),
    (ShuttingDown, grpc.StatusCode.UNAVAILABLE),
    (DecodeError, grpc.StatusCode.INVALID_ARGUMENT),
    (PayloadError, grpc.StatusCode.INVALID_ARGUMENT),
    (ShapeError, grpc.StatusCode.INVALID_ARGUMENT),
    (UnknownCodecError, grpc.StatusCode.INVALID_ARGUMENT),
    (UnknownWidthError, grpc.StatusCode.INVALID_ARGUMENT),
    (SplitnetError, grpc.StatusCode.INVALID_ARGUMENT),
)


def status_for(exc: BaseException) -> grpc.StatusCode:
    """The status code a caller gets for ``exc`` (INTERNAL for anything unexpected)."""
    for kind, code in _TABLE:
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.INTERNAL
