"""Scale-out engine: the decoders + tails as a Ray Serve application (``splitnet serve --engine ray``).

Clients see the same ``splitnet.rpc.v1.SplitInference`` service as from the embedded server,
served by Ray Serve's gRPC ingress (its proxy actor, one per node). Behind it a deployment
of ``replicas`` copies (or autoscaling between ``min_replicas`` and ``max_replicas``) each
holds every split and width of the checkpoint, and Ray Serve's own request batching
(``@serve.batch``) gathers concurrent frames into tail batches.

What Ray Serve's gRPC ingress does not do, and what that means here:

* ``InferStream`` answers UNIMPLEMENTED (see :meth:`SplitInferenceReplica.InferStream`; Ray
  Serve before 2.5x had no bidirectional streaming at all); ``SplitClient`` then sends its
  stream as concurrent unary ``Infer`` calls, which Ray Serve routes frame by frame;
* no TLS and no ``grpc.health.v1`` service on the proxy (clients' health checks see
  UNIMPLEMENTED, which gRPC treats as healthy); bearer tokens are checked in the replica;
* requests travel from proxy to replica through Ray's own object transport (inside the
  cluster); the wire to the client carries protobuf only.

Ray is an optional dependency (``pip install 'splitnet[ray]'``); this module imports it lazily.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from edge_server.errors import status_for
from edge_server.lifecycle import termination_event, write_port_file
from edge_server.stats import ServerStats
from splitnet import __version__
from splitnet.codecs import FEATURE_CODECS, IMAGE_CODECS
from splitnet.errors import SplitnetError
from splitnet.payload import MAX_DATA_BYTES, Payload
from splitnet.pipeline import ServerSide, Timing
from splitnet.rpc import convert
from splitnet.rpc.v1 import splitnet_pb2 as pb

log = logging.getLogger("splitnet.edge_server.ray")

APP_NAME = "splitnet"
DEPLOYMENT_NAME = "SplitInference"
# Ray Serve's gRPC proxy imports this by name to learn the service's methods.
SERVICER_FUNCTION = "splitnet.rpc.v1.splitnet_pb2_grpc.add_SplitInferenceServicer_to_server"


class RayUnavailable(SplitnetError):
    """``--engine ray`` without Ray installed."""


class UnsupportedOnRay(SplitnetError):
    """An option the Ray Serve engine cannot honour (its gRPC ingress has no TLS)."""


@dataclass
class RayServeOptions:
    """Everything ``splitnet serve --engine ray`` can set."""

    address: str = "127.0.0.1:9000"  # gRPC ingress HOST:PORT (Ray's proxy listens on every interface)
    checkpoint: str | None = None  # None: the shipped checkpoint; must exist at this path on every node
    ray_address: str | None = None  # None: start a local Ray instance; "auto" or "HOST:PORT": join that cluster
    replicas: int = 1  # fixed number of replicas (when max_replicas <= replicas)
    max_replicas: int = 0  # > replicas: autoscale between replicas and max_replicas
    target_ongoing_requests: float = 8.0  # autoscaling target per replica
    max_ongoing_requests: int = 64  # requests one replica holds at once (queued at the proxy beyond)
    max_batch: int = 32  # Ray Serve batch size for the tail
    batch_wait_ms: float = 1.0  # longest wait to fill a batch
    replica_cpus: float = 1.0  # Ray CPUs reserved per replica
    replica_threads: int = 1  # torch threads per replica
    num_cpus: int | None = None  # CPUs of a local Ray instance (None: all)
    http_port: int = 0  # Ray Serve's HTTP proxy (unused; 0: a free port on 127.0.0.1)
    max_message_bytes: int = 4 * 1024 * 1024
    request_timeout_s: float | None = None  # Ray Serve's end-to-end gRPC timeout
    grace_s: float = 5.0
    extra_env: dict[str, str] = field(default_factory=dict)  # environment of the replicas

    def validate(self) -> None:
        if self.replicas < 1:
            raise ValueError("--replicas must be >= 1")
        if self.max_batch < 1 or self.batch_wait_ms < 0:
            raise ValueError("--max-batch must be >= 1 and --max-wait-ms >= 0")
        host, _, port = self.address.rpartition(":")
        if not host or not port.isdigit() or int(port) == 0:
            raise ValueError(f"--engine ray needs a fixed HOST:PORT (Ray Serve cannot report a port it picked), "
                             f"got {self.address!r}")


def _require_ray():
    try:
        import ray
        from ray import serve
    except ImportError as exc:  # pragma: no cover - exercised only where Ray is missing
        raise RayUnavailable("--engine ray needs Ray Serve: pip install 'splitnet[ray]'") from exc
    return ray, serve


def model_info(server_side: ServerSide) -> pb.ModelInfo:
    """What a replica holds, as the ``ModelInfo`` message the embedded server also answers."""
    ckpt = server_side.checkpoint
    h, w = ckpt.spec.input_size
    info = pb.ModelInfo(name=ckpt.model_name, weights_sha256=ckpt.sha256, input_shape=[h, w, 3],
                        num_classes=ckpt.spec.num_classes, feature_codecs=list(FEATURE_CODECS),
                        image_codecs=list(IMAGE_CODECS), task=ckpt.spec.task)
    for node, point in ckpt.splits.items():
        info.split_points.add(node=node, codec=point.bottleneck.config.prior, widths=list(point.bottleneck.widths),
                              feature_shape=list(server_side.feature_shape(node)),
                              fine_tuned_tail=point.tail_state is not None,
                              object_filter=point.object_filter is not None)
    return info


@dataclass
class _Frame:
    """One validated frame waiting in Ray Serve's batch queue."""

    payload: Payload
    key: tuple
    top_k: int
    enqueued: float  # time.monotonic()
    deadline: float | None  # time.monotonic() after which the answer is useless


@dataclass
class _Answer:
    prediction: convert.Prediction | None = None
    timing: convert.ServerTiming | None = None
    error: BaseException | None = None


class SplitInferenceReplica:
    """One replica: every decoder and tail of the checkpoint; methods named as the proto's RPCs.

    Wrapped by :func:`build_app` in ``serve.deployment``; plain class so it can be tested
    and imported without Ray.
    """

    def __init__(self, checkpoint: str | None, max_message_bytes: int = 4 * 1024 * 1024, max_batch: int = 32,
                 batch_wait_ms: float = 1.0, torch_threads: int = 1) -> None:
        import torch

        from splitnet.checkpoint import SplitCheckpoint

        torch.set_num_threads(max(1, torch_threads))
        self.server_side = ServerSide(SplitCheckpoint.load(checkpoint))
        self.server_side.warm_up()
        self.stats = ServerStats()
        self.max_message_bytes = max_message_bytes
        self.max_data_bytes = min(MAX_DATA_BYTES, max_message_bytes)
        self._info = model_info(self.server_side)
        self._token: str | None = os.environ.get("SPLITNET_RAY_TOKEN") or None
        batched = getattr(self, "_run_batch", None)
        if hasattr(batched, "set_max_batch_size"):  # the @serve.batch wrapper (see build_app)
            batched.set_max_batch_size(max_batch)
            batched.set_batch_wait_timeout_s(batch_wait_ms / 1e3)

    # --------------------------------------------------------------- helpers
    def _authorized(self, grpc_context) -> bool:
        """Bearer token check (the proxy has no interceptors); sets UNAUTHENTICATED when it fails."""
        if self._token is None:
            return True
        metadata = dict(grpc_context.invocation_metadata()) if grpc_context is not None else {}
        if metadata.get("authorization") == f"Bearer {self._token}":
            return True
        self.stats.count("status_unauthenticated")
        grpc_context.set_code(grpc.StatusCode.UNAUTHENTICATED)
        grpc_context.set_details("missing or wrong bearer token")
        return False

    def _fail(self, grpc_context, exc: BaseException) -> None:
        code = status_for(exc)
        self.stats.count(f"status_{code.name.lower()}")
        if code == grpc.StatusCode.INTERNAL:
            log.error("internal error", exc_info=exc)
            message = f"internal error: {type(exc).__name__}"
        else:
            message = str(exc)
        grpc_context.set_code(code)
        grpc_context.set_details(message)

    def _infer_group(self, frames: list[_Frame]) -> list[_Answer]:
        """Decode + tail on frames sharing one batch key; one answer each."""
        import torch

        start = time.monotonic()
        timing = Timing()
        with torch.inference_mode():
            output = self.server_side.infer([f.payload for f in frames], timing)
            preds = convert.predictions_from_output(self.server_side.model_name, output,
                                                    max(f.top_k for f in frames),
                                                    self.server_side.checkpoint.spec.is_detector)
        n = len(frames)
        self.stats.count("frames_ok", n)
        self.stats.count("batches")
        self.stats.observe("decode", timing.decode_ms / n)
        self.stats.observe("tail", timing.tail_ms / n)
        answers = []
        for frame, pred in zip(frames, preds):
            queue_ms = (start - frame.enqueued) * 1e3
            self.stats.observe("queue", queue_ms)
            answers.append(_Answer(pred.limited(frame.top_k),
                                   convert.ServerTiming(queue_ms, timing.decode_ms / n, timing.tail_ms / n, n)))
        return answers

    def run_batch(self, frames: list[_Frame]) -> list[_Answer]:
        """Frames Ray Serve gathered: expired ones get DEADLINE_EXCEEDED, the rest run grouped by batch key.

        A group that fails runs again frame by frame, so one bad frame does not fail its neighbours.
        """
        from edge_server.batcher import DeadlineExpired

        now = time.monotonic()
        answers: list[_Answer | None] = [None] * len(frames)
        groups: dict[tuple, list[int]] = {}
        for i, frame in enumerate(frames):
            if frame.deadline is not None and now > frame.deadline:
                self.stats.count("deadline_expired")
                answers[i] = _Answer(error=DeadlineExpired(
                    f"frame {frame.payload.seq} waited {(now - frame.enqueued) * 1e3:.1f} ms, past its budget"))
            else:
                groups.setdefault(frame.key, []).append(i)
        for idx in groups.values():
            try:
                for i, answer in zip(idx, self._infer_group([frames[i] for i in idx])):
                    answers[i] = answer
            except Exception:  # noqa: BLE001 - retried one by one to find the culprit
                for i in idx:
                    try:
                        answers[i] = self._infer_group([frames[i]])[0]
                    except Exception as exc:  # noqa: BLE001 - becomes the frame's status code
                        answers[i] = _Answer(error=exc)
        return answers  # type: ignore[return-value]

    # ------------------------------------------------------------------ RPCs
    async def GetModelInfo(self, request: pb.GetModelInfoRequest, grpc_context=None) -> pb.GetModelInfoResponse:
        if not self._authorized(grpc_context):
            return pb.GetModelInfoResponse()
        return pb.GetModelInfoResponse(models=[self._info], server_version=f"{__version__}+ray",
                                       max_message_bytes=self.max_message_bytes)

    async def GetStats(self, request: pb.GetStatsRequest, grpc_context=None) -> pb.GetStatsResponse:
        """This replica's counters and stage timings; ``replica_pid`` says which replica answered."""
        if not self._authorized(grpc_context):
            return pb.GetStatsResponse()
        counters = {**self.stats.counters(), "replica_pid": os.getpid()}
        return convert.stats_response(counters, self.stats.uptime_s, self.stats.stages())

    async def Probe(self, request: pb.ProbeRequest, grpc_context=None) -> pb.ProbeResponse:
        if not self._authorized(grpc_context):
            return pb.ProbeResponse()
        self.stats.count("probes")
        return pb.ProbeResponse(received_bytes=len(request.padding))

    async def Infer(self, request: pb.InferRequest, grpc_context=None) -> pb.InferResponse:
        t0 = time.monotonic()
        self.stats.count("requests_unary")
        if not self._authorized(grpc_context):
            return pb.InferResponse(seq=request.seq)
        try:
            payload = convert.request_payload(request, self.max_data_bytes)
            key = self.server_side.batch_key(payload)  # validates: bad frames never reach a batch
            deadline = t0 + request.budget_ms / 1e3 if request.budget_ms > 0 else None
            answer = await self._batch(_Frame(payload, key, request.top_k or convert.DEFAULT_TOP_K, t0, deadline))
            if answer.error is not None:
                raise answer.error
        except (SplitnetError, Exception) as exc:  # noqa: BLE001 - every failure becomes a status code
            self._fail(grpc_context, exc)
            return pb.InferResponse(seq=request.seq)
        response = convert.response(request.seq, answer.prediction, answer.timing)
        self.stats.record_answer(t0, answer.timing)
        return response

    async def InferStream(self, request_stream, grpc_context=None):
        """Answers UNIMPLEMENTED: on Ray Serve, clients send frames as concurrent unary ``Infer`` calls.

        Ray Serve's ingress can carry a bidirectional stream, but it pins every frame of the
        stream to one replica for the stream's life (no per-frame balancing, a new replica from
        autoscaling gets no old stream) and the replica pulls each message from the proxy with a
        Ray actor call. Unary calls are routed frame by frame. ``SplitClient`` switches to them
        when it gets UNIMPLEMENTED here.
        """
        self.stats.count("streams_refused")
        message = ("InferStream is not served by the Ray Serve engine: send unary Infer calls "
                   "(SplitClient does so by itself)")
        if grpc_context is not None:
            grpc_context.set_code(grpc.StatusCode.UNIMPLEMENTED)
            grpc_context.set_details(message)
        # Raising is what makes Ray Serve's proxy end a stream with the code set above; a generator
        # that just returns ends it with OK and no answers.
        raise NotImplementedError(message)
        yield  # an async generator

    async def _batch(self, frame: _Frame) -> _Answer:
        """Without Ray Serve's batching (plain use, tests): a batch of one."""
        return (await asyncio.to_thread(self.run_batch, [frame]))[0]


def build_app(opts: RayServeOptions, checkpoint: str | None = None):
    """The Ray Serve application (a bound deployment) for ``opts``."""
    ray, serve = _require_ray()

    class _Replica(SplitInferenceReplica):
        @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.001)
        async def _run_batch(self, frames: list[_Frame]) -> list[_Answer]:
            return self.run_batch(frames)

        async def _batch(self, frame: _Frame) -> _Answer:
            return await self._run_batch(frame)

    _Replica.__name__ = _Replica.__qualname__ = DEPLOYMENT_NAME
    options: dict = {"max_ongoing_requests": opts.max_ongoing_requests,
                     "ray_actor_options": {"num_cpus": opts.replica_cpus,
                                           **({"runtime_env": {"env_vars": opts.extra_env}} if opts.extra_env
                                              else {})}}
    if opts.max_replicas > opts.replicas:
        options["autoscaling_config"] = {"min_replicas": opts.replicas, "max_replicas": opts.max_replicas,
                                         "target_ongoing_requests": opts.target_ongoing_requests}
    else:
        options["num_replicas"] = opts.replicas
    deployment = serve.deployment(name=DEPLOYMENT_NAME, **options)(_Replica)
    path = checkpoint if checkpoint is not None else opts.checkpoint
    return deployment.bind(str(Path(path).resolve()) if path else None, opts.max_message_bytes, opts.max_batch,
                           opts.batch_wait_ms, opts.replica_threads)


@dataclass
class RunningRayServe:
    """A deployed Ray Serve application; ``stop`` removes it (and the local Ray it started)."""

    address: str
    port: int
    started_ray: bool
    grace_s: float = 5.0

    def stop(self) -> None:
        ray, serve = _require_ray()
        if self.started_ray:
            serve.shutdown()
            ray.shutdown()
        else:
            serve.delete(APP_NAME)


def _wait_answering(address: str, timeout_s: float, metadata: tuple = ()) -> None:
    """Until ``GetModelInfo`` through the proxy answers (the application is routable)."""
    from splitnet.rpc.v1 import splitnet_pb2_grpc as pb_grpc

    end = time.monotonic() + timeout_s
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.SplitInferenceStub(channel)
        while True:
            try:
                stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=5, metadata=metadata)
                return
            except grpc.RpcError as exc:
                if time.monotonic() > end:
                    raise TimeoutError(f"Ray Serve application not answering at {address} after {timeout_s:.0f} s: "
                                       f"{exc.code().name} {exc.details()}") from None
            time.sleep(0.2)


def start(opts: RayServeOptions, token: str | None = None, ready_timeout_s: float = 300.0) -> RunningRayServe:
    """Start (or join) Ray, start Serve with the gRPC ingress, deploy; returns once frames are answered."""
    opts.validate()
    ray, serve = _require_ray()
    from ray.serve.config import HTTPOptions, gRPCOptions

    started_ray = False
    if not ray.is_initialized():
        if opts.ray_address:
            ray.init(address=opts.ray_address, logging_level=logging.WARNING, log_to_driver=False)
        else:
            _start_local_ray(ray, opts.num_cpus)
            started_ray = True
    host, _, port = opts.address.rpartition(":")
    http_port = opts.http_port or _free_port()
    grpc_options = {"port": int(port), "grpc_servicer_functions": [SERVICER_FUNCTION]}
    if opts.request_timeout_s:
        grpc_options["request_timeout_s"] = opts.request_timeout_s
    serve.start(http_options=HTTPOptions(host="127.0.0.1", port=http_port), grpc_options=gRPCOptions(**grpc_options))
    if token:
        opts.extra_env = {**opts.extra_env, "SPLITNET_RAY_TOKEN": token}
    serve.run(build_app(opts), name=APP_NAME, route_prefix=f"/{APP_NAME}", blocking=False)
    target = f"127.0.0.1:{port}" if host in ("0.0.0.0", "[::]", "") else opts.address
    _wait_answering(target, ready_timeout_s, (("authorization", f"Bearer {token}"),) if token else ())
    return RunningRayServe(target, int(port), started_ray, opts.grace_s)


# Settings of a local Ray instance (its processes inherit this process's environment), unless already set:
# - Ray Serve kills a gRPC/HTTP proxy that is not ready 5 s after it was created, and on a loaded machine its worker
#   process can take longer than that to start (the proxy is then "cancelled before it started running" and
#   serve.start fails): 60 s.
# - Ray Serve's latency switches (Ray 2.60; the ones its RAY_SERVE_THROUGHPUT_OPTIMIZED sets, less direct ingress,
#   which would move the ingress off the proxy): the replica runs its code on its main event loop and the proxy its
#   router on its own, the proxy reaches replicas over gRPC, and request logs are written in batches of 1,000.
#   Together they took 1.5-2.3 ms off the Ray path's cost per unary frame over the embedded server here
#   (benchmarks.grpc_overhead, 5 rounds each, side by side: 2.2-2.8 ms with them, 3.7-4.7 ms without).
# A cluster joined by address keeps its own settings: set these where its nodes are started (`ray start`).
LOCAL_RAY_ENV = {
    "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "60",
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
    "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0",
    "RAY_SERVE_PROXY_USE_GRPC": "1",
    "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "1000",
}


def _start_local_ray(ray, num_cpus: int | None, tries: int = 3) -> None:
    """``ray.init`` of a local instance, no dashboard; retried when the raylet is slow to register.

    Ray gives its raylet a fixed 30 s to register with the GCS; a machine under heavy load
    can miss that, and a second try usually succeeds. :data:`LOCAL_RAY_ENV` goes into the
    environment first (a variable already set wins).
    """
    for name, value in LOCAL_RAY_ENV.items():
        os.environ.setdefault(name, value)
    for attempt in range(1, tries + 1):
        try:
            ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING,
                     log_to_driver=False, configure_logging=False)
            return
        except Exception as exc:  # noqa: BLE001 - Ray raises a bare Exception for this
            if "timed out during startup" not in str(exc) or attempt == tries:
                raise
            log.warning("local Ray did not start (%s); trying again (%d/%d)", exc, attempt + 1, tries)
            ray.shutdown()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_forever(opts: RayServeOptions, token: str | None = None, port_file: str | None = None,
                  on_ready: Callable[[str], object] = print) -> int:
    """``splitnet serve --engine ray``: deploy, write the port file, run until SIGTERM/SIGINT; exit status 0."""
    running = start(opts, token)
    stop = termination_event()  # after ray.init, which installs its own handlers
    if port_file:
        write_port_file(port_file, running.port)
    scaling = (f"autoscaling {opts.replicas}-{opts.max_replicas} replicas" if opts.max_replicas > opts.replicas
               else f"{opts.replicas} replica{'s' if opts.replicas > 1 else ''}")
    on_ready(f"splitnet edge server (Ray Serve, {scaling}, batches of up to {opts.max_batch}) listening on "
             f"{opts.address} (insecure{', token auth' if token else ''}); "
             f"Ray {'started locally' if running.started_ray else 'cluster ' + str(opts.ray_address)}")
    while not stop.wait(0.5):
        pass
    on_ready("shutting down: removing the Ray Serve application")
    running.stop()
    on_ready("stopped")
    return 0
