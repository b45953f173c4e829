"""A plain ``grpcio`` server (no Ray) that answers through the Ray engine's replica class and, like the
Ray engine, refuses ``InferStream``: ``python -m tests.unary_server CHECKPOINT PORT_FILE``."""

from __future__ import annotations

import asyncio
import sys
from concurrent import futures

import grpc
import torch

from edge_server.lifecycle import termination_event, write_port_file
from edge_server.ray_engine import SplitInferenceReplica
from splitnet.rpc.v1 import splitnet_pb2_grpc as pb_grpc


class UnaryOnlyServicer(pb_grpc.SplitInferenceServicer):
    """Unary RPCs run the replica's coroutines; InferStream is the generated base's UNIMPLEMENTED."""

    def __init__(self, replica: SplitInferenceReplica) -> None:
        self.replica = replica

    def GetModelInfo(self, request, context):
        return asyncio.run(self.replica.GetModelInfo(request, context))

    def Infer(self, request, context):
        return asyncio.run(self.replica.Infer(request, context))

    def Probe(self, request, context):
        return asyncio.run(self.replica.Probe(request, context))

    def GetStats(self, request, context):
        return asyncio.run(self.replica.GetStats(request, context))


def main(checkpoint: str, port_file: str) -> None:
    torch.set_num_threads(1)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=[("grpc.so_reuseport", 0)])
    pb_grpc.add_SplitInferenceServicer_to_server(UnaryOnlyServicer(SplitInferenceReplica(checkpoint)), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    write_port_file(port_file, port)
    stop = termination_event()
    while not stop.wait(0.2):
        pass
    server.stop(1).wait()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
