"""The ``splitnet.rpc.v1.SplitInference`` servicer on ``grpc.aio``: RPC methods on top of the micro-batcher.

Every RPC is a coroutine on the server's event loop; an open stream waiting for frames is
a suspended coroutine, not a thread. Decoding and the tail run on the batcher's worker
thread; the coroutines only validate, queue and await the batcher's futures, except for a
unary frame that is the server's only work: it runs on the loop itself (no thread hand-offs).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from concurrent.futures import Future

import grpc

from edge_server.batcher import MicroBatcher
from edge_server.errors import status_for
from splitnet import __version__
from splitnet.codecs import FEATURE_CODECS, IMAGE_CODECS
from splitnet.payload import MAX_DATA_BYTES, Payload
from splitnet.pipeline import ServerSide
from splitnet.rpc import convert
from splitnet.rpc.v1 import splitnet_pb2 as pb
from splitnet.rpc.v1 import splitnet_pb2_grpc as pb_grpc

log = logging.getLogger("splitnet.edge_server")
_END = object()
_NO_DEADLINE_S = 1e7  # time_remaining() beyond this (or None) means the caller set no deadline


def call_remaining_s(context: grpc.aio.ServicerContext) -> float | None:
    """Seconds left of the call's deadline; None when the caller set none."""
    remaining = context.time_remaining()
    if remaining is None or remaining > _NO_DEADLINE_S:
        return None
    return max(0.0, remaining)


class SplitInferenceServicer(pb_grpc.SplitInferenceServicer):
    """Answers GetModelInfo, Infer, InferStream, GetStats and Probe for one loaded checkpoint.

    ``default_budget_s`` bounds a frame whose caller set neither a deadline nor ``budget_ms``;
    ``stream_idle_timeout_s`` ends a stream that sent no frame (and has none in flight) for that
    long, with DEADLINE_EXCEEDED (0: never).
    """

    def __init__(self, server_side: ServerSide, batcher: MicroBatcher,
                 max_message_bytes: int = 4 * 1024 * 1024, stream_window: int = 64,
                 default_budget_s: float = 30.0, stream_idle_timeout_s: float = 30.0) -> None:
        if default_budget_s <= 0:
            raise ValueError("default_budget_s must be > 0")
        self.server_side = server_side
        self.batcher = batcher
        self.stats = batcher.stats
        self.max_message_bytes = max_message_bytes
        self.max_data_bytes = min(MAX_DATA_BYTES, max_message_bytes)
        self.stream_window = stream_window
        self.default_budget_s = default_budget_s
        self.stream_idle_timeout_s = stream_idle_timeout_s
        self.open_streams = 0  # changed on the event loop only
        self.unary_in_flight = 0  # Infer calls being handled; changed on the event loop only
        self.stats.set_gauge("queue_depth", lambda: self.batcher.queue_depth)
        self.stats.set_gauge("streams_open", lambda: self.open_streams)
        self._info = self._model_info()

    # ------------------------------------------------------------------ info
    def _model_info(self) -> pb.ModelInfo:
        ckpt = self.server_side.checkpoint
        h, w = ckpt.spec.input_size
        info = pb.ModelInfo(name=ckpt.model_name, weights_sha256=ckpt.sha256, input_shape=[h, w, 3],
                            num_classes=ckpt.spec.num_classes, feature_codecs=list(FEATURE_CODECS),
                            image_codecs=list(IMAGE_CODECS), task=ckpt.spec.task)
        for node, point in ckpt.splits.items():
            shape = self.server_side.feature_shape(node)
            info.split_points.add(node=node, codec=point.bottleneck.config.prior, widths=list(point.bottleneck.widths),
                                  feature_shape=list(shape), fine_tuned_tail=point.tail_state is not None,
                                  object_filter=point.object_filter is not None)
        return info

    async def GetModelInfo(self, request: pb.GetModelInfoRequest,
                           context: grpc.aio.ServicerContext) -> pb.GetModelInfoResponse:
        return pb.GetModelInfoResponse(models=[self._info], server_version=__version__,
                                       max_message_bytes=self.max_message_bytes)

    def stats_response(self) -> pb.GetStatsResponse:
        counters = self.stats.counters()
        counters.update({k: int(v) for k, v in self.stats.gauges().items()})
        return convert.stats_response(counters, self.stats.uptime_s, self.stats.stages())

    async def GetStats(self, request: pb.GetStatsRequest, context: grpc.aio.ServicerContext) -> pb.GetStatsResponse:
        return self.stats_response()

    async def Probe(self, request: pb.ProbeRequest, context: grpc.aio.ServicerContext) -> pb.ProbeResponse:
        self.stats.count("probes")
        return pb.ProbeResponse(received_bytes=len(request.padding))

    # ----------------------------------------------------------------- infer
    def _budget_s(self, req: pb.InferRequest, remaining_s: float | None) -> float:
        """The frame's time budget (s): the sooner of the client's ``budget_ms``, the call's deadline
        and the server's default (which bounds frames that came with neither)."""
        budget = self.default_budget_s
        if remaining_s is not None:
            budget = min(budget, remaining_s)
        if req.budget_ms > 0:
            budget = min(budget, req.budget_ms / 1e3)
        return budget

    def _payload(self, req: pb.InferRequest) -> tuple[Payload, int]:
        """The request's checked payload and how many top classes to answer."""
        return convert.request_payload(req, self.max_data_bytes), req.top_k or convert.DEFAULT_TOP_K

    def _submit(self, req: pb.InferRequest, budget_s: float) -> Future:
        return self.batcher.submit(*self._payload(req), budget_s)

    def _fail(self, exc: BaseException) -> tuple[grpc.StatusCode, str]:
        code = status_for(exc)
        self.stats.count(f"status_{code.name.lower()}")
        if code == grpc.StatusCode.INTERNAL:
            log.error("internal error", exc_info=exc)
            return code, f"internal error: {type(exc).__name__}"
        return code, str(exc)

    def _late(self, seq: int, budget_s: float) -> tuple[grpc.StatusCode, str]:
        self.stats.count("status_deadline_exceeded")
        return grpc.StatusCode.DEADLINE_EXCEEDED, f"frame {seq} not done within its budget of {budget_s * 1e3:.0f} ms"

    async def Infer(self, request: pb.InferRequest, context: grpc.aio.ServicerContext) -> pb.InferResponse:
        t0 = time.monotonic()
        self.stats.count("requests_unary")
        budget_s = self._budget_s(request, call_remaining_s(context))
        self.unary_in_flight += 1
        try:
            answer = await self._infer_alone(request, budget_s, t0)
            inline = answer is not None
            if answer is None:
                future = self._submit(request, budget_s)
                answer = await asyncio.wait_for(asyncio.wrap_future(future), budget_s)
            prediction, timing = answer
        except asyncio.TimeoutError:
            failure = self._late(request.seq, budget_s)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status code
            failure = self._fail(exc)
        else:
            response = convert.response(request.seq, prediction, timing)
            # Booked on the loop's next turn, once the response is on its way: off the frame's path (a GetStats
            # call arriving later runs after it).
            asyncio.get_running_loop().call_soon(self.stats.record_answer, t0, timing, time.monotonic(), inline)
            return response
        finally:
            self.unary_in_flight -= 1
        await context.abort(*failure)

    async def _infer_alone(self, request: pb.InferRequest, budget_s: float, received: float) -> tuple | None:
        """Run the frame here, on the event loop, when it is the server's only work; None otherwise.

        Alone means: after one turn of the loop (so that calls which arrived together have started
        and will batch), no other Infer call is in progress, no stream is open and the batcher has
        nothing queued or running. That saves the frame the two thread hand-offs of the batcher
        path (to its worker and back to the loop, ~0.3 ms on an idle 2-core machine). A health,
        model-info or new Infer call arriving meanwhile waits for this one frame's compute (a few ms);
        under load nothing runs here and batching is unchanged.
        """
        await asyncio.sleep(0)
        if self.unary_in_flight != 1 or self.open_streams:
            return None
        return self.batcher.run_inline_if_idle(*self._payload(request), budget_s, record=False, received=received)

    async def InferStream(self, request_iterator: AsyncIterator[pb.InferRequest],
                          context: grpc.aio.ServicerContext) -> AsyncIterator[pb.InferResponse]:
        """Reads frames in a task so several are in flight (up to ``stream_window``); answers in order."""
        self.stats.count("streams")
        self.open_streams += 1
        loop = asyncio.get_running_loop()
        inflight: asyncio.Queue = asyncio.Queue(maxsize=self.stream_window)
        last_activity = loop.time()

        async def read() -> None:
            nonlocal last_activity
            try:
                async for req in request_iterator:
                    last_activity = loop.time()
                    self.stats.count("requests_stream")
                    budget_s = self._budget_s(req, None)
                    try:
                        item: object = (req.seq, time.monotonic(), budget_s, self._submit(req, budget_s))
                    except Exception as exc:  # noqa: BLE001 - answered in this frame's response
                        item = (req.seq, time.monotonic(), budget_s, exc)
                    await inflight.put(item)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the client went away or broke the stream
                pass
            await inflight.put(_END)

        reader = asyncio.create_task(read())
        idle_s = self.stream_idle_timeout_s
        try:
            while True:
                try:
                    item = inflight.get_nowait()
                except asyncio.QueueEmpty:
                    if idle_s <= 0:
                        item = await inflight.get()
                    else:
                        wait_s = last_activity + idle_s - loop.time()
                        try:
                            item = await asyncio.wait_for(inflight.get(), max(wait_s, 0.0))
                        except asyncio.TimeoutError:
                            if loop.time() - last_activity < idle_s:
                                continue  # a frame came in meanwhile
                            self.stats.count("streams_idle_closed")
                            context.set_code(grpc.StatusCode.DEADLINE_EXCEEDED)
                            context.set_details(f"stream idle: no frame for {idle_s:g} s (the server's "
                                                "--stream-idle-timeout-s); open a new stream to send more")
                            return
                if item is _END:
                    return
                seq, t0, budget_s, outcome = item
                if isinstance(outcome, Future):
                    try:
                        prediction, timing = await asyncio.wrap_future(outcome)
                    except Exception as exc:  # noqa: BLE001
                        outcome = exc
                    else:
                        response = convert.response(seq, prediction, timing)
                        loop.call_soon(self.stats.record_answer, t0, timing, time.monotonic())  # as in Infer
                        yield response
                        last_activity = loop.time()
                        continue
                code, message = self._fail(outcome)
                yield convert.response(seq, None, status_code=code.value[0], status_message=message)
                last_activity = loop.time()
        finally:
            self.open_streams -= 1
            reader.cancel()
