"""``splitnet serve``: the edge server, embedded in this process or deployed on Ray Serve (``--engine ray``).

Parsing only at import: neither torch nor Ray is imported before the command runs.
"""

from __future__ import annotations

import argparse

from splitnet_cli.argtypes import asset_path, host_port, nonnegative_float, nonnegative_int, positive_int
from splitnet_cli.options import add_token_arguments, read_token


def add_parser(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("serve", help="run the edge server (decoders + tails) over gRPC")
    s.add_argument("--address", type=host_port, default="127.0.0.1:50051",
                   help="HOST:PORT to listen on (port 0: any free port)")
    s.add_argument("--checkpoint", type=asset_path, default=None, help="split checkpoint (default: the shipped one)")
    s.add_argument("--max-batch", type=positive_int, default=32, help="largest micro-batch for the tail")
    s.add_argument("--max-wait-ms", type=nonnegative_float, default=0.0,
                   help="longest wait to fill a micro-batch (0: batch only what is already queued)")
    s.add_argument("--max-queue", type=positive_int, default=512, help="queued frames before RESOURCE_EXHAUSTED")
    s.add_argument("--workers", type=positive_int, default=None,
                   help="no effect (the asyncio server holds no thread per call); kept so old command lines run")
    s.add_argument("--max-message-bytes", type=positive_int, default=4 * 1024 * 1024)
    s.add_argument("--tls-cert", default=None, help="PEM server certificate (enables TLS)")
    s.add_argument("--tls-key", default=None, help="PEM server private key")
    s.add_argument("--client-ca", default=None, help="PEM CA for client certificates (mutual TLS)")
    add_token_arguments(s, "server")
    s.add_argument("--port-file", default=None, help="write the bound port here once listening")
    s.add_argument("--grace-s", type=nonnegative_float, default=5.0, help="seconds in-flight frames get at shutdown")
    s.add_argument("--default-budget-s", type=nonnegative_float, default=30.0,
                   help="time budget of a frame whose call has no deadline and no budget_ms")
    s.add_argument("--stream-idle-timeout-s", type=nonnegative_float, default=30.0,
                   help="end a stream that sent no frame for this long with DEADLINE_EXCEEDED (0: never)")
    s.add_argument("--max-streams-per-connection", type=positive_int, default=100,
                   help="concurrent calls one client connection may have open (HTTP/2 max concurrent streams)")
    s.add_argument("--max-connection-idle-s", type=nonnegative_float, default=300.0,
                   help="close a connection that had no call for this long (0: never)")
    s.add_argument("--max-connection-age-s", type=nonnegative_float, default=1800.0,
                   help="ask a client to reconnect after this long, so names are re-resolved (0: never)")
    s.add_argument("--max-connection-age-grace-s", type=nonnegative_float, default=30.0,
                   help="calls still open at the connection's maximum age get this long to finish")
    s.add_argument("--min-client-ping-interval-s", type=nonnegative_float, default=10.0,
                   help="keepalive enforcement: a client pinging more often is disconnected (GOAWAY)")
    s.add_argument("--metrics-port", type=nonnegative_int, default=None,
                   help="serve Prometheus metrics on http://HOST:PORT/metrics (0 or absent: off)")
    s.add_argument("--metrics-address", default=None, help="host for the metrics endpoint (default: --address's)")
    s.add_argument("--event-loop", choices=("auto", "uvloop", "asyncio"), default="auto",
                   help="the embedded server's event loop (auto: uvloop where installed, else asyncio's own)")
    s.add_argument("--engine", choices=("embedded", "ray"), default="embedded",
                   help="embedded: this process serves; ray: deploy on Ray Serve (pip install 'splitnet[ray]')")
    _add_ray_arguments(s)
    s.set_defaults(func=run)


def _add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    """``--ray-address``, ``--replicas`` and the autoscaling options (used with ``--engine ray`` only)."""
    g = parser.add_argument_group("Ray Serve engine (--engine ray)")
    g.add_argument("--ray-address", default=None,
                   help="join this Ray cluster ('auto', or HOST:PORT of its head); default: start a local Ray")
    g.add_argument("--replicas", type=int, default=1,
                   help="replicas of the decoders + tails (the minimum when autoscaling)")
    g.add_argument("--max-replicas", type=int, default=0,
                   help="autoscale between --replicas and this many replicas (default: no autoscaling)")
    g.add_argument("--target-ongoing-requests", type=float, default=8.0,
                   help="autoscaling target: requests in progress per replica")
    g.add_argument("--max-ongoing-requests", type=int, default=64,
                   help="requests one replica takes at once (the rest wait at the proxy)")
    g.add_argument("--replica-cpus", type=float, default=1.0, help="Ray CPUs reserved per replica")
    g.add_argument("--replica-threads", type=int, default=1, help="torch threads per replica")
    g.add_argument("--ray-num-cpus", type=int, default=None, help="CPUs of a local Ray instance (default: all)")
    g.add_argument("--request-timeout-s", type=float, default=None, help="Ray Serve's end-to-end gRPC timeout")


def run(args: argparse.Namespace) -> int:
    import logging

    from edge_server import ServerOptions, serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    token = read_token(args)
    if args.engine == "ray":
        return _run_ray(args, token)
    opts = ServerOptions(address=args.address, checkpoint=args.checkpoint, max_batch=args.max_batch,
                         max_wait_ms=args.max_wait_ms, max_queue=args.max_queue,
                         max_message_bytes=args.max_message_bytes, tls_cert=args.tls_cert, tls_key=args.tls_key,
                         client_ca=args.client_ca, token=token, torch_threads=args.threads, grace_s=args.grace_s,
                         insecure_token_over_plaintext=args.insecure_token_over_plaintext,
                         default_budget_s=args.default_budget_s, stream_idle_timeout_s=args.stream_idle_timeout_s,
                         max_streams_per_connection=args.max_streams_per_connection,
                         max_connection_idle_s=args.max_connection_idle_s,
                         max_connection_age_s=args.max_connection_age_s,
                         max_connection_age_grace_s=args.max_connection_age_grace_s,
                         min_client_ping_interval_s=args.min_client_ping_interval_s,
                         metrics_port=args.metrics_port, metrics_address=args.metrics_address,
                         event_loop=args.event_loop)
    return serve(opts, port_file=args.port_file, on_ready=lambda msg: print(msg, flush=True))


def _run_ray(args: argparse.Namespace, token: str | None) -> int:
    """Run ``splitnet serve --engine ray`` until SIGTERM; the embedded server's TLS options are refused."""
    import logging

    from edge_server.ray_engine import RayServeOptions, UnsupportedOnRay, serve_forever

    if args.tls_cert or args.tls_key or args.client_ca:
        raise UnsupportedOnRay("Ray Serve's gRPC ingress has no TLS: terminate TLS in front of it "
                               "(a load balancer or proxy), or use --engine embedded")
    logging.getLogger("ray").setLevel(logging.WARNING)
    opts = RayServeOptions(address=args.address, checkpoint=args.checkpoint, ray_address=args.ray_address,
                           replicas=args.replicas, max_replicas=args.max_replicas,
                           target_ongoing_requests=args.target_ongoing_requests,
                           max_ongoing_requests=args.max_ongoing_requests, max_batch=args.max_batch,
                           batch_wait_ms=args.max_wait_ms, replica_cpus=args.replica_cpus,
                           replica_threads=args.replica_threads, num_cpus=args.ray_num_cpus,
                           max_message_bytes=args.max_message_bytes, request_timeout_s=args.request_timeout_s,
                           grace_s=args.grace_s)
    try:
        opts.validate()
    except ValueError as exc:
        raise UnsupportedOnRay(str(exc)) from None
    return serve_forever(opts, token, args.port_file, on_ready=lambda msg: print(msg, flush=True))
