"""``SplitClient``: runs head + encoder on the device, offloads over gRPC, never loses a frame.

Every frame gets a result. A frame runs fully on the device when the policy says
``local``, when the server is marked down (after a failure, with exponential
backoff before the next try), when the predicted latency would miss the deadline,
when the action's circuit breaker is open (it kept missing), or when its RPC fails
or answers too late. An overloaded server (RESOURCE_EXHAUSTED) is left alone for a
jittered backoff while frames run locally ("server_busy").

A misconfigured client does not quietly run everything locally: when the server refuses
the credentials, the model, a split or the weights (UNAUTHENTICATED, PERMISSION_DENIED,
NOT_FOUND, FAILED_PRECONDITION), ``infer`` and ``stream`` raise
:class:`~device_client.connection.ServerConfigError`.

The control loop: each frame's wait is bounded from its *arrival* by its deadline, or
by a default budget when there is none; every answer, late ones included, feeds the
link estimator and the action's statistics; an answer after the frame's deadline is a
miss even when it is used; misses in a row open the action's breaker
(:mod:`device_client.breaker`), and background probes close it again when the link
recovers. A device whose local run cannot make the deadline waits for late answers (up
to the default budget) and ignores open breakers: a local run would be a sure miss that
holds up the frames after it. At start the client times every action on its own device
(:mod:`device_client.calibration`) and gives a profile-driven policy those times.

Threads: ``stream`` does the device's work (choosing, head and encoder, local runs) on a device thread,
one piece at a time, and yields each result as soon as it and every earlier frame's are in; answers
arrive on gRPC's threads; background link probes have their own.
"""

from __future__ import annotations

import itertools
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np

from device_client.breaker import CircuitBreaker
from device_client.calibration import DeviceCalibration, calibrate
from device_client.camera import LiveCamera, TimedFrame
from device_client.connection import CONFIG_ERRORS, ServerConfigError, TlsOptions, open_channel, target_for
from device_client.estimator import LinkEstimator, LinkSample
from device_client.prefetch import PrefetchedFrames
from device_client.stream import StreamBroken, StreamSession
from policies.common.policy import FixedPolicy, Observation, Policy
from policies.common.timing import (
    ANSWER_PATIENCE_MS,
    FALLBACK_MARGIN,
    answer_wait_ms,
    fallback_run_ms,
    kept_back_run_ms,
)
from splitnet.checkpoint import SplitCheckpoint
from splitnet.errors import ShapeError, SplitnetError
from splitnet.frames import FrameFit, fit_frame
from splitnet.pipeline import Action, DeviceSide, Timing
from splitnet.rpc import convert
from splitnet.rpc.v1 import splitnet_pb2 as pb
from splitnet.rpc.v1 import splitnet_pb2_grpc as pb_grpc

# Failures after which the server is left alone for a while (backoff with jitter) while frames run
# locally. RESOURCE_EXHAUSTED is the server saying it is overloaded. Configuration errors (CONFIG_ERRORS)
# are not retried at all: SplitClient raises ServerConfigError.
_RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL,
              grpc.StatusCode.CANCELLED, grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.RESOURCE_EXHAUSTED,
              grpc.StatusCode.ABORTED}

_CODES = {code.value[0]: code for code in grpc.StatusCode}
_MIN_WAIT_S = 0.0001  # the shortest wait handed to gRPC (a zero or negative timeout is not one)
_POLL_S = 0.002  # while the device thread has no frame to work on: how often it looks for one, or for work (s)
_FALLBACK_SLACK_MS = 2e3 * _POLL_S  # a fallback's start can lag its give-up by the polling interval, twice
_IDLE_POLL_S = 0.01  # how often (s) a due empty probe looks for a moment with no frame in flight


@dataclass
class FrameResult:
    """The result of one frame and where its time went (all times in ms).

    ``latency_ms`` runs from the frame's arrival to its result and is the sum of
    ``wait_ms`` (before the device started on it), the device's stages, ``network_ms``
    (the round trip minus the server's own time), the server's stages and
    ``client_queue_ms`` (the answer waiting in the client's in-order window).
    """

    seq: int
    class_ids: list[int]
    scores: list[float]
    action: str  # the action that produced the result ("local" after a fallback)
    chosen: str  # the action the policy chose
    offloaded: bool  # answered by the server
    # why an offload action ended up local: "", "server_down", "server_busy" (backing off after
    # RESOURCE_EXHAUSTED), "deadline" (predicted miss), "breaker" (the action kept missing), "rpc:CODE",
    # "late" (no answer within the frame's budget)
    fallback: str = ""
    latency_ms: float = 0.0  # from the call to the result
    head_ms: float = 0.0
    encode_ms: float = 0.0
    local_ms: float = 0.0  # the whole model on the device
    network_ms: float = 0.0  # round trip minus the server's time
    queue_ms: float = 0.0
    decode_ms: float = 0.0
    tail_ms: float = 0.0
    payload_bytes: int = 0
    boxes: list[convert.Box] = field(default_factory=list)  # a detector's result (pixels of the frame given)
    filtered: bool = False  # the object filter found nothing: no bytes sent, no boxes
    deadline_missed: bool = False  # latency above the deadline (or the default budget when there is none)
    budget_ms: float = 0.0  # the frame's deadline, or the default budget
    wait_ms: float = 0.0  # arrival to the start of the device's work
    client_queue_ms: float = 0.0  # the answer waited this long in the client's in-order window
    probe: bool = False  # besides running locally, the frame was offloaded as a breaker probe

    @property
    def top1(self) -> int:
        return self.class_ids[0]


class _Backoff:
    """Marks the server down after a failure; the next try waits initial, 2x, 4x ... up to maximum,
    each wait drawn at random between half and all of it (jitter: clients that failed together
    do not come back together)."""

    def __init__(self, initial_ms: float, maximum_ms: float, rng: random.Random | None = None) -> None:
        self.initial, self.maximum = initial_ms / 1e3, maximum_ms / 1e3
        self.delay = self.initial
        self.down_until = 0.0
        self.reason = "server_down"  # the fallback reason of frames run locally meanwhile
        self._rng = rng or random.Random()
        self._lock = threading.Lock()

    def available(self) -> bool:
        return time.monotonic() >= self.down_until

    def failure(self, reason: str = "server_down") -> float:
        """Back off; returns the wait (s)."""
        with self._lock:
            wait = self.delay * self._rng.uniform(0.5, 1.0)
            self.down_until = max(self.down_until, time.monotonic() + wait)
            self.delay = min(self.delay * 2, self.maximum)
            self.reason = reason
            return wait

    def success(self) -> None:
        with self._lock:
            self.delay = self.initial
            self.down_until = 0.0


@dataclass
class _ActionStats:
    """Smoothed costs of one action, to predict whether a frame would meet its deadline."""

    device_ms: float = 0.0
    link_bytes: float = 0.0  # uplink bytes beyond an empty probe call's (convert.link_sample_bytes)
    server_ms: float = 0.0
    updated_at: float = 0.0  # time.monotonic() of the last answered frame

    def update(self, device_ms: float, link_bytes: int, server_ms: float | None, a: float = 0.2) -> None:
        self.updated_at = time.monotonic()
        first = self.device_ms == 0.0
        self.device_ms = device_ms if first else (1 - a) * self.device_ms + a * device_ms
        self.link_bytes = link_bytes if first else (1 - a) * self.link_bytes + a * link_bytes
        if server_ms is not None:
            self.server_ms = server_ms if self.server_ms == 0.0 else (1 - a) * self.server_ms + a * server_ms


@dataclass
class _Pending:
    seq: int
    frame: np.ndarray
    t0: float  # arrival (time.perf_counter())
    chosen: str
    fit: FrameFit | None = None
    overhead_bytes: int = 0  # uplink bytes its request costs besides the payload (convert.request_overhead_bytes)
    started: float = 0.0  # the device started on it
    result: FrameResult | None = None  # set when the frame already ran locally
    session: StreamSession | None = None
    request: pb.InferRequest | None = None  # kept to resend over unary where InferStream is not served
    call: grpc.Future | None = None  # a unary Infer in flight (stream over unary calls)
    sent: float = 0.0
    timing: Timing = field(default_factory=Timing)
    payload_bytes: int = 0

    def going_out(self, request: pb.InferRequest, streamed: bool) -> None:
        """Its request leaves now: the send time, and the uplink bytes the request costs besides its payload
        (framed on a stream or as a unary call)."""
        self.sent = time.perf_counter()
        self.overhead_bytes = convert.request_overhead_bytes(request, streamed=streamed)


class SplitClient:
    """Device-side client. Use as a context manager::

        with SplitClient("127.0.0.1:50051", policy="layer2/w0.5") as client:
            result = client.infer(frame)            # one uint8 [H, W, 3] frame
            for r in client.stream(frames): ...     # pipelined, results in order
    """

    def __init__(self, servers: str | Sequence[str] | None, checkpoint: str | Path | SplitCheckpoint | None = None,
                 policy: Policy | str | None = None, deadline_ms: float | None = None,
                 tls: TlsOptions | None = None, token: str | None = None, top_k: int = 5,
                 rpc_timeout_ms: float = ANSWER_PATIENCE_MS, backoff_ms: tuple[float, float] = (100.0, 5000.0),
                 max_in_flight: int = 8, warm_up: bool = True, probe_interval_s: float = 1.0,
                 link_probe_s: float = 1.0, probe_bytes: int = 200, object_filter: bool = True,
                 insecure_token_over_plaintext: bool = False,
                 default_budget_ms: float | None = None, breaker: CircuitBreaker | None = None,
                 calibration: DeviceCalibration | bool = True, emulate: object | None = None) -> None:
        """``default_budget_ms``: the longest a frame may take, from its arrival, when there is no
        deadline (None: ``rpc_timeout_ms``); the wait for the server ends early enough for a local
        fallback to finish within it. ``calibration``: time
        every action on this device at start (True), reuse a calibration, or skip it (False). ``emulate``:
        a :class:`policies.simulation.profile.Profile` whose device this client pretends to be: device compute is
        padded (slept) up to the profile's device ms and the policy keeps the profile's times
        (replaying a slow device on a fast machine, e.g. to compare a live run with the simulator)."""
        ckpt = checkpoint if isinstance(checkpoint, SplitCheckpoint) else SplitCheckpoint.load(checkpoint)
        self.device = DeviceSide(ckpt)
        if warm_up:
            self.device.warm_up()
        if policy is None:
            policy = self.device.actions()[1].name if ckpt.splits else "local"
        self.policy: Policy = FixedPolicy(policy) if isinstance(policy, str) else policy
        if isinstance(self.policy, FixedPolicy):
            self._check_action(self.policy.action)
        profile = getattr(self.policy, "profile", None)
        self.emulate = emulate
        if emulate is not None:
            calibration = False  # the emulated device's times are the profile's
        self.calibration: DeviceCalibration | None = (
            calibration if isinstance(calibration, DeviceCalibration)
            else calibrate(self.device, getattr(profile, "names", ())) if calibration else None)
        if self.calibration is not None:
            self.calibration.apply(self.policy)
        self.default_budget_ms = default_budget_ms or rpc_timeout_ms
        self.breaker = breaker or CircuitBreaker()
        self.probe_interval_s = probe_interval_s
        self.object_filter = object_filter  # skip frames a detector split's filter finds empty
        self.deadline_ms = deadline_ms
        self.top_k = top_k
        self.rpc_timeout_s = rpc_timeout_ms / 1e3
        self.max_in_flight = max(1, max_in_flight)
        self.estimator = LinkEstimator()
        self._backoff = _Backoff(*backoff_ms)
        self._metadata: tuple = ()  # the token rides on the channel (call credentials, TLS only)
        if isinstance(servers, str):
            servers = [s for s in servers.split(",") if s]
        self.servers = list(servers or [])
        self.target = target_for(self.servers) if self.servers else ""
        self._config_error: ServerConfigError | None = None  # set by the probe thread, raised by the next frame
        self._channel = (open_channel(self.servers, tls, token=token,
                                      insecure_token_over_plaintext=insecure_token_over_plaintext)
                         if self.servers else None)
        self._stub = pb_grpc.SplitInferenceStub(self._channel) if self._channel else None
        self._seq = itertools.count()
        self._action_stats: dict[str, _ActionStats] = {}
        self._stats_lock = threading.Lock()
        self._previous = "local"
        self._last_result: tuple[float, bool] = (0.0, False)  # newest result: latency ms, fell back to local
        self._session: StreamSession | None = None
        # The server answered InferStream with UNIMPLEMENTED (the Ray Serve engine does, so that
        # frames are routed one by one): stream() sends concurrent unary Infer calls from then on.
        self.unary_only = False
        self._lock = threading.Lock()
        self._session_lock = threading.Lock()  # the stream session, opened by the device thread, closed by either
        # While stream() runs, all device work (head, encoder, local runs) happens on its device thread, one
        # piece at a time; work asked for from another thread (a local fallback) is queued to it.
        self._device_thread: threading.Thread | None = None
        self._device_jobs: queue.Queue[tuple[Callable[[], object], Future]] = queue.Queue()
        self._device_wake = threading.Event()  # set when work is queued to the device thread
        self._last_send = 0.0  # the link probe measures the RTT right away
        self._last_empty = 0.0  # when the newest empty probe call went out (time.monotonic())
        self._frames_seen = 0
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
        """While no frame goes out for ``interval_s``, probe the link to keep its estimate fresh; while frames
        go, send an empty call whenever none went out for ``interval_s``, as soon as no frame is in flight.

        A probe is two calls, one after the other: an empty one (its round trip is the base RTT:
        propagation and per-message framing) and one of ``probe_bytes`` (whose extra time over
        the base is serialization, hence a throughput sample). One size alone cannot tell a
        slow link from a long RTT. The lone empty call while offloading keeps the base RTT true: on a
        slow link every frame's round trip carries its payload's serialization, and a base taken from
        them alone made each frame's transfer time short and the throughput estimate high (BBR's
        PROBE_RTT plays the same part). It waits for a moment with nothing in flight (up to another
        ``interval_s``), so that it does not queue behind a payload. It costs an empty call's ~60 bytes
        a second.
        """
        wait_s = 0.05
        while not self._closed.wait(wait_s):
            now = time.monotonic()
            wait_s = max(0.05, min(self._last_send, self._last_empty) + interval_s - now)
            if now - self._last_send >= interval_s:
                self._last_send = now
                outcome = self._probe_round()
            elif now - self._last_empty >= interval_s:
                if self._inflight_bytes() > 0 and now - self._last_empty < 2 * interval_s:
                    wait_s = _IDLE_POLL_S  # a frame is on its way: look again shortly
                    continue
                outcome = self._probe(0)
            else:
                continue
            if outcome == "stop":
                return

    def measure_link(self, rounds: int = 3) -> None:
        """Probe the link ``rounds`` times now (as the background probes do), so the first frame's policy sees
        an estimate (as the simulator's warm-up gives it). A failure ends it quietly: the frames then find the
        server down and run locally; a configuration error raises."""
        for _ in range(rounds if self._stub is not None else 0):
            outcome = self._probe_round()
            if outcome == "stop" and self._config_error is not None:
                raise self._config_error
            if outcome != "ok":
                return
            self._last_send = time.monotonic()

    def _probe_round(self) -> str:
        """An empty Probe call, then one of ``probe_bytes``: "ok", "failed" (the rest skipped) or "stop"."""
        for size in (0, self.probe_bytes) if self.probe_bytes > 0 else (0,):
            outcome = self._probe(size)
            if outcome != "ok":
                return outcome
        return "ok"

    def _probe(self, size: int) -> str:
        """One Probe call of ``size`` padding bytes, fed to the estimator: "ok", "failed" or "stop"."""
        if size == 0:
            self._last_empty = time.monotonic()
        t0 = time.perf_counter()
        try:
            self._stub.Probe(pb.ProbeRequest(padding=bytes(size)), timeout=max(1.0, self.rpc_timeout_s),
                             metadata=self._metadata)
        except grpc.RpcError as exc:
            if exc.code() in CONFIG_ERRORS:
                self._config_error = ServerConfigError(exc.code(), exc.details(), self.target)
                return "stop"
            if exc.code() in _RETRYABLE:
                self._backoff.failure(self._backoff_reason(exc.code()))
            return "failed"
        except ValueError:  # channel closed under us
            return "stop"
        self.estimator.add(LinkSample(size, (time.perf_counter() - t0) * 1e3))
        self._backoff.success()
        return "ok"

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

    def _would_miss(self, action: str, spent_ms: float = 0.0) -> bool:
        """Predicted to miss the frame's budget (``spent_ms`` of it gone already) and to answer later than a
        local run would end: only then is running locally better (a device too slow for the budget would
        otherwise trade a late answer for a later result, and hold up the next frames). Estimates older than
        ``probe_interval_s`` get a fresh try."""
        stats = self._action_stats.get(action)
        if stats is None or time.monotonic() - stats.updated_at > self.probe_interval_s:
            return False
        predicted = stats.device_ms + self.estimator.transfer_ms(int(stats.link_bytes)) + stats.server_ms
        return spent_ms + predicted > self.budget_ms and predicted > self._local_ms()

    @property
    def budget_ms(self) -> float:
        """How long a frame may take from its arrival: the deadline, or the default budget."""
        return self.deadline_ms or self.default_budget_ms

    def _pad(self, action: str, since: float, frames: int) -> float:
        """With ``emulate``: sleep until the device work begun at ``since`` took the profile's device ms
        (per frame x ``frames``); returns the ms slept."""
        if self.emulate is None:
            return 0.0
        try:
            target_ms = self.emulate.device_ms(self.emulate.index(action)) * frames  # type: ignore[attr-defined]
        except SplitnetError:
            return 0.0
        pad_ms = target_ms - (time.perf_counter() - since) * 1e3
        if pad_ms > 0:
            time.sleep(pad_ms / 1e3)
        return max(0.0, pad_ms)

    def _fit(self, frame: object) -> tuple[np.ndarray, FrameFit]:
        """A frame of any size as the model's input (:func:`splitnet.frames.fit_frame`)."""
        return fit_frame(frame, self.device.spec)

    def _boxes_to_frame(self, boxes: list[convert.Box], fit: FrameFit | None) -> list[convert.Box]:
        if fit is None or fit.identity or not boxes:
            return boxes
        return [convert.Box(*fit.box_to_frame(b.x1, b.y1, b.x2, b.y2), b.score, b.label) for b in boxes]

    def _finalize(self, result: FrameResult, p: _Pending) -> FrameResult:
        """Boxes to frame pixels, the deadline verdict, the wait before the device started."""
        result.boxes = self._boxes_to_frame(result.boxes, p.fit)
        result.budget_ms = self.budget_ms
        result.deadline_missed = result.latency_ms > result.budget_ms
        result.wait_ms = max(0.0, (p.started - p.t0) * 1e3) if p.started else 0.0
        if self.calibration is not None and not result.offloaded and not result.filtered and result.local_ms > 0:
            self.calibration.observe("local", result.local_ms)
        return self._note(result)

    def _local(self, seq: int, frame: np.ndarray, t0: float, chosen: str, reason: str,
               timing: Timing | None = None, payload_bytes: int = 0) -> FrameResult:
        """Run the frame on the device (on the stream's device thread while a stream runs)."""
        return self._on_device(lambda: self._run_local(seq, frame, t0, chosen, reason, timing, payload_bytes))

    def _on_device(self, work: Callable[[], FrameResult]) -> FrameResult:
        """``work()`` on the device: here when no stream runs (or this is its device thread), else queued to the
        device thread, which does it before its next frame; waits for it."""
        device = self._device_thread
        if device is None or device is threading.current_thread():
            return work()
        done: Future = Future()
        self._device_jobs.put((work, done))
        self._device_wake.set()
        while True:
            try:
                return done.result(timeout=0.05)
            except TimeoutError:
                if not device.is_alive() and done.cancel():  # the device thread is gone: do it here
                    return work()

    def _do_device_jobs(self) -> bool:
        """Device thread: do the work other threads queued; True if there was any."""
        did = False
        while True:
            try:
                work, done = self._device_jobs.get_nowait()
            except queue.Empty:
                return did
            did = True
            if not done.set_running_or_notify_cancel():
                continue
            try:
                done.set_result(work())
            except BaseException as exc:  # noqa: BLE001 - raised in the thread that asked for the work
                done.set_exception(exc)

    def _run_local(self, seq: int, frame: np.ndarray, t0: float, chosen: str, reason: str,
                   timing: Timing | None = None, payload_bytes: int = 0) -> FrameResult:
        t = time.perf_counter()
        output = self.device.run_local(frame)
        pred = convert.predictions_from_output(self.device.checkpoint.model_name, output, self.top_k)[0]
        self._pad("local", t, 1)
        local_ms = (time.perf_counter() - t) * 1e3
        timing = timing or Timing()
        return self._note(FrameResult(seq, pred.class_ids, pred.scores, "local", chosen, False, reason,
                                      (time.perf_counter() - t0) * 1e3, timing.head_ms, timing.encode_ms, local_ms,
                                      payload_bytes=payload_bytes, boxes=pred.boxes))

    def _learn(self, chosen: str, resp: pb.InferResponse, sent: float, arrived: float, t0: float,
               timing: Timing, payload_bytes: int, overhead_bytes: int = 0) -> tuple[float, float]:
        """Feed one answer (late or not) to the link estimator, the action's statistics and its breaker.

        The estimator counts the bytes the request put on the uplink beyond an empty probe call's
        (:func:`splitnet.rpc.convert.link_sample_bytes`). Returns (network ms, server ms). A miss is an
        answer after the frame's budget from its arrival.
        """
        st = convert.timing_from_response(resp)
        server_ms = st.queue_ms + st.decode_ms + st.tail_ms
        network_ms = max(0.0, (arrived - sent) * 1e3 - server_ms)
        link_bytes = convert.link_sample_bytes(payload_bytes, overhead_bytes)
        self.estimator.add(LinkSample(link_bytes, network_ms))
        with self._stats_lock:
            self._action_stats.setdefault(chosen, _ActionStats()).update(
                timing.head_ms + timing.encode_ms, link_bytes, server_ms)
        if self.calibration is not None:
            self.calibration.observe(chosen, timing.head_ms + timing.encode_ms)
        self.breaker.record(chosen, (arrived - t0) * 1e3 <= self.budget_ms)
        self._backoff.success()
        return network_ms, server_ms

    def _answered(self, seq: int, resp: pb.InferResponse, t0: float, sent: float, chosen: str,
                  timing: Timing, payload_bytes: int, arrived: float | None = None,
                  overhead_bytes: int = 0) -> FrameResult:
        now = time.perf_counter()
        arrived = now if arrived is None else arrived
        network_ms, _ = self._learn(chosen, resp, sent, arrived, t0, timing, payload_bytes, overhead_bytes)
        st = convert.timing_from_response(resp)
        pred = convert.prediction_from_response(resp)
        result = FrameResult(seq, pred.class_ids, pred.scores, chosen, chosen, True, "", (now - t0) * 1e3,
                             timing.head_ms, timing.encode_ms, 0.0, network_ms, st.queue_ms, st.decode_ms,
                             st.tail_ms, payload_bytes, pred.boxes)
        result.client_queue_ms = max(0.0, (now - arrived) * 1e3)
        return result

    def _late_answer(self, p: _Pending, probe: bool = False) -> object:
        """A callback for the answer of a frame that already ran locally: it still informs the estimates.

        A breaker probe goes out only after the frame's local run, so its answer is judged by what an
        offload started with the frame would have taken: head + encode + the probe's round trip
        (from the frame's arrival it could never come back in time when a local run nearly fills the
        budget, and the breaker would never close).
        """
        def on_late(resp: pb.InferResponse, arrived: float) -> None:
            if resp.status_code == 0:
                t0 = p.sent - (p.timing.head_ms + p.timing.encode_ms) / 1e3 if probe else p.t0
                self._learn(p.chosen, resp, p.sent, arrived, t0, p.timing, p.payload_bytes, p.overhead_bytes)
        return on_late

    def _send_probe(self, p: _Pending, request: pb.InferRequest) -> None:
        """Offload a frame that already ran locally, in the background, to see whether its action pays again."""
        p.going_out(request, streamed=False)
        try:
            future = self._stub.Infer.future(request, timeout=self.budget_ms / 1e3 * 2, metadata=self._metadata)
        except (grpc.RpcError, ValueError):
            self.breaker.record(p.chosen, False)
            return
        on_late = self._late_answer(p, probe=True)

        def done(f: grpc.Future) -> None:
            arrived = time.perf_counter()
            try:
                resp = f.result()
            except (grpc.RpcError, grpc.FutureCancelledError):
                self.breaker.record(p.chosen, False)
                return
            on_late(resp, arrived)

        future.add_done_callback(done)

    def _prepare(self, frame: np.ndarray | TimedFrame) -> tuple[_Pending, pb.InferRequest | None]:
        """Choose the action; run locally right away or encode the request."""
        return self._prepare_group([frame])[0]

    def _prepare_group(self, frames: list[np.ndarray | TimedFrame]) -> list[tuple[_Pending, pb.InferRequest | None]]:
        """Choose one action for ``frames``; run them locally right away, or encode their requests.

        Head and encoder run once on the whole group (a batch). Frames of any size are fitted
        to the model's input first (boxes go back to the frame's pixels). The policy sees how
        many frames a live camera dropped just before these (as the simulator shows it).
        """
        if self._config_error is not None:
            raise self._config_error
        arrivals = [f.arrived for f in frames] if all(isinstance(f, TimedFrame) for f in frames) else None
        fitted = [self._fit(f.image if isinstance(f, TimedFrame) else f) for f in frames]
        fits = [fit for _, fit in fitted]
        try:
            batch = np.stack([img for img, _ in fitted])
        except ValueError as exc:
            raise ShapeError(f"frames of one device batch must share a shape: {exc}") from None
        t0 = min(arrivals) if arrivals else time.perf_counter()
        started = time.perf_counter()
        seqs = [next(self._seq) for _ in frames]
        chosen = self._choose(sum(f.dropped_before for f in frames if isinstance(f, TimedFrame)))
        self._previous = chosen
        pendings = [_Pending(seq, frame, arrivals[i] if arrivals else t0, chosen, fits[i] if fits else None, started)
                    for i, (seq, frame) in enumerate(zip(seqs, batch))]
        spent_ms = (started - t0) * 1e3
        reason = ("" if chosen == "local" else "server_down" if self._stub is None
                  else self._backoff.reason if not self._backoff.available()
                  else "breaker" if self.breaker.is_open(chosen) and self._local_can_make_it()
                  else "deadline" if self._would_miss(chosen, spent_ms) else None)
        probe = (reason == "breaker" and len(frames) == 1
                 and self.breaker.take_probe(chosen, self.budget_ms / 1e3))
        self._frames_seen += len(frames)
        if self.calibration is not None and self._frames_seen % 50 < len(frames):
            self.calibration.apply(self.policy)  # refreshed with what the device measured since
        if probe:  # the frame's result comes from the device first; the probe goes out after it
            p = pendings[0]
            p.result = self._finalize(self._local(p.seq, p.frame, p.t0, chosen, reason), p)
            p.timing = Timing()
            try:
                payload = self.device.encode(batch, Action.parse(chosen), seq=seqs[0], timing=p.timing)[0]
            except SplitnetError:
                payload = None
            if payload is not None:
                p.payload_bytes, p.result.probe = len(payload.data), True
                self._send_probe(p, convert.request(payload, self.top_k, self.budget_ms))
            return [(p, None)]
        payloads = None
        if reason is None:
            timing = Timing()
            try:
                t_enc = time.perf_counter()
                payloads = self.device.encode(batch, Action.parse(chosen), seq=seqs[0], timing=timing,
                                              use_filter=self.object_filter)
                timing.encode_ms += self._pad(chosen, t_enc, len(frames))
            except SplitnetError:
                reason = "invalid_action"
        if payloads is None:
            for p in pendings:
                p.result = self._finalize(self._local(p.seq, p.frame, p.t0, chosen, reason or ""), p)
            return [(p, None) for p in pendings]
        out = []
        budget = self._budget_ms(t0)
        for p, payload in zip(pendings, payloads):
            p.timing.head_ms, p.timing.encode_ms = timing.head_ms / len(frames), timing.encode_ms / len(frames)
            if payload is None:  # the object filter found nothing: nothing to send, no boxes
                p.result = self._finalize(FrameResult(p.seq, [], [], chosen, chosen, False, "",
                                                      (time.perf_counter() - p.t0) * 1e3, p.timing.head_ms,
                                                      p.timing.encode_ms, filtered=True), p)
                out.append((p, None))
                continue
            p.payload_bytes = len(payload.data)
            out.append((p, convert.request(payload, self.top_k, budget or 0.0)))
        if any(r is not None for _, r in out):
            self._last_send = time.monotonic()
        return out

    def _send(self, pending: _Pending, request: pb.InferRequest) -> None:
        """Put a prepared frame on the stream; it runs locally when no stream can be had."""
        pending.request = request
        if self.unary_only:
            self._send_unary(pending)
            return
        session = self._open_session()
        if session is None and self.unary_only:  # switched to unary calls meanwhile
            self._send_unary(pending)
            return
        if session is None:
            reason = "server_down" if self._stub is None or self._backoff.available() else self._backoff.reason
            pending.result = self._finalize(self._local(pending.seq, pending.frame, pending.t0, pending.chosen,
                                                        reason, pending.timing, pending.payload_bytes),
                                            pending)
            return
        pending.session = session
        pending.going_out(request, streamed=True)
        try:
            session.send(request, pending.payload_bytes)
        except StreamBroken as exc:
            if exc.code == grpc.StatusCode.UNIMPLEMENTED:
                self._streaming_unavailable(pending)
                return
            pending.result = self._failed(pending, exc.code, str(exc))

    def _streaming_unavailable(self, pending: _Pending) -> None:
        """The server has no InferStream: switch to unary calls and resend ``pending`` that way."""
        with self._session_lock:
            self.unary_only = True
            if self._session is not None:
                self._session.close()
                self._session = None
        self._send_unary(pending)

    def _send_unary(self, pending: _Pending) -> None:
        """Send a prepared frame as a non-blocking unary ``Infer`` (answered in :meth:`_finish`)."""
        if self._stub is None or not self._backoff.available():
            reason = "server_down" if self._stub is None or self._backoff.available() else self._backoff.reason
            pending.result = self._finalize(self._local(pending.seq, pending.frame, pending.t0, pending.chosen,
                                                        reason, pending.timing, pending.payload_bytes), pending)
            return
        pending.session = None
        pending.going_out(pending.request, streamed=False)
        pending.call = self._stub.Infer.future(pending.request, timeout=self._timeout_s(pending.t0),
                                               metadata=self._metadata)

    def _budget_ms(self, t0: float) -> float | None:
        """What is left of the frame's deadline (None without a deadline: the server need not hurry)."""
        if not self.deadline_ms:
            return None
        return max(0.1, self.deadline_ms - (time.perf_counter() - t0) * 1e3)

    def _timeout_s(self, t0: float) -> float:
        """How long to wait for the answer: what is left of the frame's budget from its arrival
        (the deadline, or the default budget) less the time a local fallback needs, and never
        more than the RPC timeout."""
        return min(self.rpc_timeout_s, max(_MIN_WAIT_S, self._wait_left_ms(t0) / 1e3))

    def _wait_left_ms(self, t0: float) -> float:
        """The time left to wait for the frame's answer (ms; <= 0: time to fall back): until only a local run's
        time is left of the budget, or, when a local run cannot make the budget, until the default budget
        (:func:`~policies.common.timing.answer_wait_ms`; slack: the polling interval, twice)."""
        wait_ms = answer_wait_ms(self._local_ms_to_reserve(), self.budget_ms, slack_ms=_FALLBACK_SLACK_MS,
                                 patience_ms=self.default_budget_ms, usual_local_ms=self._local_ms())
        return wait_ms - (time.perf_counter() - t0) * 1e3

    def _give_up_is_due(self, window: deque[_Pending], lock: threading.Condition) -> bool:
        """A frame still waiting for its answer gives up on it before a piece of device work started now
        would end (at most a local run, with the reserve's margin): the device then waits for that frame's
        fallback instead of starting the next frame, so the fallback does not queue behind it (earliest
        deadline first; the next frame waits at most that long). Not where a fallback misses the budget
        anyway (a local run longer than it): there the next frame goes first, as the simulator has it."""
        kept_ms = kept_back_run_ms(self._local_ms_to_reserve(), self.budget_ms, _FALLBACK_SLACK_MS,
                                   usual_local_ms=self._local_ms())
        hold_ms = fallback_run_ms(kept_ms, _FALLBACK_SLACK_MS)
        if hold_ms > self.budget_ms:
            return False
        with lock:
            waits = [self._wait_left_ms(p.t0) for p in window if p.result is None and p.sent]
        soonest_ms = min((w for w in waits if w > 0), default=None)  # (those past it are falling back already)
        return soonest_ms is not None and soonest_ms <= hold_ms

    def _local_can_make_it(self) -> bool:
        """A local run ends within the frame's budget (unknown local time: assume it does). A device that
        cannot does not let an open breaker send frames to it: a sure miss that holds up the next frames."""
        return self._local_ms() <= self.budget_ms

    def _local_ms_to_reserve(self) -> float:
        """The local run time (ms) a fallback is kept time for: the usual one, or, when the device's recent
        local runs were slower (a loaded device), their 95th percentile over the reserve's 1.2 margin, so the
        reserve (:func:`~policies.common.timing.fallback_reserve_ms`) covers 95 % of them, where the budget
        allows (:func:`~policies.common.timing.kept_back_run_ms`)."""
        local_ms = self._local_ms()
        if self.emulate is not None or self.calibration is None:
            return local_ms
        return max(local_ms, self.calibration.local_p95_ms() / FALLBACK_MARGIN)

    def _local_ms(self) -> float:
        """The device's time for a local run (ms): the emulated device's, else the calibrated one; 0 unknown."""
        if self.emulate is not None:
            return self.emulate.device_ms(0)  # type: ignore[attr-defined]
        return self.calibration.device_ms.get("local", 0.0) if self.calibration is not None else 0.0

    # ------------------------------------------------------------- unary
    def infer(self, frame: np.ndarray | TimedFrame) -> FrameResult:
        """One uint8 ``[H, W, 3]`` frame of any size; blocks until its result (remote or local)."""
        with self._lock:
            pending, request = self._prepare(frame)
            if request is None:
                return pending.result  # type: ignore[return-value]
            pending.going_out(request, streamed=False)
            try:
                resp = self._stub.Infer(request, timeout=self._timeout_s(pending.t0), metadata=self._metadata)
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:  # censored: the link took at least this long
                    self.estimator.add(LinkSample(
                        convert.link_sample_bytes(pending.payload_bytes, pending.overhead_bytes),
                        (time.perf_counter() - pending.sent) * 1e3))
                return self._failed(pending, exc.code(), exc.details())
            return self._finalize(self._answered(pending.seq, resp, pending.t0, pending.sent, pending.chosen,
                                                 pending.timing, pending.payload_bytes,
                                                 overhead_bytes=pending.overhead_bytes), pending)

    @staticmethod
    def _backoff_reason(code: grpc.StatusCode | None) -> str:
        return "server_busy" if code == grpc.StatusCode.RESOURCE_EXHAUSTED else "server_down"

    def _failed(self, p: _Pending, code: grpc.StatusCode | None, details: str = "") -> FrameResult:
        """The frame runs locally after a failed RPC; a configuration error raises instead."""
        if code in CONFIG_ERRORS:
            self._config_error = ServerConfigError(code, details, self.target)
            raise self._config_error
        if code is None or code in _RETRYABLE:
            self._backoff.failure(self._backoff_reason(code))
        self.breaker.record(p.chosen, False)
        reason = "late" if code == grpc.StatusCode.DEADLINE_EXCEEDED else f"rpc:{code.name if code else 'BROKEN'}"
        return self._finalize(self._local(p.seq, p.frame, p.t0, p.chosen, reason, p.timing, p.payload_bytes), p)

    # ------------------------------------------------------------ stream
    def _open_session(self) -> StreamSession | None:
        with self._session_lock:
            if self._session is not None and not self._session.broken:
                return self._session
            if self._session is not None:
                self._session.close()
                self._session = None
            if self.unary_only or self._stub is None or not self._backoff.available():
                return None
            self._session = StreamSession(self._stub, self._metadata)
            return self._session

    def _finish(self, p: _Pending) -> FrameResult:
        if p.result is not None:
            return p.result
        if p.call is not None:
            try:
                resp = p.call.result()
            except grpc.RpcError as exc:
                return self._failed(p, exc.code(), exc.details())
            if resp.status_code != 0:
                return self._failed(p, _CODES.get(resp.status_code), resp.status_message)
            return self._finalize(self._answered(p.seq, resp, p.t0, p.sent, p.chosen, p.timing, p.payload_bytes,
                                                 overhead_bytes=p.overhead_bytes), p)
        assert p.session is not None
        try:
            resp, arrived = p.session.wait_timed(p.seq, self._timeout_s(p.t0))
        except TimeoutError:
            p.session.discard(p.seq, self._late_answer(p))
            return self._failed(p, grpc.StatusCode.DEADLINE_EXCEEDED)
        except StreamBroken as exc:
            if p.request is not None and exc.code == grpc.StatusCode.UNIMPLEMENTED:
                self._streaming_unavailable(p)
                return self._finish(p)
            if p.request is not None and self.unary_only:  # its stream was closed when the client went unary
                self._send_unary(p)
                return self._finish(p)
            return self._failed(p, exc.code, str(exc))
        if resp.status_code != 0:
            return self._failed(p, _CODES.get(resp.status_code), resp.status_message)
        return self._finalize(self._answered(p.seq, resp, p.t0, p.sent, p.chosen, p.timing, p.payload_bytes,
                                             arrived, p.overhead_bytes), p)

    def stream(self, frames: Iterable[np.ndarray | TimedFrame], device_batch: int = 1) -> Iterator[FrameResult]:
        """Results for ``frames``, in order, with up to ``max_in_flight`` frames at the server at once.

        ``device_batch`` > 1 runs head and encoder on groups of that many frames (one action
        per group): more frames per second from a buffered source, at the cost of latency.
        A :class:`TimedFrame` counts its latency and deadline from its own arrival time.

        The device's work (choosing, head and encoder, sending; local runs, fallbacks included) runs
        on a device thread, one piece at a time, while this generator waits for the answers: each
        result comes out as soon as it and every earlier frame's are in, not after the device's work
        on a later frame. The device thread takes the next frame when it gets free: from a
        :class:`~device_client.camera.LiveCamera` its newest (the ones it dropped meanwhile get no
        result), from any other iterable the next one (read ahead on a thread,
        :class:`~device_client.prefetch.PrefetchedFrames`).
        """
        with self._lock:
            source = frames if isinstance(frames, LiveCamera) else PrefetchedFrames(frames, ahead=max(1, device_batch))
            window: deque[_Pending] = deque()
            changed = threading.Condition()
            stop = threading.Event()
            state: dict[str, object] = {"source_done": False, "error": None}

            def device_loop() -> None:
                try:
                    while not stop.is_set():
                        if self._do_device_jobs():
                            continue
                        with changed:
                            idle = state["source_done"] or len(window) >= self.max_in_flight
                        if idle or self._give_up_is_due(window, changed):
                            # sleep until work is queued (or a while passed: look at the window again)
                            self._device_wake.wait(_POLL_S)
                            self._device_wake.clear()
                            continue
                        group = source.take(max(1, device_batch), _POLL_S)
                        if not group:
                            if group is None:
                                with changed:
                                    state["source_done"] = True
                                    changed.notify_all()
                            continue
                        prepared = self._prepare_group(group)
                        for pending, request in prepared:
                            if request is not None:
                                self._send(pending, request)
                        with changed:
                            window.extend(pending for pending, _ in prepared)
                            changed.notify_all()
                except BaseException as exc:  # noqa: BLE001 - raised by the generator, in the caller's thread
                    with changed:
                        state["error"] = exc
                        changed.notify_all()

            device = threading.Thread(target=device_loop, name="splitnet-device", daemon=True)
            self._device_thread = device
            device.start()
            try:
                while True:
                    with changed:
                        while not window and not state["source_done"] and state["error"] is None:
                            changed.wait(0.05)
                        if state["error"] is not None:
                            raise state["error"]  # type: ignore[misc]
                        if not window:
                            break
                        head = window[0]
                    result = self._finish(head)
                    with changed:
                        window.popleft()
                    yield result
            finally:
                stop.set()
                device.join()
                self._device_thread = None
                self._do_device_jobs()
                source.close()

