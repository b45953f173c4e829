"""One bidirectional InferStream call: send requests, collect responses by sequence number."""

from __future__ import annotations

import queue
import threading
import time

import grpc

from splitnet.rpc.v1 import splitnet_pb2 as pb
from splitnet.rpc.v1 import splitnet_pb2_grpc as pb_grpc

_END = None


class StreamBroken(Exception):
    """The stream ended with an error (server gone, cancelled, ...)."""

    def __init__(self, code: grpc.StatusCode | None, message: str) -> None:
        super().__init__(message)
        self.code = code


class StreamSession:
    """Requests go in through :meth:`send`; :meth:`wait` returns the response for a sequence number."""

    def __init__(self, stub: pb_grpc.SplitInferenceStub, metadata: tuple = ()) -> None:
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._responses: dict[int, pb.InferResponse] = {}
        self._cond = threading.Condition()
        self._error: StreamBroken | None = None
        self._closed = False
        self._call = stub.InferStream(iter(self._requests.get, _END), metadata=metadata)
        self._reader = threading.Thread(target=self._read, name="splitnet-stream", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for resp in self._call:
                with self._cond:
                    self._responses[resp.seq] = resp
                    self._cond.notify_all()
            error = StreamBroken(None, "stream ended")
        except grpc.RpcError as exc:
            error = StreamBroken(exc.code(), exc.details() or str(exc.code()))
        with self._cond:
            self._error = error
            self._cond.notify_all()
        self._requests.put(_END)  # release gRPC's request-iterator thread

    @property
    def broken(self) -> bool:
        """The call has ended (with an error, or closed by the server): open a new one."""
        with self._cond:
            return self._error is not None

    def send(self, request: pb.InferRequest) -> None:
        if self._error is not None:
            raise self._error
        self._requests.put(request)

    def wait(self, seq: int, timeout_s: float | None) -> pb.InferResponse:
        """The response for ``seq``; raises :class:`StreamBroken` or ``TimeoutError``."""
        end = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while seq not in self._responses:
                if self._error is not None:
                    raise self._error
                remaining = None if end is None else end - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"no response for frame {seq} in time")
                self._cond.wait(remaining)
            return self._responses.pop(seq)

    def discard(self, seq: int) -> None:
        """Forget a frame whose answer is no longer wanted (it came too late)."""
        with self._cond:
            self._responses.pop(seq, None)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._requests.put(_END)
            self._call.cancel()
