"""The ``splitnet.rpc.v1.SplitInference`` servicer: RPC methods on top of the micro-batcher."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

import grpc

from edge_server.batcher import DeadlineExpired, MicroBatcher
from edge_server.errors import status_for
from splitnet import __version__
from splitnet.codecs import FEATURE_CODECS, IMAGE_CODECS
from splitnet.errors import SplitnetError
from splitnet.payload import MAX_DATA_BYTES
from splitnet.pipeline import ServerSide
from splitnet.rpc import convert
from splitnet.rpc.v1 import splitnet_pb2 as pb
from splitnet.rpc.v1 import splitnet_pb2_grpc as pb_grpc

log = logging.getLogger("splitnet.edge_server")
_END = object()


class SplitInferenceServicer(pb_grpc.SplitInferenceServicer):
    """Answers GetModelInfo, Infer, InferStream and GetStats for one loaded checkpoint."""

    def __init__(self, server_side: ServerSide, batcher: MicroBatcher,
                 max_message_bytes: int = 4 * 1024 * 1024, stream_window: int = 64) -> None:
        self.server_side = server_side
        self.batcher = batcher
        self.stats = batcher.stats
        self.max_message_bytes = max_message_bytes
        self.max_data_bytes = min(MAX_DATA_BYTES, max_message_bytes)
        self.stream_window = stream_window
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

    def GetModelInfo(self, request: pb.GetModelInfoRequest, context: grpc.ServicerContext) -> pb.GetModelInfoResponse:
        return pb.GetModelInfoResponse(models=[self._info], server_version=__version__,
                                       max_message_bytes=self.max_message_bytes)

    def GetStats(self, request: pb.GetStatsRequest, context: grpc.ServicerContext) -> pb.GetStatsResponse:
        counters = self.stats.counters()
        counters["queue_depth"] = self.batcher.queue_depth
        resp = pb.GetStatsResponse(counters=counters, uptime_s=self.stats.uptime_s)
        for stage, s in self.stats.stages().items():
            resp.stages.add(stage=stage, count=s["count"], mean_ms=s["mean_ms"], p50_ms=s["p50_ms"],
                            p95_ms=s["p95_ms"], p99_ms=s["p99_ms"])
        return resp

    def Probe(self, request: pb.ProbeRequest, context: grpc.ServicerContext) -> pb.ProbeResponse:
        self.stats.count("probes")
        return pb.ProbeResponse(received_bytes=len(request.padding))

    # ----------------------------------------------------------------- infer
    @staticmethod
    def _budget_s(req: pb.InferRequest, remaining_s: float | None) -> float | None:
        """The frame's time budget (s): the client's ``budget_ms`` or the call's deadline, the sooner."""
        if req.budget_ms > 0:
            return min(remaining_s or float("inf"), req.budget_ms / 1e3)
        return remaining_s

    def _submit(self, req: pb.InferRequest, remaining_s: float | None) -> Future:
        payload = convert.request_payload(req, self.max_data_bytes)
        return self.batcher.submit(payload, req.top_k or convert.DEFAULT_TOP_K, self._budget_s(req, remaining_s))

    def _fail(self, exc: BaseException) -> tuple[grpc.StatusCode, str]:
        code = status_for(exc)
        self.stats.count(f"status_{code.name.lower()}")
        if code == grpc.StatusCode.INTERNAL:
            log.exception("internal error", exc_info=exc)
            return code, f"internal error: {type(exc).__name__}"
        return code, str(exc)

    def Infer(self, request: pb.InferRequest, context: grpc.ServicerContext) -> pb.InferResponse:
        t0 = time.monotonic()
        self.stats.count("requests_unary")
        remaining = context.time_remaining()
        try:
            payload = convert.request_payload(request, self.max_data_bytes)
            top_k, budget_s = request.top_k or convert.DEFAULT_TOP_K, self._budget_s(request, remaining)
            done = self.batcher.run_inline_if_idle(payload, top_k, budget_s)
            if done is None:
                done = self.batcher.submit(payload, top_k, budget_s).result(timeout=remaining)
            prediction, timing = done
        except FutureTimeout:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, f"frame {request.seq} not done within its deadline")
        except (SplitnetError, Exception) as exc:  # noqa: BLE001 - every failure becomes a status code
            code, message = self._fail(exc)
            context.abort(code, message)
        self.stats.observe("total", (time.monotonic() - t0) * 1e3)
        return convert.response(request.seq, prediction, timing)

    def InferStream(self, request_iterator: Iterator[pb.InferRequest],
                    context: grpc.ServicerContext) -> Iterator[pb.InferResponse]:
        """Reads frames on a helper thread so several are in flight; answers in order."""
        self.stats.count("streams")
        inflight: queue.Queue = queue.Queue(maxsize=self.stream_window)

        def put(item: object) -> bool:
            """Queue for the answering loop; False once the call is over (nobody would read it)."""
            while True:
                try:
                    inflight.put(item, timeout=0.5)
                    return True
                except queue.Full:
                    if not context.is_active():
                        return False

        def read() -> None:
            try:
                for req in request_iterator:
                    self.stats.count("requests_stream")
                    try:
                        item: object = (req.seq, time.monotonic(), self._submit(req, None))
                    except (SplitnetError, Exception) as exc:  # noqa: BLE001
                        item = (req.seq, time.monotonic(), exc)
                    if not put(item):
                        return
            except grpc.RpcError:
                pass  # client went away
            except Exception:  # noqa: BLE001
                log.exception("stream reader failed")
            finally:
                put(_END)

        reader = threading.Thread(target=read, name="splitnet-stream-reader", daemon=True)
        reader.start()
        try:
            while True:
                item = inflight.get()
                if item is _END:
                    return
                seq, t0, outcome = item
                if isinstance(outcome, Future):
                    try:
                        prediction, timing = outcome.result()
                    except (DeadlineExpired, SplitnetError, Exception) as exc:  # noqa: BLE001
                        outcome = exc
                    else:
                        self.stats.observe("total", (time.monotonic() - t0) * 1e3)
                        yield convert.response(seq, prediction, timing)
                        continue
                code, message = self._fail(outcome)
                yield convert.response(seq, None, status_code=code.value[0], status_message=message)
        finally:
            # The call is over (or being cancelled): the reader leaves gRPC at once. Waiting
            # for it keeps daemon threads out of gRPC's C++ code when the process exits.
            reader.join(2.0)
