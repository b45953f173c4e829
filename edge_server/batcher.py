"""Dynamic micro-batching of tail inference across requests and clients.

Requests are validated in the caller's thread, then queued (bounded). One worker
thread takes the oldest request, gathers up to ``max_batch`` queued requests with
the same batch key (split, codec family, width, codec) for at most ``max_wait_ms``,
decodes them together and runs the tail once. Requests whose budget ran out while
queued are answered with :class:`DeadlineExpired` instead of being run.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from concurrent.futures import Future
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch

from edge_server.stats import INLINE_EVENTS, ServerStats
from splitnet.errors import SplitnetError
from splitnet.payload import Payload
from splitnet.pipeline import ServerSide, Timing
from splitnet.rpc.convert import Prediction, ServerTiming, predictions_from_output


class Overloaded(SplitnetError):
    """The request queue is full; the client should back off or run locally."""


class DeadlineExpired(SplitnetError):
    """The request's budget ran out before the server could run it."""


class ShuttingDown(SplitnetError):
    """The server is stopping and takes no new work."""


@dataclass
class _Job:
    key: tuple
    payload: Payload
    top_k: int
    enqueued: float  # time.monotonic()
    deadline: float | None  # time.monotonic() after which the result is useless
    future: Future = field(default_factory=Future)


class MicroBatcher:
    """Queue + worker thread running ``ServerSide`` on batches of compatible payloads."""

    def __init__(self, server_side: ServerSide, max_batch: int = 32, max_wait_ms: float = 0.0,
                 max_queue: int = 512, stats: ServerStats | None = None) -> None:
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch and max_queue must be >= 1 and max_wait_ms >= 0")
        self.server_side = server_side
        self._is_detector = server_side.checkpoint.spec.is_detector
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1e3
        self.stats = stats or ServerStats()
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=max_queue)
        self._pending: deque[_Job] = deque()
        self._closed = threading.Event()
        self._running = threading.Lock()  # held while a batch runs (worker thread or inline caller)
        self._worker = threading.Thread(target=self._run, name="splitnet-batcher", daemon=True)
        self._worker.start()

    # ------------------------------------------------------------ submitting
    def submit(self, payload: Payload, top_k: int = 5, budget_s: float | None = None) -> Future:
        """Validate and enqueue; the future resolves to ``(Prediction, ServerTiming)``.

        Raises a :class:`SplitnetError` at once for an invalid payload, :class:`Overloaded`
        when the queue is full and :class:`ShuttingDown` after :meth:`close`.
        """
        if self._closed.is_set():
            raise ShuttingDown("server is shutting down")
        key = self.server_side.batch_key(payload)
        now = time.monotonic()
        job = _Job(key, payload, top_k, now, now + budget_s if budget_s else None)
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self.stats.count("rejected_overload")
            raise Overloaded(f"request queue is full ({self._queue.maxsize} frames); retry later") from None
        return job.future

    def run_inline_if_idle(self, payload: Payload, top_k: int = 5, budget_s: float | None = None,
                           record: bool = True, received: float | None = None
                           ) -> tuple[Prediction, ServerTiming] | None:
        """Run one frame on the calling thread when nothing is queued or running; else None.

        Unary calls take this path: an idle server then answers without two thread
        hand-offs (each a wake-up of a sleeping thread), and without the batch path's
        job, future and per-job bookkeeping. A busy server returns None and the caller
        goes through :meth:`submit`, so batching is unchanged under load. Raises the
        payload's :class:`SplitnetError`, or :class:`DeadlineExpired` for a budget (s)
        already spent, counted from ``received`` (time.monotonic() when the frame came in; default
        now), as a queued frame's is from when it was queued. ``record=False`` leaves the answered
        frame's counters and timings to the caller (``ServerStats.record_answer(..., inline=True)``,
        booked after the response is sent).
        """
        if self._closed.is_set():
            raise ShuttingDown("server is shutting down")
        start = time.monotonic() if received is None else received
        key = self.server_side.batch_key(payload)
        if self._pending or not self._queue.empty() or not self._running.acquire(blocking=False):
            return None
        try:
            if self._pending or not self._queue.empty():  # work arrived meanwhile: keep its order
                return None
            if budget_s is not None and time.monotonic() - start > budget_s:
                self.stats.count("deadline_expired")
                raise DeadlineExpired(f"frame {payload.seq} was past its budget of {budget_s * 1e3:.3f} ms "
                                      "before it could run")
            try:
                preds, timing = self._compute([payload], top_k, key)
            except SplitnetError:
                self.stats.count("bad_payload")
                raise
            except Exception:
                self.stats.count("internal_error")
                raise
        finally:
            self._running.release()
        if record:
            self.stats.record(INLINE_EVENTS, queue=0.0, decode=timing.decode_ms, tail=timing.tail_ms)
        return preds[0], ServerTiming(0.0, timing.decode_ms, timing.tail_ms, 1)

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize() + len(self._pending)

    # ---------------------------------------------------------------- worker
    def _next_job(self, timeout: float | None) -> _Job | None:
        if self._pending:
            return self._pending.popleft()
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def _gather(self, first: _Job) -> list[_Job]:
        batch = [first]
        others: deque[_Job] = deque()
        # Same-key jobs already pending join at once; the rest keep their order.
        while self._pending and len(batch) < self.max_batch:
            job = self._pending.popleft()
            (batch if job.key == first.key else others).append(job)
        give_up = first.enqueued + self.max_wait_s
        while len(batch) < self.max_batch:
            remaining = give_up - time.monotonic()
            try:
                job = self._queue.get(timeout=max(0.0, remaining)) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                self._closed.set()
                break
            (batch if job.key == first.key else others).append(job)
        others.extend(self._pending)
        self._pending = others
        return batch

    def _run(self) -> None:
        with torch.inference_mode():  # the worker only ever runs inference: autograd off for its life
            self._serve_queue()

    def _serve_queue(self) -> None:
        while True:
            if self._closed.is_set() and not self._pending and self._queue.empty():
                return
            job = self._next_job(timeout=0.1)
            if job is None:
                if self._closed.is_set() and self._queue.empty() and not self._pending:
                    return
                continue
            batch = self._gather(job)
            with self._running:
                self._execute(batch)

    def _execute(self, batch: list[_Job]) -> None:
        now = time.monotonic()
        live = []
        for job in batch:
            if not job.future.set_running_or_notify_cancel():  # the caller gave up (cancelled call)
                self.stats.count("cancelled")
                continue
            if job.deadline is not None and now > job.deadline:
                self.stats.count("deadline_expired")
                job.future.set_exception(DeadlineExpired(
                    f"frame {job.payload.seq} waited {(now - job.enqueued) * 1e3:.1f} ms, past its budget"))
            else:
                live.append(job)
        if not live:
            return
        try:
            results = self._infer(live)
        except Exception:  # noqa: BLE001 - retried one by one below to find the culprit
            results = None
        if results is None:  # one bad frame must not fail its neighbours: run them one by one
            for job in live:
                try:
                    self._resolve([job], self._infer([job]))
                except SplitnetError as exc:
                    self.stats.count("bad_payload")
                    job.future.set_exception(exc)
                except Exception as exc:  # noqa: BLE001 - reported to the caller as INTERNAL
                    self.stats.count("internal_error")
                    job.future.set_exception(exc)
            return
        self._resolve(live, results)

    def _compute(self, payloads: list[Payload], top_k: int,
                 key: tuple | None = None) -> tuple[list[Prediction], Timing]:
        """Decode + tail on payloads of one batch key (``key``: already validated), as predictions."""
        side, timing = self.server_side, Timing()
        # The server's threads are in inference mode for life; another caller (a test) enters it here.
        with nullcontext() if torch.is_inference_mode_enabled() else torch.inference_mode():
            output = (side.run_tail(key, side.decode(payloads, timing, key), timing) if key is not None
                      else side.infer(payloads, timing))
            return predictions_from_output(side.model_name, output, top_k, self._is_detector), timing

    def _infer(self, jobs: list[_Job]) -> tuple[list[Prediction], Timing, float]:
        start = time.monotonic()
        preds, timing = self._compute([j.payload for j in jobs], max(j.top_k for j in jobs))
        return preds, timing, start

    def _resolve(self, jobs: list[_Job], results: tuple[list[Prediction], Timing, float]) -> None:
        preds, timing, start = results
        n = len(jobs)
        self.stats.count("frames_ok", n)
        self.stats.count("batches")
        self.stats.observe("decode", timing.decode_ms / n)
        self.stats.observe("tail", timing.tail_ms / n)
        for job, pred in zip(jobs, preds):
            queue_ms = (start - job.enqueued) * 1e3
            self.stats.observe("queue", queue_ms)
            job.future.set_result((pred.limited(job.top_k),
                                   ServerTiming(queue_ms, timing.decode_ms / n, timing.tail_ms / n, n)))

    def close(self, timeout: float | None = None) -> None:
        """Stop taking work, finish what is queued, stop the worker."""
        if not self._closed.is_set():
            self._closed.set()
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                pass
        self._worker.join(timeout)
