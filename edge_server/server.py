"""Building and running the edge server: ``serve(options)``."""

from __future__ import annotations

import logging
import signal
import threading
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
import torch
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from edge_server.auth import TokenAuthInterceptor
from edge_server.batcher import MicroBatcher
from edge_server.servicer import SplitInferenceServicer
from edge_server.stats import ServerStats
from splitnet.checkpoint import SplitCheckpoint
from splitnet.pipeline import ServerSide
from splitnet.rpc.v1 import splitnet_pb2 as pb
from splitnet.rpc.v1 import splitnet_pb2_grpc as pb_grpc

log = logging.getLogger("splitnet.edge_server")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["SplitInference"].full_name


@dataclass
class ServerOptions:
    """Everything ``splitnet serve`` can set."""

    address: str = "127.0.0.1:50051"  # host:port; port 0 picks a free one
    checkpoint: str | None = None  # None: the shipped checkpoint
    max_batch: int = 32
    max_wait_ms: float = 0.0  # 0: batch what queued up while the worker was busy, never wait
    max_queue: int = 512  # queued frames before RESOURCE_EXHAUSTED
    workers: int = 64  # gRPC handler threads (concurrent calls)
    max_message_bytes: int = 4 * 1024 * 1024
    stream_window: int = 64  # frames in flight per stream
    tls_cert: str | None = None  # PEM server certificate chain
    tls_key: str | None = None  # PEM private key
    client_ca: str | None = None  # PEM CA: require client certificates signed by it (mutual TLS)
    token: str | None = None  # require "authorization: Bearer <token>"
    torch_threads: int | None = None
    grace_s: float = 5.0


@dataclass
class RunningServer:
    """A started server and its parts; ``stop`` shuts it down gracefully."""

    server: grpc.Server
    port: int
    servicer: SplitInferenceServicer
    health: health.HealthServicer
    batcher: MicroBatcher
    grace_s: float

    def stop(self, grace_s: float | None = None) -> None:
        """Health goes NOT_SERVING, new calls are refused, in-flight ones get ``grace_s``."""
        self.health.enter_graceful_shutdown()
        self.server.stop(self.grace_s if grace_s is None else grace_s).wait()
        self.batcher.close(timeout=self.grace_s)

    def wait(self) -> None:
        self.server.wait_for_termination()


def _credentials(opts: ServerOptions) -> grpc.ServerCredentials | None:
    if not (opts.tls_cert or opts.tls_key):
        if opts.client_ca:
            raise ValueError("--client-ca needs --tls-cert and --tls-key")
        return None
    if not (opts.tls_cert and opts.tls_key):
        raise ValueError("TLS needs both a certificate and a key")
    pair = (Path(opts.tls_key).read_bytes(), Path(opts.tls_cert).read_bytes())
    root = Path(opts.client_ca).read_bytes() if opts.client_ca else None
    return grpc.ssl_server_credentials([pair], root_certificates=root, require_client_auth=root is not None)


def build_server(opts: ServerOptions, checkpoint: SplitCheckpoint | None = None) -> RunningServer:
    """Load the checkpoint (every split and width resident), bind, start; returns at once."""
    if opts.torch_threads:
        torch.set_num_threads(opts.torch_threads)
    ckpt = checkpoint or SplitCheckpoint.load(opts.checkpoint)
    stats = ServerStats()
    side = ServerSide(ckpt)
    side.warm_up()
    batcher = MicroBatcher(side, opts.max_batch, opts.max_wait_ms, opts.max_queue, stats)
    servicer = SplitInferenceServicer(side, batcher, opts.max_message_bytes, opts.stream_window)
    interceptors = [TokenAuthInterceptor(opts.token)] if opts.token else []
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=opts.workers, thread_name_prefix="splitnet-rpc"),
        interceptors=interceptors,
        options=[("grpc.max_receive_message_length", opts.max_message_bytes),
                 ("grpc.max_send_message_length", opts.max_message_bytes),
                 ("grpc.so_reuseport", 0)],
        compression=grpc.Compression.NoCompression,  # payloads are entropy-coded already
        maximum_concurrent_rpcs=opts.workers,
    )
    pb_grpc.add_SplitInferenceServicer_to_server(servicer, server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    creds = _credentials(opts)
    port = server.add_secure_port(opts.address, creds) if creds else server.add_insecure_port(opts.address)
    if port == 0:
        raise OSError(f"cannot bind {opts.address}")
    server.start()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server, port, servicer, health_servicer, batcher, opts.grace_s)


def serve(opts: ServerOptions, port_file: str | None = None, on_ready=print) -> int:
    """Run until SIGTERM/SIGINT, then shut down gracefully; returns the exit status (0)."""
    running = build_server(opts)
    host = opts.address.rsplit(":", 1)[0]
    if port_file:
        tmp = Path(port_file).with_suffix(".tmp")
        tmp.write_text(str(running.port))
        tmp.replace(port_file)
    on_ready(f"splitnet edge server listening on {host}:{running.port} "
             f"({'TLS' if opts.tls_cert else 'insecure'}{', token auth' if opts.token else ''}); "
             f"model {running.servicer.server_side.model_name}, "
             f"splits {', '.join(running.servicer.server_side.checkpoint.splits)}")
    stop = threading.Event()

    def handle(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    while not stop.wait(0.5):
        pass
    on_ready("shutting down: health NOT_SERVING, finishing in-flight frames")
    running.stop()
    on_ready("stopped")
    return 0
