from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TensorPayload(_message.Message):
    __slots__ = ("model", "weights_sha256", "split", "width", "codec", "shape", "dtype", "data")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_SHA256_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    model: str
    weights_sha256: str
    split: str
    width: float
    codec: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    dtype: str
    data: bytes
    def __init__(self, model: _Optional[str] = ..., weights_sha256: _Optional[str] = ..., split: _Optional[str] = ..., width: _Optional[float] = ..., codec: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., dtype: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class InferRequest(_message.Message):
    __slots__ = ("seq", "sent_us", "payload", "top_k", "budget_ms")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SENT_US_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    BUDGET_MS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    sent_us: int
    payload: TensorPayload
    top_k: int
    budget_ms: float
    def __init__(self, seq: _Optional[int] = ..., sent_us: _Optional[int] = ..., payload: _Optional[_Union[TensorPayload, _Mapping]] = ..., top_k: _Optional[int] = ..., budget_ms: _Optional[float] = ...) -> None: ...

class Classification(_message.Message):
    __slots__ = ("class_ids", "scores")
    CLASS_IDS_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    class_ids: _containers.RepeatedScalarFieldContainer[int]
    scores: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, class_ids: _Optional[_Iterable[int]] = ..., scores: _Optional[_Iterable[float]] = ...) -> None: ...

class Box(_message.Message):
    __slots__ = ("x1", "y1", "x2", "y2", "score", "label")
    X1_FIELD_NUMBER: _ClassVar[int]
    Y1_FIELD_NUMBER: _ClassVar[int]
    X2_FIELD_NUMBER: _ClassVar[int]
    Y2_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    x1: float
    y1: float
    x2: float
    y2: float
    score: float
    label: int
    def __init__(self, x1: _Optional[float] = ..., y1: _Optional[float] = ..., x2: _Optional[float] = ..., y2: _Optional[float] = ..., score: _Optional[float] = ..., label: _Optional[int] = ...) -> None: ...

class Detections(_message.Message):
    __slots__ = ("boxes",)
    BOXES_FIELD_NUMBER: _ClassVar[int]
    boxes: _containers.RepeatedCompositeFieldContainer[Box]
    def __init__(self, boxes: _Optional[_Iterable[_Union[Box, _Mapping]]] = ...) -> None: ...

class ServerTimings(_message.Message):
    __slots__ = ("queue_ms", "decode_ms", "tail_ms", "batch_size")
    QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    DECODE_MS_FIELD_NUMBER: _ClassVar[int]
    TAIL_MS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    queue_ms: float
    decode_ms: float
    tail_ms: float
    batch_size: int
    def __init__(self, queue_ms: _Optional[float] = ..., decode_ms: _Optional[float] = ..., tail_ms: _Optional[float] = ..., batch_size: _Optional[int] = ...) -> None: ...

class InferResponse(_message.Message):
    __slots__ = ("seq", "classification", "detections", "timings", "status_code", "status_message")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    CLASSIFICATION_FIELD_NUMBER: _ClassVar[int]
    DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    STATUS_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    seq: int
    classification: Classification
    detections: Detections
    timings: ServerTimings
    status_code: int
    status_message: str
    def __init__(self, seq: _Optional[int] = ..., classification: _Optional[_Union[Classification, _Mapping]] = ..., detections: _Optional[_Union[Detections, _Mapping]] = ..., timings: _Optional[_Union[ServerTimings, _Mapping]] = ..., status_code: _Optional[int] = ..., status_message: _Optional[str] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SplitPointInfo(_message.Message):
    __slots__ = ("node", "codec", "widths", "feature_shape", "fine_tuned_tail", "object_filter")
    NODE_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    WIDTHS_FIELD_NUMBER: _ClassVar[int]
    FEATURE_SHAPE_FIELD_NUMBER: _ClassVar[int]
    FINE_TUNED_TAIL_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FILTER_FIELD_NUMBER: _ClassVar[int]
    node: str
    codec: str
    widths: _containers.RepeatedScalarFieldContainer[float]
    feature_shape: _containers.RepeatedScalarFieldContainer[int]
    fine_tuned_tail: bool
    object_filter: bool
    def __init__(self, node: _Optional[str] = ..., codec: _Optional[str] = ..., widths: _Optional[_Iterable[float]] = ..., feature_shape: _Optional[_Iterable[int]] = ..., fine_tuned_tail: _Optional[bool] = ..., object_filter: _Optional[bool] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "weights_sha256", "input_shape", "num_classes", "split_points", "feature_codecs", "image_codecs", "task")
    NAME_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_SHA256_FIELD_NUMBER: _ClassVar[int]
    INPUT_SHAPE_FIELD_NUMBER: _ClassVar[int]
    NUM_CLASSES_FIELD_NUMBER: _ClassVar[int]
    SPLIT_POINTS_FIELD_NUMBER: _ClassVar[int]
    FEATURE_CODECS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_CODECS_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    name: str
    weights_sha256: str
    input_shape: _containers.RepeatedScalarFieldContainer[int]
    num_classes: int
    split_points: _containers.RepeatedCompositeFieldContainer[SplitPointInfo]
    feature_codecs: _containers.RepeatedScalarFieldContainer[str]
    image_codecs: _containers.RepeatedScalarFieldContainer[str]
    task: str
    def __init__(self, name: _Optional[str] = ..., weights_sha256: _Optional[str] = ..., input_shape: _Optional[_Iterable[int]] = ..., num_classes: _Optional[int] = ..., split_points: _Optional[_Iterable[_Union[SplitPointInfo, _Mapping]]] = ..., feature_codecs: _Optional[_Iterable[str]] = ..., image_codecs: _Optional[_Iterable[str]] = ..., task: _Optional[str] = ...) -> None: ...

class GetModelInfoResponse(_message.Message):
    __slots__ = ("models", "server_version", "max_message_bytes")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    server_version: str
    max_message_bytes: int
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., server_version: _Optional[str] = ..., max_message_bytes: _Optional[int] = ...) -> None: ...

class ProbeRequest(_message.Message):
    __slots__ = ("padding",)
    PADDING_FIELD_NUMBER: _ClassVar[int]
    padding: bytes
    def __init__(self, padding: _Optional[bytes] = ...) -> None: ...

class ProbeResponse(_message.Message):
    __slots__ = ("received_bytes",)
    RECEIVED_BYTES_FIELD_NUMBER: _ClassVar[int]
    received_bytes: int
    def __init__(self, received_bytes: _Optional[int] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StageStats(_message.Message):
    __slots__ = ("stage", "count", "mean_ms", "p50_ms", "p95_ms", "p99_ms")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    MEAN_MS_FIELD_NUMBER: _ClassVar[int]
    P50_MS_FIELD_NUMBER: _ClassVar[int]
    P95_MS_FIELD_NUMBER: _ClassVar[int]
    P99_MS_FIELD_NUMBER: _ClassVar[int]
    stage: str
    count: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    def __init__(self, stage: _Optional[str] = ..., count: _Optional[int] = ..., mean_ms: _Optional[float] = ..., p50_ms: _Optional[float] = ..., p95_ms: _Optional[float] = ..., p99_ms: _Optional[float] = ...) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("counters", "stages", "uptime_s")
    class CountersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    counters: _containers.ScalarMap[str, int]
    stages: _containers.RepeatedCompositeFieldContainer[StageStats]
    uptime_s: float
    def __init__(self, counters: _Optional[_Mapping[str, int]] = ..., stages: _Optional[_Iterable[_Union[StageStats, _Mapping]]] = ..., uptime_s: _Optional[float] = ...) -> None: ...
