"""Running ``splitnet serve --engine ray`` from parsed arguments (options: ``splitnet_cli.ray_options``)."""

from __future__ import annotations

import argparse
import logging


def serve_ray(args: argparse.Namespace, token: str | None) -> int:
    """Run ``splitnet serve --engine ray`` until SIGTERM; the embedded server's TLS options are refused."""
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
