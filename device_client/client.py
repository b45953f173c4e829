"""``SplitClient``: runs head + encoder on the device, offloads over gRPC, never loses a frame.

Every frame gets a result. A frame runs fully on the device when the policy says
``local``, when the server is marked down (after a failure, with exponential
backoff before the next try), when the predicted latency would miss the deadline,
or when its RPC fails or answers too late.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np

from device_client.channel import TlsOptions, open_channel
from device_client.estimator import LinkEstimator, LinkSample
from device_client.stream import StreamBroken, StreamSession
from policies.base import FixedPolicy, Observation, Policy
from splitnet.checkpoint import SplitCheckpoint
from splitnet.errors import ShapeError, SplitnetError
from splitnet.pipeline import Action, DeviceSide, Timing
from splitnet.rpc import convert
from splitnet.rpc.v1 import splitnet_pb2 as pb
from splitnet.rpc.v1 import splitnet_pb2_grpc as pb_grpc

_RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL,
              grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED,
              grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNIMPLEMENTED}

_CODES = {code.value[0]: code for code in grpc.StatusCode}


@dataclass
class FrameResult:
    """The result of one frame and where its time went (all times in ms)."""

    seq: int
    class_ids: list[int]
    scores: list[float]
    action: str  # the action that produced the result ("local" after a fallback)
    chosen: str  # the action the policy chose
    offloaded: bool  # answered by the server
    fallback: str = ""  # why an offload action ended up local: "", "server_down", "deadline", "rpc:CODE", "late"
    latency_ms: float = 0.0  # from the call to the result
    head_ms: float = 0.0
    encode_ms: float = 0.0
    local_ms: float = 0.0  # the whole model on the device
    network_ms: float = 0.0  # round trip minus the server's time
    queue_ms: float = 0.0
    decode_ms: float = 0.0
    tail_ms: float = 0.0
    payload_bytes: int = 0
    boxes: list[convert.Box] = field(default_factory=list)  # a detector's result (input pixels)
    filtered: bool = False  # the object filter found nothing: no bytes sent, no boxes

    @property
    def top1(self) -> int:
        return self.class_ids[0]


class _Backoff:
    """Marks the server down after a failure; the next try waits initial, 2x, 4x ... up to maximum."""

    def __init__(self, initial_ms: float, maximum_ms: float) -> None:
        self.initial, self.maximum = initial_ms / 1e3, maximum_ms / 1e3
        self.delay = self.initial
        self.down_until = 0.0
        self._lock = threading.Lock()

    def available(self) -> bool:
        return time.monotonic() >= self.down_until

    def failure(self) -> None:
        with self._lock:
            self.down_until = time.monotonic() + self.delay
            self.delay = min(self.delay * 2, self.maximum)

    def success(self) -> None:
        with self._lock:
            self.delay = self.initial
            self.down_until = 0.0


@dataclass
class _ActionStats:
    """Smoothed costs of one action, to predict whether a frame would meet its deadline."""

    device_ms: float = 0.0
    payload_bytes: float = 0.0
    server_ms: float = 0.0
    updated_at: float = 0.0  # time.monotonic() of the last answered frame

    def update(self, device_ms: float, payload_bytes: int, server_ms: float | None, a: float = 0.2) -> None:
        self.updated_at = time.monotonic()
        first = self.device_ms == 0.0
        self.device_ms = device_ms if first else (1 - a) * self.device_ms + a * device_ms
        self.payload_bytes = payload_bytes if first else (1 - a) * self.payload_bytes + a * payload_bytes
        if server_ms is not None:
            self.server_ms = server_ms if self.server_ms == 0.0 else (1 - a) * self.server_ms + a * server_ms


@dataclass
class _Pending:
    seq: int
    frame: np.ndarray
    t0: float
    chosen: str
    result: FrameResult | None = None  # set when the frame already ran locally
    session: StreamSession | None = None
    sent: float = 0.0
    timing: Timing = field(default_factory=Timing)
    payload_bytes: int = 0


class SplitClient:
    """Device-side client. Use as a context manager::

        with SplitClient("127.0.0.1:50051", policy="layer2/w0.5") as client:
            result = client.infer(frame)            # one uint8 [H, W, 3] frame
            for r in client.stream(frames): ...     # pipelined, results in order
    """

    def __init__(self, servers: str | Sequence[str] | None, checkpoint: str | Path | SplitCheckpoint | None = None,
                 policy: Policy | str | None = None, deadline_ms: float | None = None,
                 tls: TlsOptions | None = None, token: str | None = None, top_k: int = 5,
                 rpc_timeout_ms: float = 2000.0, backoff_ms: tuple[float, float] = (100.0, 5000.0),
                 max_in_flight: int = 8, warm_up: bool = True, probe_interval_s: float = 1.0,
                 link_probe_s: float = 1.0, probe_bytes: int = 200, object_filter: bool = True) -> None:
        ckpt = checkpoint if isinstance(checkpoint, SplitCheckpoint) else SplitCheckpoint.load(checkpoint)
        self.device = DeviceSide(ckpt)
        if warm_up:
            self.device.warm_up()
        if policy is None:
            policy = self.device.actions()[1].name if ckpt.splits else "local"
        self.policy: Policy = FixedPolicy(policy) if isinstance(policy, str) else policy
        if isinstance(self.policy, FixedPolicy):
            self._check_action(self.policy.action)
        self.probe_interval_s = probe_interval_s
        self.object_filter = object_filter  # skip frames a detector split's filter finds empty
        self.deadline_ms = deadline_ms
        self.top_k = top_k
        self.rpc_timeout_s = rpc_timeout_ms / 1e3
        self.max_in_flight = max(1, max_in_flight)
        self.estimator = LinkEstimator()
        self._backoff = _Backoff(*backoff_ms)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        if isinstance(servers, str):
            servers = [s for s in servers.split(",") if s]
        self.servers = list(servers or [])
        self._channel = open_channel(self.servers, tls) if self.servers else None
        self._stub = pb_grpc.SplitInferenceStub(self._channel) if self._channel else None
        self._seq = itertools.count()
        self._action_stats: dict[str, _ActionStats] = {}
        self._previous = "local"
        self._last_result: tuple[float, bool] = (0.0, False)  # newest result: latency ms, fell back to local
        self._session: StreamSession | None = None
        self._lock = threading.Lock()
        self._last_send = time.monotonic()
        self._closed = threading.Event()
        self.probe_bytes = probe_bytes
        self._probe_thread: threading.Thread | None = None
        if self._stub is not None and link_probe_s > 0:
            self._probe_thread = threading.Thread(target=self._probe_loop, args=(link_probe_s,),
                                                  name="splitnet-probe", daemon=True)
            self._probe_thread.start()

    # ---------------------------------------------------------- lifecycle
    def __enter__(self) -> SplitClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End the stream, close the channel and wait for this client's threads to finish."""
        self._closed.set()
        if self._session is not None:
            self._session.close()
            self._session = None
        if self._channel is not None:
            self._channel.close()
        if self._probe_thread is not None and self._probe_thread is not threading.current_thread():
            self._probe_thread.join(5.0)

    def server_info(self, timeout_s: float = 5.0) -> pb.GetModelInfoResponse:
        """What the server holds (raises ``grpc.RpcError`` when unreachable)."""
        if self._stub is None:
            raise SplitnetError("no server configured")
        return self._stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=timeout_s, metadata=self._metadata)

    def wait_until_ready(self, timeout_s: float = 30.0) -> None:
        """Block until the channel is connected (raises ``grpc.FutureTimeoutError``)."""
        if self._channel is not None:
            grpc.channel_ready_future(self._channel).result(timeout=timeout_s)

    def _probe_loop(self, interval_s: float) -> None:
        """While no frame goes out for ``interval_s``, send a small probe to keep the link estimate fresh."""
        padding = bytes(self.probe_bytes)
        while not self._closed.wait(max(0.05, self._last_send + interval_s - time.monotonic())):
            if time.monotonic() - self._last_send < interval_s:
                continue
            self._last_send = time.monotonic()
            t0 = time.perf_counter()
            try:
                self._stub.Probe(pb.ProbeRequest(padding=padding), timeout=max(1.0, self.rpc_timeout_s),
                                 metadata=self._metadata)
            except grpc.RpcError as exc:
                if exc.code() in _RETRYABLE:
                    self._backoff.failure()
                continue
            except ValueError:  # channel closed under us
                return
            self.estimator.add(LinkSample(len(padding), (time.perf_counter() - t0) * 1e3))
            self._backoff.success()

    # ------------------------------------------------------------ helpers
    def _check_action(self, name: str) -> None:
        """Raise a SplitnetError unless this device can run ``name``."""
        action = Action.parse(name)
        if action.kind in ("bottleneck", "features"):
            point = self.device.checkpoint.split(action.split)
            if action.kind == "bottleneck":
                point.bottleneck.width_index(action.width)

    def observation(self, queue_frames: int = 0) -> Observation:
        est = self.estimator
        last_ms, last_fallback = self._last_result
        return Observation(est.throughput_mbps, est.rtt_ms, self.deadline_ms or 0.0, self._previous, queue_frames,
                           self._stub is not None and self._backoff.available(), est.recent_throughputs(),
                           est.throughput_age_s, self._inflight_bytes(), last_ms, last_fallback)

    def _inflight_bytes(self) -> int:
        """Payload bytes sent on the stream and not answered yet (a unary frame is answered before the next)."""
        session = self._session  # a broken session has nothing in flight any more
        return session.inflight_bytes if session is not None else 0

    def _note(self, result: FrameResult) -> FrameResult:
        """Remember the newest result's latency and whether it fell back (the policy's observation)."""
        self._last_result = (result.latency_ms, bool(result.fallback))
        return result

    def _choose(self, queue_frames: int) -> str:
        name = self.policy.act(self.observation(queue_frames))
        return name if isinstance(name, str) else name.name

    def _would_miss(self, action: str) -> bool:
        """Predicted to miss the deadline; estimates older than ``probe_interval_s`` get a fresh try."""
        stats = self._action_stats.get(action)
        if not self.deadline_ms or stats is None or time.monotonic() - stats.updated_at > self.probe_interval_s:
            return False
        predicted = stats.device_ms + self.estimator.transfer_ms(int(stats.payload_bytes)) + stats.server_ms
        return predicted > self.deadline_ms

    def _local(self, seq: int, frame: np.ndarray, t0: float, chosen: str, reason: str,
               timing: Timing | None = None, payload_bytes: int = 0) -> FrameResult:
        t = time.perf_counter()
        output = self.device.run_local(frame)
        pred = convert.predictions_from_output(self.device.checkpoint.model_name, output, self.top_k)[0]
        local_ms = (time.perf_counter() - t) * 1e3
        timing = timing or Timing()
        return self._note(FrameResult(seq, pred.class_ids, pred.scores, "local", chosen, False, reason,
                                      (time.perf_counter() - t0) * 1e3, timing.head_ms, timing.encode_ms, local_ms,
                                      payload_bytes=payload_bytes, boxes=pred.boxes))

    def _answered(self, seq: int, resp: pb.InferResponse, t0: float, sent: float, chosen: str,
                  timing: Timing, payload_bytes: int) -> FrameResult:
        now = time.perf_counter()
        st = convert.timing_from_response(resp)
        server_ms = st.queue_ms + st.decode_ms + st.tail_ms
        network_ms = max(0.0, (now - sent) * 1e3 - server_ms)
        self.estimator.add(LinkSample(payload_bytes, network_ms))
        self._action_stats.setdefault(chosen, _ActionStats()).update(
            timing.head_ms + timing.encode_ms, payload_bytes, server_ms)
        self._backoff.success()
        pred = convert.prediction_from_response(resp)
        return self._note(FrameResult(seq, pred.class_ids, pred.scores, chosen, chosen, True, "", (now - t0) * 1e3,
                                      timing.head_ms, timing.encode_ms, 0.0, network_ms, st.queue_ms, st.decode_ms,
                                      st.tail_ms, payload_bytes, pred.boxes))

    def _prepare(self, frame: np.ndarray, queue_frames: int) -> tuple[_Pending, pb.InferRequest | None]:
        """Choose the action; run locally right away or encode the request."""
        return self._prepare_group([frame], queue_frames)[0]

    def _prepare_group(self, frames: list[np.ndarray],
                       queue_frames: int) -> list[tuple[_Pending, pb.InferRequest | None]]:
        """Choose one action for ``frames``; run them locally right away, or encode their requests.

        Head and encoder run once on the whole group (a batch).
        """
        try:
            batch = np.stack([np.asarray(f) for f in frames])
        except ValueError as exc:
            raise ShapeError(f"frames of one device batch must share a shape: {exc}") from None
        t0 = time.perf_counter()
        seqs = [next(self._seq) for _ in frames]
        chosen = self._choose(queue_frames)
        self._previous = chosen
        pendings = [_Pending(seq, frame, t0, chosen) for seq, frame in zip(seqs, batch)]
        reason = ("" if chosen == "local" else "server_down" if self._stub is None or not self._backoff.available()
                  else "deadline" if self._would_miss(chosen) else None)
        payloads = None
        if reason is None:
            timing = Timing()
            try:
                payloads = self.device.encode(batch, Action.parse(chosen), seq=seqs[0], timing=timing,
                                              use_filter=self.object_filter)
            except SplitnetError:
                reason = "invalid_action"
        if payloads is None:
            for p in pendings:
                p.result = self._local(p.seq, p.frame, p.t0, chosen, reason or "")
            return [(p, None) for p in pendings]
        out = []
        budget = self._budget_ms(t0)
        for p, payload in zip(pendings, payloads):
            p.timing.head_ms, p.timing.encode_ms = timing.head_ms / len(frames), timing.encode_ms / len(frames)
            if payload is None:  # the object filter found nothing: nothing to send, no boxes
                p.result = FrameResult(p.seq, [], [], chosen, chosen, False, "", (time.perf_counter() - t0) * 1e3,
                                       p.timing.head_ms, p.timing.encode_ms, filtered=True)
                out.append((p, None))
                continue
            p.payload_bytes = len(payload.data)
            out.append((p, convert.request(payload, self.top_k, budget or 0.0)))
        if any(r is not None for _, r in out):
            self._last_send = time.monotonic()
        return out

    def _send(self, pending: _Pending, request: pb.InferRequest) -> None:
        """Put a prepared frame on the stream; it runs locally when no stream can be had."""
        session = self._open_session()
        if session is None:
            pending.result = self._local(pending.seq, pending.frame, pending.t0, pending.chosen,
                                         "server_down", pending.timing, pending.payload_bytes)
            return
        pending.session, pending.sent = session, time.perf_counter()
        try:
            session.send(request, pending.payload_bytes)
        except StreamBroken as exc:
            pending.result = self._failed(pending, exc.code)

    def _budget_ms(self, t0: float) -> float | None:
        if not self.deadline_ms:
            return None
        return max(0.1, self.deadline_ms - (time.perf_counter() - t0) * 1e3)

    def _timeout_s(self, t0: float) -> float:
        budget = self._budget_ms(t0)
        return self.rpc_timeout_s if budget is None else budget / 1e3

    # ------------------------------------------------------------- unary
    def infer(self, frame: np.ndarray) -> FrameResult:
        """One uint8 ``[H, W, 3]`` frame; blocks until its result (remote or local)."""
        with self._lock:
            pending, request = self._prepare(frame, 0)
            if request is None:
                return pending.result  # type: ignore[return-value]
            pending.sent = time.perf_counter()
            try:
                resp = self._stub.Infer(request, timeout=self._timeout_s(pending.t0), metadata=self._metadata)
            except grpc.RpcError as exc:
                return self._failed(pending, exc.code())
            return self._answered(pending.seq, resp, pending.t0, pending.sent, pending.chosen, pending.timing,
                                  pending.payload_bytes)

    def _failed(self, p: _Pending, code: grpc.StatusCode | None) -> FrameResult:
        if code is None or code in _RETRYABLE:
            self._backoff.failure()
        reason = "late" if code == grpc.StatusCode.DEADLINE_EXCEEDED else f"rpc:{code.name if code else 'BROKEN'}"
        return self._local(p.seq, p.frame, p.t0, p.chosen, reason, p.timing, p.payload_bytes)

    # ------------------------------------------------------------ stream
    def _open_session(self) -> StreamSession | None:
        if self._session is not None and not self._session.broken:
            return self._session
        if self._session is not None:
            self._session.close()
            self._session = None
        if self._stub is None or not self._backoff.available():
            return None
        self._session = StreamSession(self._stub, self._metadata)
        return self._session

    def _finish(self, p: _Pending) -> FrameResult:
        if p.result is not None:
            return p.result
        assert p.session is not None
        try:
            resp = p.session.wait(p.seq, self._timeout_s(p.t0))
        except TimeoutError:
            p.session.discard(p.seq)
            return self._failed(p, grpc.StatusCode.DEADLINE_EXCEEDED)
        except StreamBroken as exc:
            return self._failed(p, exc.code)
        if resp.status_code != 0:
            return self._failed(p, _CODES.get(resp.status_code))
        return self._answered(p.seq, resp, p.t0, p.sent, p.chosen, p.timing, p.payload_bytes)

    def stream(self, frames: Iterable[np.ndarray], device_batch: int = 1) -> Iterator[FrameResult]:
        """Results for ``frames``, in order, with up to ``max_in_flight`` frames at the server at once.

        ``device_batch`` > 1 runs head and encoder on groups of that many frames (one action
        per group): more frames per second from a buffered source, at the cost of latency.
        """
        with self._lock:
            window: deque[_Pending] = deque()
            it = iter(frames)
            while group := list(itertools.islice(it, max(1, device_batch))):
                for pending, request in self._prepare_group(group, len(window)):
                    if request is not None:
                        self._send(pending, request)
                    window.append(pending)
                    while window and (len(window) >= self.max_in_flight or window[0].result is not None):
                        yield self._finish(window.popleft())
            while window:
                yield self._finish(window.popleft())
