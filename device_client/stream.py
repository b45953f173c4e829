"""One bidirectional InferStream call: send requests, collect responses by sequence number."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

import grpc

from splitnet.rpc.v1 import splitnet_pb2 as pb
from splitnet.rpc.v1 import splitnet_pb2_grpc as pb_grpc

_END = None
LateCallback = Callable[[pb.InferResponse, float], None]


class StreamBroken(Exception):
    """The stream ended with an error (server gone, cancelled, ...)."""

    def __init__(self, code: grpc.StatusCode | None, message: str) -> None:
        super().__init__(message)
        self.code = code


class StreamSession:
    """Requests go in through :meth:`send`; :meth:`wait` returns the response for a sequence number.

    Also counts the payload bytes of frames sent and not answered yet (:attr:`inflight_bytes`),
    late ones included: their bytes are on the link until their answer comes back. Each
    response carries its arrival time (``time.perf_counter()``), so the client can tell the
    network's time from the time an answer waited in its own in-order window; an answer the
    client gave up on goes to the callback given to :meth:`discard` (it still tells how
    slow the link is).
    """

    def __init__(self, stub: pb_grpc.SplitInferenceStub, metadata: tuple = ()) -> None:
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._responses: dict[int, tuple[pb.InferResponse, float]] = {}  # seq -> (response, arrival)
        self._unanswered: dict[int, int] = {}  # seq -> payload bytes
        self._discarded: dict[int, LateCallback | None] = {}  # seqs whose answers nobody waits for any more
        self._cond = threading.Condition()
        self._error: StreamBroken | None = None
        self._closed = False
        self._call = stub.InferStream(iter(self._requests.get, _END), metadata=metadata)
        self._reader = threading.Thread(target=self._read, name="splitnet-stream", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for resp in self._call:
                arrived = time.perf_counter()
                with self._cond:
                    self._unanswered.pop(resp.seq, None)
                    if resp.seq in self._discarded:
                        late = self._discarded.pop(resp.seq)
                    else:
                        late = None
                        self._responses[resp.seq] = (resp, arrived)
                        self._cond.notify_all()
                        continue
                if late is not None:
                    try:
                        late(resp, arrived)
                    except Exception:  # noqa: BLE001 - bookkeeping must never end the reader
                        pass
            error = StreamBroken(None, "stream ended")
        except grpc.RpcError as exc:
            error = StreamBroken(exc.code(), exc.details() or str(exc.code()))
        with self._cond:
            self._error = error
            self._unanswered.clear()
            self._discarded.clear()
            self._cond.notify_all()
        self._requests.put(_END)  # release gRPC's request-iterator thread

    @property
    def broken(self) -> bool:
        """The call has ended (with an error, or closed by the server): open a new one."""
        with self._cond:
            return self._error is not None

    @property
    def inflight_bytes(self) -> int:
        """Payload bytes of the frames sent on this stream and not answered yet."""
        with self._cond:
            return sum(self._unanswered.values())

    def send(self, request: pb.InferRequest, payload_bytes: int = 0) -> None:
        with self._cond:
            if self._error is not None:
                raise self._error
            self._unanswered[request.seq] = payload_bytes
        self._requests.put(request)

    def wait(self, seq: int, timeout_s: float | None) -> pb.InferResponse:
        """The response for ``seq``; raises :class:`StreamBroken` or ``TimeoutError``."""
        return self.wait_timed(seq, timeout_s)[0]

    def wait_timed(self, seq: int, timeout_s: float | None) -> tuple[pb.InferResponse, float]:
        """The response for ``seq`` and its arrival (``time.perf_counter()``); raises like :meth:`wait`."""
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

    def discard(self, seq: int, on_late: LateCallback | None = None) -> None:
        """Forget a frame whose answer is no longer wanted (late): now, or when it arrives.

        ``on_late(response, arrival)`` is called with the answer when there is one (from the
        reader thread if it comes later).
        """
        with self._cond:
            got = self._responses.pop(seq, None)
            if got is None and seq in self._unanswered:
                self._discarded[seq] = on_late
        if got is not None and on_late is not None:
            on_late(*got)

    def close(self, timeout_s: float = 5.0) -> None:
        """End the call and wait (up to ``timeout_s``) for the reader thread to finish.

        Joining matters at process exit: a daemon thread still inside gRPC's C++ code when
        the interpreter shuts down can abort the process.
        """
        if not self._closed:
            self._closed = True
            self._requests.put(_END)
            self._call.cancel()
        if self._reader is not threading.current_thread():
            self._reader.join(timeout_s)
