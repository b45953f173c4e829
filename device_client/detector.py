"""``SplitDetector``: split detection inside a perception loop.

A camera produces frames at its own rate; the detector must not fall behind. Frames
go into a small bounded queue (``max_pending``); ``max_in_flight`` workers take them
in order, each running head + encoder (+ object filter) and offloading through its own
:class:`SplitClient` (which falls back to local inference). When the queue is full the
oldest waiting frame is dropped (keep the newest), and a frame that waited past its
deadline is dropped instead of run: latency stays bounded when the link slows down.
Results come back in frame order; a dropped frame's result says so.

    det = SplitDetector.connect("127.0.0.1:50051", checkpoint="det.pt", deadline_ms=200)
    for frame in camera:
        boxes = det(frame)                      # blocking: this frame's boxes
    # or, non-blocking:
    for frame in camera:
        det.submit(frame)
        for r in det.poll():                    # finished results, in frame order
            draw(r.boxes)
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from device_client.client import FrameResult, SplitClient
from device_client.connection import ServerConfigError, TlsOptions
from policies.common.policy import Policy
from splitnet.checkpoint import SplitCheckpoint
from splitnet.errors import SplitnetError
from splitnet.rpc.convert import Box


@dataclass
class DetectorResult:
    """What happened to one submitted frame (times in ms since its submission)."""

    index: int  # submission order, from 0
    result: FrameResult | None  # None when the frame was dropped
    drop_reason: str = ""  # "queue_full" (a newer frame took its place) or "stale" (waited past its deadline)
    latency_ms: float = 0.0  # submission to result, queueing included

    @property
    def dropped(self) -> bool:
        return self.result is None

    @property
    def boxes(self) -> list[Box]:
        return self.result.boxes if self.result is not None else []


@dataclass
class _Frame:
    index: int
    frame: np.ndarray
    submitted: float  # time.perf_counter()
    deadline_ms: float | None
    done: threading.Event = field(default_factory=threading.Event)


class SplitDetector:
    """Bounded, in-order, drop-the-oldest detection over one or more :class:`SplitClient` workers."""

    def __init__(self, clients: Sequence[SplitClient], max_pending: int = 1,
                 deadline_ms: float | None = None) -> None:
        if not clients:
            raise SplitnetError("SplitDetector needs at least one client")
        if not clients[0].device.spec.is_detector:
            raise SplitnetError(f"{clients[0].device.checkpoint.model_name} is not a detector")
        if max_pending < 1:
            raise SplitnetError("max_pending must be >= 1")
        self.clients = list(clients)
        self.max_pending = max_pending
        self.deadline_ms = deadline_ms
        self.last: DetectorResult | None = None
        self.dropped = 0
        self._pending: deque[_Frame] = deque()
        self._results: dict[int, DetectorResult] = {}
        self._next_index = 0
        self._next_delivery = 0
        self._cond = threading.Condition()
        self._closed = False
        self._error: ServerConfigError | None = None  # a worker's configuration error, raised by submit/poll
        self._workers = [threading.Thread(target=self._work, args=(c,), name=f"splitnet-detector-{i}", daemon=True)
                         for i, c in enumerate(self.clients)]
        for w in self._workers:
            w.start()

    @classmethod
    def connect(cls, servers: str | Sequence[str] | None, checkpoint: str | Path | SplitCheckpoint | None = None,
                policy: Policy | str | None = None, deadline_ms: float | None = None, max_in_flight: int = 2,
                max_pending: int = 1, tls: TlsOptions | None = None, token: str | None = None,
                **client_options: object) -> SplitDetector:
        """Load the checkpoint once and open ``max_in_flight`` clients that share it."""
        ckpt = checkpoint if isinstance(checkpoint, SplitCheckpoint) else SplitCheckpoint.load(checkpoint)
        clients = [SplitClient(servers, ckpt, policy=policy, deadline_ms=deadline_ms, tls=tls, token=token,
                               warm_up=i == 0, link_probe_s=1.0 if i == 0 else 0.0, **client_options)
                   for i in range(max(1, max_in_flight))]
        return cls(clients, max_pending=max_pending, deadline_ms=deadline_ms)

    # ---------------------------------------------------------------- API
    def submit(self, frame: np.ndarray, deadline_ms: float | None = None) -> int:
        """Queue a uint8 ``[H, W, 3]`` frame without waiting; returns its index."""
        if self._closed:
            raise SplitnetError("detector is closed")
        if self._error is not None:
            raise self._error
        with self._cond:
            item = _Frame(self._next_index, np.asarray(frame), time.perf_counter(),
                          deadline_ms if deadline_ms is not None else self.deadline_ms)
            self._next_index += 1
            while len(self._pending) >= self.max_pending:
                self._drop(self._pending.popleft(), "queue_full")
            self._pending.append(item)
            self._cond.notify_all()
        return item.index

    def poll(self, timeout_s: float = 0.0) -> list[DetectorResult]:
        """Finished results in frame order (waits up to ``timeout_s`` for the next one)."""
        with self._cond:
            if timeout_s > 0 and self._next_delivery not in self._results:
                self._cond.wait_for(lambda: self._next_delivery in self._results or self._error is not None,
                                    timeout_s)
            if self._error is not None:
                raise self._error
            out = []
            while self._next_delivery in self._results:
                out.append(self._results.pop(self._next_delivery))
                self._next_delivery += 1
            return out

    def __call__(self, frame: np.ndarray, deadline_ms: float | None = None) -> list[Box]:
        """Detect in one frame and wait for it; results of earlier frames are discarded."""
        index = self.submit(frame, deadline_ms)
        while True:
            for r in self.poll(timeout_s=1.0):
                if r.index == index:
                    self.last = r
                    return r.boxes

    def flush(self, timeout_s: float = 30.0) -> list[DetectorResult]:
        """Wait until every submitted frame has a result; return those not yet polled, in order."""
        deadline = time.monotonic() + timeout_s
        out: list[DetectorResult] = []
        while self._next_delivery < self._next_index and time.monotonic() < deadline:
            out += self.poll(timeout_s=min(0.5, max(0.0, deadline - time.monotonic())))
        return out

    def close(self) -> None:
        with self._cond:
            self._closed = True
            while self._pending:
                self._drop(self._pending.popleft(), "closed")
            self._cond.notify_all()
        for w in self._workers:
            w.join(timeout=5.0)
        for c in self.clients:
            c.close()

    def __enter__(self) -> SplitDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ workers
    def _drop(self, item: _Frame, reason: str) -> None:  # with self._cond held
        self.dropped += 1
        self._results[item.index] = DetectorResult(item.index, None, reason,
                                                   (time.perf_counter() - item.submitted) * 1e3)
        self._cond.notify_all()

    def _take(self) -> _Frame | None:
        with self._cond:
            while True:
                while self._pending:
                    item = self._pending.popleft()
                    waited_ms = (time.perf_counter() - item.submitted) * 1e3
                    if item.deadline_ms and waited_ms > item.deadline_ms:
                        self._drop(item, "stale")
                        continue
                    return item
                if self._closed:
                    return None
                self._cond.wait()

    def _work(self, client: SplitClient) -> None:
        while (item := self._take()) is not None:
            waited_ms = (time.perf_counter() - item.submitted) * 1e3
            client.deadline_ms = max(1.0, item.deadline_ms - waited_ms) if item.deadline_ms else None
            try:
                result = client.infer(item.frame)
            except ServerConfigError as exc:  # the server refuses this setup: tell the caller, loudly
                with self._cond:
                    self._error = exc
                    self._drop(item, f"error: {exc}")
                continue
            except Exception as exc:  # noqa: BLE001 - a frame the device cannot run at all: report, keep going
                with self._cond:
                    self._drop(item, f"error: {exc}")
                continue
            with self._cond:
                self._results[item.index] = DetectorResult(item.index, result, "",
                                                           (time.perf_counter() - item.submitted) * 1e3)
                self._cond.notify_all()
