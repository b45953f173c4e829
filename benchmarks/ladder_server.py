"""``splitnet serve`` with reference methods beside ``Infer``, for ``benchmarks.overhead_ladder``.

The server is the real one (``edge_server.server.build_server``, its defaults, one torch thread); on the same
grpc.aio server and event loop, service ``bench.Ladder`` adds one method per rung, each doing a little more of
what ``Infer`` does:

* ``Bytes``: returns the request bytes (no protobuf, no splitnet code);
* ``Proto``: parses the ``InferRequest``, returns a constant ``InferResponse`` (five classes);
* ``Tail``: parses, runs the split's tail on a batch decoded once beforehand, returns the constant response
  with the tail's ms;
* ``DecodeTail``: parses, checks the payload, decodes it and runs the tail (``ServerSide``), returns the
  constant response with the decode and tail ms;
* ``Answer``: ``DecodeTail`` and the real answer: top-k and ``convert.response``, without the servicer's
  bookkeeping (deadline, the inline path's checks, stats).

    python -m benchmarks.ladder_server PORT_FILE [--checkpoint C]
"""

from __future__ import annotations

import argparse

import grpc
import torch

from edge_server.lifecycle import termination_event, write_port_file
from edge_server.server import ServerOptions, build_server
from splitnet.pipeline import ServerSide, Timing
from splitnet.rpc import convert
from splitnet.rpc.v1 import splitnet_pb2 as pb

LADDER_SERVICE = "bench.Ladder"
RUNGS = ("Bytes", "Proto", "Tail", "DecodeTail", "Answer")


def _constant(timing: Timing | None = None) -> pb.InferResponse:
    t = timing or Timing()
    return pb.InferResponse(seq=1, classification=pb.Classification(class_ids=[3, 5, 1, 0, 8],
                                                                     scores=[0.9, 0.05, 0.03, 0.01, 0.01]),
                            timings=pb.ServerTimings(decode_ms=t.decode_ms, tail_ms=t.tail_ms, batch_size=1))


class Ladder:
    """The rungs' handlers; ``side`` is set once the server has loaded the checkpoint."""

    def __init__(self) -> None:
        self.side: ServerSide | None = None
        self._decoded: tuple[tuple, torch.Tensor] | None = None  # (batch key, decoded batch) for ``Tail``

    # The handlers run on the server's event-loop thread, in inference mode for its life (as Infer's inline path).
    def _decode(self, req: pb.InferRequest, timing: Timing) -> tuple[tuple, torch.Tensor]:
        """The request's payload checked and decoded: (its batch key, the tail's input)."""
        payload = convert.request_payload(req)
        key = self.side.batch_key(payload)
        return key, self.side.decode([payload], timing, key)

    def _decode_tail(self, req: pb.InferRequest) -> tuple[torch.Tensor, Timing]:
        timing = Timing()
        key, x = self._decode(req, timing)
        return self.side.run_tail(key, x, timing), timing

    async def bytes_back(self, req: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return req

    async def proto(self, req: pb.InferRequest, context: grpc.aio.ServicerContext) -> pb.InferResponse:
        return _constant()

    async def tail(self, req: pb.InferRequest, context: grpc.aio.ServicerContext) -> pb.InferResponse:
        if self._decoded is None:
            self._decoded = self._decode(req, Timing())
        key, x = self._decoded
        timing = Timing()
        self.side.run_tail(key, x, timing)
        return _constant(timing)

    async def decode_tail(self, req: pb.InferRequest, context: grpc.aio.ServicerContext) -> pb.InferResponse:
        return _constant(self._decode_tail(req)[1])

    async def answer(self, req: pb.InferRequest, context: grpc.aio.ServicerContext) -> pb.InferResponse:
        output, timing = self._decode_tail(req)
        prediction = convert.predictions_from_output(self.side.model_name, output, req.top_k,
                                                     self.side.checkpoint.spec.is_detector)[0]
        return convert.response(req.seq, prediction, convert.ServerTiming(0.0, timing.decode_ms, timing.tail_ms, 1))

    def handler(self) -> grpc.GenericRpcHandler:
        proto = {"request_deserializer": pb.InferRequest.FromString,
                 "response_serializer": pb.InferResponse.SerializeToString}
        return grpc.method_handlers_generic_handler(LADDER_SERVICE, {
            "Bytes": grpc.unary_unary_rpc_method_handler(self.bytes_back),
            "Proto": grpc.unary_unary_rpc_method_handler(self.proto, **proto),
            "Tail": grpc.unary_unary_rpc_method_handler(self.tail, **proto),
            "DecodeTail": grpc.unary_unary_rpc_method_handler(self.decode_tail, **proto),
            "Answer": grpc.unary_unary_rpc_method_handler(self.answer, **proto),
        })


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("port_file", help="where the chosen port is written once serving")
    ap.add_argument("--checkpoint", default=None)
    args = ap.parse_args()
    ladder = Ladder()
    running = build_server(ServerOptions(address="127.0.0.1:0", checkpoint=args.checkpoint, torch_threads=1),
                           extra_handlers=[ladder.handler()])
    ladder.side = running.servicer.server_side
    write_port_file(args.port_file, running.port)
    stop = termination_event()
    while not stop.wait(0.5):
        pass
    running.stop()


if __name__ == "__main__":
    main()
