"""Building and running the edge server: ``serve(options)``.

The gRPC server is ``grpc.aio`` on an event loop of its own thread ("splitnet-aio"): an
open stream that sends nothing is a suspended coroutine and holds no thread, so idle or
slow clients cannot use up the server. Decoders and tails run on the micro-batcher's
worker thread, except a unary frame that is the server's only work, which runs on the event
loop itself (no thread hand-offs; see the servicer). Connection-level limits come from gRPC's own
channel arguments (streams per connection, keepalive enforcement, connection idle time
and age); see :func:`grpc_options`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import torch
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from edge_server.auth import TokenAuthInterceptor
from edge_server.batcher import MicroBatcher
from edge_server.lifecycle import termination_event, write_port_file
from edge_server.metrics import MetricsServer, start_metrics_server
from edge_server.servicer import SplitInferenceServicer
from edge_server.stats import ServerStats
from splitnet.checkpoint import SplitCheckpoint
from splitnet.errors import SplitnetError
from splitnet.pipeline import ServerSide
from splitnet.rpc.v1 import splitnet_pb2 as pb
from splitnet.rpc.v1 import splitnet_pb2_grpc as pb_grpc

log = logging.getLogger("splitnet.edge_server")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["SplitInference"].full_name


@dataclass
class ServerOptions:
    """Everything ``splitnet serve`` can set (times in s unless named otherwise)."""

    address: str = "127.0.0.1:50051"  # host:port; port 0 picks a free one
    checkpoint: str | None = None  # None: the shipped checkpoint
    max_batch: int = 32
    max_wait_ms: float = 0.0  # 0: batch what queued up while the worker was busy, never wait
    max_queue: int = 512  # queued frames before RESOURCE_EXHAUSTED
    max_message_bytes: int = 4 * 1024 * 1024
    stream_window: int = 64  # frames in flight per stream
    tls_cert: str | None = None  # PEM server certificate chain
    tls_key: str | None = None  # PEM private key
    client_ca: str | None = None  # PEM CA: require client certificates signed by it (mutual TLS)
    token: str | None = None  # require "authorization: Bearer <token>" (needs TLS, see below)
    insecure_token_over_plaintext: bool = False  # accept a token without TLS (it crosses the wire readable)
    torch_threads: int | None = None
    grace_s: float = 5.0
    default_budget_s: float = 30.0  # a frame whose caller set no deadline and no budget_ms gets this long
    stream_idle_timeout_s: float = 30.0  # end a stream that sent no frame for this long (0: never)
    max_streams_per_connection: int = 100  # HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS
    keepalive_time_s: float = 60.0  # ping an idle connection this often to find dead peers
    keepalive_timeout_s: float = 20.0  # close a connection whose ping is not answered within this
    min_client_ping_interval_s: float = 10.0  # clients pinging more often are told to go away
    max_connection_idle_s: float = 300.0  # close a connection with no call for this long (0: never)
    max_connection_age_s: float = 1800.0  # ask clients to reconnect (re-resolving names) after this (0: never)
    max_connection_age_grace_s: float = 30.0  # calls still open then get this long to finish
    metrics_port: int | None = None  # Prometheus /metrics on this port (None or 0: off)
    metrics_address: str | None = None  # host for /metrics (default: the host of ``address``)
    event_loop: str = "auto"  # "uvloop", "asyncio", or "auto": uvloop where it is installed


EVENT_LOOPS = ("auto", "uvloop", "asyncio")


def _check_event_loop(kind: str) -> None:
    if kind not in EVENT_LOOPS:
        raise SplitnetError(f"unknown event loop {kind!r}; choose one of {', '.join(EVENT_LOOPS)}")


def new_event_loop(kind: str = "auto") -> asyncio.AbstractEventLoop:
    """The server's event loop: uvloop (libuv; less time per call than asyncio's own loop, measured by
    ``python -m benchmarks.grpc_overhead --compare-event-loops``) or asyncio's. ``auto``: uvloop where it is
    installed (a dependency of the package on Linux and macOS; Windows has none)."""
    _check_event_loop(kind)
    if kind != "asyncio":
        try:
            import uvloop
        except ImportError as exc:
            if kind == "uvloop":
                raise SplitnetError("--event-loop uvloop needs the uvloop package (pip install uvloop)") from exc
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def grpc_options(opts: ServerOptions) -> list[tuple[str, int]]:
    """The gRPC channel arguments of the server (limits, keepalive enforcement, connection age)."""
    ms = lambda s: int(s * 1000)  # noqa: E731
    options = [
        ("grpc.max_receive_message_length", opts.max_message_bytes),
        ("grpc.max_send_message_length", opts.max_message_bytes),
        ("grpc.so_reuseport", 0),
        ("grpc.max_concurrent_streams", opts.max_streams_per_connection),
        ("grpc.keepalive_time_ms", ms(opts.keepalive_time_s)),
        ("grpc.keepalive_timeout_ms", ms(opts.keepalive_timeout_s)),
        ("grpc.keepalive_permit_without_calls", 1),  # clients may keep an idle connection alive ...
        ("grpc.http2.min_recv_ping_interval_without_data_ms", ms(opts.min_client_ping_interval_s)),  # ... slowly
        ("grpc.http2.min_ping_interval_without_data_ms", ms(opts.min_client_ping_interval_s)),
        ("grpc.http2.max_ping_strikes", 2),  # then GOAWAY (too_many_pings)
    ]
    if opts.max_connection_idle_s > 0:
        options.append(("grpc.max_connection_idle_ms", ms(opts.max_connection_idle_s)))
    if opts.max_connection_age_s > 0:
        options += [("grpc.max_connection_age_ms", ms(opts.max_connection_age_s)),
                    ("grpc.max_connection_age_grace_ms", ms(opts.max_connection_age_grace_s))]
    return options


@dataclass
class RunningServer:
    """A started server and its parts; ``stop`` shuts it down gracefully (from any thread)."""

    server: grpc.aio.Server
    port: int
    servicer: SplitInferenceServicer
    health: health.aio.HealthServicer
    batcher: MicroBatcher
    grace_s: float
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    metrics: MetricsServer | None = None
    _stopped: threading.Event = field(default_factory=threading.Event)

    def _run(self, coro, timeout: float | None = None):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self, grace_s: float | None = None) -> None:
        """Health goes NOT_SERVING, new calls are refused, in-flight ones get ``grace_s``."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        grace = self.grace_s if grace_s is None else grace_s

        async def shut_down() -> None:
            await self.health.enter_graceful_shutdown()
            await self.server.stop(grace)

        self._run(shut_down())
        self.batcher.close(timeout=self.grace_s)
        if self.metrics is not None:
            self.metrics.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10.0)

    def wait(self) -> None:
        self._stopped.wait()


def _credentials(opts: ServerOptions) -> grpc.ServerCredentials | None:
    if not (opts.tls_cert or opts.tls_key):
        if opts.client_ca:
            raise SplitnetError("--client-ca needs --tls-cert and --tls-key")
        return None
    if not (opts.tls_cert and opts.tls_key):
        raise SplitnetError("TLS needs both a certificate (--tls-cert) and a key (--tls-key)")
    pair = (Path(opts.tls_key).read_bytes(), Path(opts.tls_cert).read_bytes())
    root = Path(opts.client_ca).read_bytes() if opts.client_ca else None
    return grpc.ssl_server_credentials([pair], root_certificates=root, require_client_auth=root is not None)


def check_options(opts: ServerOptions) -> None:
    """Refuse settings that would be unsafe or meaningless (SplitnetError with one line)."""
    if opts.token and not opts.tls_cert and not opts.insecure_token_over_plaintext:
        raise SplitnetError("--token needs TLS (--tls-cert and --tls-key): without it the token crosses the "
                            "network readable; pass --insecure-token-over-plaintext to accept that anyway")
    if opts.default_budget_s <= 0:
        raise SplitnetError("--default-budget-s must be > 0")
    if opts.max_streams_per_connection < 1:
        raise SplitnetError("--max-streams-per-connection must be >= 1")
    _check_event_loop(opts.event_loop)  # before the checkpoint loads and the batcher's thread starts


async def _start(opts: ServerOptions, servicer: SplitInferenceServicer, creds: grpc.ServerCredentials | None,
                 extra_handlers: Sequence[grpc.GenericRpcHandler] = ()
                 ) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    interceptors = [TokenAuthInterceptor(opts.token)] if opts.token else []
    server = grpc.aio.server(
        interceptors=interceptors,
        options=grpc_options(opts),
        compression=grpc.Compression.NoCompression,  # payloads are entropy-coded already
    )
    pb_grpc.add_SplitInferenceServicer_to_server(servicer, server)
    if extra_handlers:
        server.add_generic_rpc_handlers(tuple(extra_handlers))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    port = server.add_secure_port(opts.address, creds) if creds else server.add_insecure_port(opts.address)
    if port == 0:
        raise OSError(f"cannot bind {opts.address}")
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port, health_servicer


def _host(address: str) -> str:
    return address.rsplit(":", 1)[0]


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    """The server's event-loop thread. It runs inference only (a lone unary frame runs on it), so autograd is off
    for its life: no per-frame ``torch.inference_mode`` enter and exit."""
    with torch.inference_mode():
        loop.run_forever()


def build_server(opts: ServerOptions, checkpoint: SplitCheckpoint | None = None,
                 extra_handlers: Sequence[grpc.GenericRpcHandler] = ()) -> RunningServer:
    """Load the checkpoint (every split and width resident), bind, start; returns at once.

    ``extra_handlers``: grpc.aio generic handlers served beside ``SplitInference`` on the same server (the
    reference methods of ``benchmarks.overhead_ladder``)."""
    check_options(opts)
    creds = _credentials(opts)
    if opts.torch_threads:
        torch.set_num_threads(opts.torch_threads)
    ckpt = checkpoint or SplitCheckpoint.load(opts.checkpoint)
    stats = ServerStats()
    side = ServerSide(ckpt)
    side.warm_up()
    batcher = MicroBatcher(side, opts.max_batch, opts.max_wait_ms, opts.max_queue, stats)
    servicer = SplitInferenceServicer(side, batcher, opts.max_message_bytes, opts.stream_window,
                                      opts.default_budget_s, opts.stream_idle_timeout_s)
    loop = new_event_loop(opts.event_loop)
    thread = threading.Thread(target=_run_loop, args=(loop,), name="splitnet-aio", daemon=True)
    thread.start()
    try:
        server, port, health_servicer = asyncio.run_coroutine_threadsafe(
            _start(opts, servicer, creds, extra_handlers), loop).result()
    except BaseException:
        batcher.close(1.0)
        loop.call_soon_threadsafe(loop.stop)
        raise
    metrics = None
    if opts.metrics_port:
        metrics = start_metrics_server(stats, opts.metrics_address or _host(opts.address), opts.metrics_port)
    return RunningServer(server, port, servicer, health_servicer, batcher, opts.grace_s, loop, thread, metrics)


def serve(opts: ServerOptions, port_file: str | None = None, on_ready=print) -> int:
    """Run until SIGTERM/SIGINT, then shut down gracefully; returns the exit status (0)."""
    running = build_server(opts)
    host = _host(opts.address)
    if port_file:
        write_port_file(port_file, running.port)
    metrics = f"; metrics on http://{host}:{running.metrics.port}/metrics" if running.metrics else ""
    on_ready(f"splitnet edge server listening on {host}:{running.port} "
             f"({'TLS' if opts.tls_cert else 'insecure'}{', token auth' if opts.token else ''}); "
             f"model {running.servicer.server_side.model_name}, "
             f"splits {', '.join(running.servicer.server_side.checkpoint.splits)}{metrics}")
    stop = termination_event()
    while not stop.wait(0.5):
        pass
    on_ready("shutting down: health NOT_SERVING, finishing in-flight frames")
    running.stop()
    on_ready("stopped")
    return 0
