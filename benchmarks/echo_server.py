"""A bare ``grpcio`` echo server for ``benchmarks.grpc_overhead``: ``/bench.Echo/Echo`` returns the request
bytes (identity (de)serializers, no protobuf, no splitnet code). Imports grpc only, so it starts fast.

    python -m benchmarks.echo_server PORT_FILE
"""

from __future__ import annotations

import argparse
import signal
import threading
from concurrent import futures
from pathlib import Path

import grpc

ECHO_METHOD = "/bench.Echo/Echo"


def run_echo_server(port_file: str) -> None:
    """Serve on a free 127.0.0.1 port (written to ``port_file``) until SIGTERM."""
    handler = grpc.method_handlers_generic_handler("bench.Echo", {
        "Echo": grpc.unary_unary_rpc_method_handler(lambda req, ctx: req)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), handlers=[handler],
                         options=[("grpc.so_reuseport", 0)], compression=grpc.Compression.NoCompression)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    Path(port_file).with_suffix(".tmp").write_text(str(port))
    Path(port_file).with_suffix(".tmp").replace(port_file)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    server.stop(1).wait()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("port_file", help="where the chosen port is written once serving")
    run_echo_server(ap.parse_args().port_file)
