"""The ``splitnet serve`` options of the Ray Serve engine (parsing only: imports neither Ray nor torch)."""

from __future__ import annotations

import argparse


def add_ray_arguments(parser: argparse.ArgumentParser) -> None:
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
