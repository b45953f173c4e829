"""The one module that converts between splitnet's dataclasses/tensors and protobuf messages."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from splitnet.errors import PayloadError
from splitnet.payload import MAX_DATA_BYTES, Payload
from splitnet.rpc.v1 import splitnet_pb2 as pb

DEFAULT_TOP_K = 5


def payload_to_proto(p: Payload, msg: pb.TensorPayload | None = None) -> pb.TensorPayload:
    """``p`` as a ``TensorPayload``: written into ``msg`` (say, a request's ``payload`` field: no message built and
    copied in) or a new one."""
    msg = pb.TensorPayload() if msg is None else msg
    msg.SetInParent()  # present even when every field is a default
    msg.model, msg.weights_sha256, msg.split, msg.width = p.model, p.weights_sha256, p.split, p.width
    msg.codec, msg.dtype, msg.data = p.codec, p.dtype, bytes(p.data)
    msg.shape[:] = p.shape
    return msg


def payload_from_proto(msg: pb.TensorPayload, seq: int = 0, sent_us: int = 0,
                       max_data_bytes: int = MAX_DATA_BYTES) -> Payload:
    """Validate and convert; raises :class:`PayloadError` for anything malformed."""
    if len(msg.data) > max_data_bytes:
        raise PayloadError(f"payload data of {len(msg.data)} bytes exceeds the limit of {max_data_bytes} bytes")
    return Payload(model=msg.model, weights_sha256=msg.weights_sha256, split=msg.split, width=msg.width,
                   codec=msg.codec, shape=tuple(msg.shape), dtype=msg.dtype, data=msg.data,
                   seq=seq, sent_us=sent_us)


def request(p: Payload, top_k: int = DEFAULT_TOP_K, budget_ms: float = 0.0) -> pb.InferRequest:
    msg = pb.InferRequest(seq=p.seq, sent_us=p.sent_us, top_k=top_k, budget_ms=budget_ms)
    payload_to_proto(p, msg.payload)
    return msg


STREAM_FRAMING_BYTES = 9 + 5  # an HTTP/2 DATA frame's header and gRPC's length-prefix, per message on a stream
# Uplink bytes of one unary Probe call besides its padding on an open connection: the HEADERS frame (HPACK-indexed
# after the first call, the timeout changing), DATA framing, gRPC's prefix and the field header. Counted through a
# byte-counting proxy (tests/test_control_loop.py checks it within 20 B).
PROBE_CALL_OVERHEAD_BYTES = 58
# Uplink HTTP/2 control frames a streaming client sends per frame as it reads the answers (WINDOW_UPDATEs of 13 B for
# the stream and the connection, PING acks): a mean of 19-24 B a frame through a byte-counting proxy
# (tests/test_control_loop.py checks it within 10 B).
STREAM_CONTROL_BYTES = 21


def wire_overhead_bytes(p: Payload, top_k: int = DEFAULT_TOP_K, budget_ms: float = 100.0) -> int:
    """Uplink bytes one frame on an open stream costs besides its payload: the request's other
    protobuf fields (model, weights hash, split, shape, ...), the per-message framing and the mean HTTP/2 control
    frames the client sends back as it reads the answer. TCP/IP headers are not counted (nor does
    ``splitnet link`` shape them)."""
    return request_overhead_bytes(request(p, top_k, budget_ms), streamed=True)


def link_bytes(payload_bytes: float, overhead_bytes: float) -> float:
    """The bytes a frame's round trip measures the uplink by (the link estimator's unit): what its request put on
    the wire (``payload_bytes`` plus ``overhead_bytes``, as :func:`wire_overhead_bytes` counts them) beyond what an
    empty Probe call puts there, since the estimator's base RTT is such a call's round trip and already carries its
    framing. At least 1 for a frame with a payload; 0 for none. An ``overhead_bytes`` of 0 means unknown (a profile
    written before it was measured): the payload alone then. Means over frames go in as they are (a profile's)."""
    if payload_bytes <= 0:
        return 0.0
    if overhead_bytes <= 0:
        return float(payload_bytes)
    return max(1.0, payload_bytes + overhead_bytes - PROBE_CALL_OVERHEAD_BYTES)


def link_sample_bytes(payload_bytes: int, overhead_bytes: int) -> int:
    """:func:`link_bytes` of one frame, in whole bytes (at least 1 for a frame with a payload)."""
    return max(1, round(link_bytes(payload_bytes, overhead_bytes))) if payload_bytes > 0 else 0


def request_overhead_bytes(req: pb.InferRequest, streamed: bool = True) -> int:
    """Uplink bytes ``req`` costs besides its payload data: its other protobuf fields and, on a stream, the
    per-message framing and control frames (as :func:`wire_overhead_bytes`); a unary call carries about the
    call framing an empty Probe call does, so it counts that (:data:`PROBE_CALL_OVERHEAD_BYTES`)."""
    fields = req.ByteSize() - len(req.payload.data)
    return fields + (STREAM_FRAMING_BYTES + STREAM_CONTROL_BYTES if streamed else PROBE_CALL_OVERHEAD_BYTES)


def request_payload(req: pb.InferRequest, max_data_bytes: int = MAX_DATA_BYTES) -> Payload:
    if not req.HasField("payload"):
        raise PayloadError("request carries no payload")
    return payload_from_proto(req.payload, req.seq, req.sent_us, max_data_bytes)


@dataclass
class ServerTiming:
    """Milliseconds the server spent on one frame."""

    queue_ms: float = 0.0
    decode_ms: float = 0.0
    tail_ms: float = 0.0
    batch_size: int = 1


@dataclass(frozen=True)
class Box:
    """One detection: corners in input pixels, score in [0, 1], class id."""

    x1: float
    y1: float
    x2: float
    y2: float
    score: float
    label: int


@dataclass
class Prediction:
    """The result of one frame: top-k classes (best first, softmax scores) for a
    classifier, or boxes (best first) for a detector (``is_detection``)."""

    class_ids: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    is_detection: bool = False

    @property
    def top1(self) -> int:
        return self.class_ids[0]

    def limited(self, top_k: int) -> Prediction:
        """At most ``top_k`` classes; boxes are never cut."""
        return Prediction(self.class_ids[:top_k], self.scores[:top_k], self.boxes, self.is_detection)


def predictions_from_logits(logits: torch.Tensor, top_k: int = DEFAULT_TOP_K) -> list[Prediction]:
    """Top-k of each row of a logits batch."""
    k = max(1, min(top_k or DEFAULT_TOP_K, logits.shape[1]))
    probs = torch.softmax(logits if logits.dtype == torch.float32 else logits.float(), dim=1)
    scores, ids = probs.topk(k, dim=1)
    return [Prediction(i, s) for i, s in zip(ids.tolist(), scores.tolist())]


def predictions_from_detections(detections: list[dict[str, torch.Tensor]]) -> list[Prediction]:
    """Boxes of each image from torchvision-style ``{"boxes", "scores", "labels"}`` dicts."""
    out = []
    for det in detections:
        rows = torch.cat([det["boxes"].float().reshape(-1, 4), det["scores"].float().reshape(-1, 1)], 1).tolist()
        out.append(Prediction(boxes=[Box(*r, int(lb)) for r, lb in zip(rows, det["labels"].tolist())],
                              is_detection=True))
    return out


def predictions_from_output(model: str, output: object, top_k: int = DEFAULT_TOP_K,
                            is_detector: bool | None = None) -> list[Prediction]:
    """A model's output batch (logits, or a detector's output) as one :class:`Prediction` per frame.

    ``is_detector``: the model's ``ModelSpec.is_detector`` where the caller has it (a server's per-frame path);
    looked up in the model registry when None."""
    if is_detector is None:
        from splitnet.models import model_spec

        is_detector = model_spec(model).is_detector
    if is_detector:
        from splitnet.models import detections_from_output

        return predictions_from_detections(detections_from_output(model, output))
    return predictions_from_logits(output, top_k)  # type: ignore[arg-type]


def response(seq: int, prediction: Prediction | None, timing: ServerTiming | None = None,
             status_code: int = 0, status_message: str = "") -> pb.InferResponse:
    # Fields set in place, defaults left unset: the cheapest way to build it with upb (a frame's path).
    msg = pb.InferResponse(seq=seq)
    if status_code:
        msg.status_code = status_code
    if status_message:
        msg.status_message = status_message
    if prediction is not None and prediction.is_detection:
        msg.detections.SetInParent()
        msg.detections.boxes.extend(pb.Box(x1=b.x1, y1=b.y1, x2=b.x2, y2=b.y2, score=b.score, label=b.label)
                                    for b in prediction.boxes)
    elif prediction is not None:
        classification = msg.classification
        classification.class_ids.extend(prediction.class_ids)
        classification.scores.extend(prediction.scores)
    if timing is not None:
        timings = msg.timings
        timings.queue_ms = timing.queue_ms
        timings.decode_ms = timing.decode_ms
        timings.tail_ms = timing.tail_ms
        timings.batch_size = timing.batch_size
    return msg


def prediction_from_response(msg: pb.InferResponse) -> Prediction:
    if msg.WhichOneof("result") == "detections":
        return Prediction(boxes=[Box(b.x1, b.y1, b.x2, b.y2, b.score, b.label) for b in msg.detections.boxes],
                          is_detection=True)
    return Prediction(list(msg.classification.class_ids), list(msg.classification.scores))


def timing_from_response(msg: pb.InferResponse) -> ServerTiming:
    t = msg.timings
    return ServerTiming(t.queue_ms, t.decode_ms, t.tail_ms, t.batch_size)


def stats_response(counters: Mapping[str, int], uptime_s: float,
                   stages: Mapping[str, Mapping[str, float]]) -> pb.GetStatsResponse:
    """A server's ``GetStats`` answer: its counters, uptime (s) and per-stage timings (``count`` and
    ``mean_ms`` / ``p50_ms`` / ``p95_ms`` / ``p99_ms`` per stage, as ``ServerStats.stages`` gives them)."""
    resp = pb.GetStatsResponse(counters=counters, uptime_s=uptime_s)
    for stage, s in stages.items():
        resp.stages.add(stage=stage, count=int(s["count"]), mean_ms=s["mean_ms"], p50_ms=s["p50_ms"],
                        p95_ms=s["p95_ms"], p99_ms=s["p99_ms"])
    return resp
