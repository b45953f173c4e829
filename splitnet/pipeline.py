"""The in-process data path: device side (head + encoder) and server side (decoder + tail).

The gRPC runtime puts a network between :class:`DeviceSide` and :class:`ServerSide`;
here they run in one process, which is also the reference the runtime must match.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from splitnet.checkpoint import SplitCheckpoint
from splitnet.codecs import FEATURE_CODECS, IMAGE_CODECS, BottleneckCodec, Codec, create_codec
from splitnet.data import to_tensor
from splitnet.errors import (
    PayloadError,
    ShapeError,
    SplitnetError,
    UnknownCodecError,
    UnknownModelError,
    UnknownSplitPointError,
)
from splitnet.payload import WEIGHTS_ID_HEX, Payload


class WeightsMismatchError(SplitnetError):
    """The payload was produced with other weights than the receiver holds."""


@dataclass(frozen=True)
class Action:
    """What the device does with one frame.

    ``kind`` is ``"local"`` (whole model on the device), ``"bottleneck"`` (split at
    ``split``, learned codec at ``width``), ``"features"`` (split at ``split``,
    ``codec`` on the raw features) or ``"input"`` (the image, coded with ``codec``
    at ``quality``, whole model on the server).
    """

    kind: str
    split: str = ""
    width: float = 1.0
    codec: str = ""
    quality: int | None = None

    @property
    def name(self) -> str:
        """Short name used in reports and on the command line: ``layer1/w0.5``, ``webp/q75``, ``local``."""
        if self.kind == "local":
            return "local"
        if self.kind == "bottleneck":
            return f"{self.split}/w{self.width:g}"
        if self.kind == "features":
            return f"{self.split}/{self.codec}"
        return f"{self.codec}/q{self.quality}" if self.quality is not None else self.codec

    @classmethod
    def parse(cls, name: str) -> Action:
        """Inverse of :attr:`name`."""
        if name == "local":
            return cls("local")
        m = re.fullmatch(r"(jpeg|webp)/q(\d+)", name)
        if m:
            return cls("input", codec=m.group(1), quality=int(m.group(2)))
        if name == "png":
            return cls("input", codec="png")
        m = re.fullmatch(r"(.+)/w([0-9.]+)", name)
        if m:
            return cls("bottleneck", split=m.group(1), width=float(m.group(2)))
        m = re.fullmatch(r"(.+)/(fp32|fp16|int8\+zstd|int4\+zstd)", name)
        if m:
            return cls("features", split=m.group(1), codec=m.group(2))
        raise SplitnetError(f"cannot parse action {name!r} (e.g. local, layer1/w0.5, layer2/int8+zstd, webp/q75)")


@dataclass
class Timing:
    """Milliseconds spent in each stage of one batch of frames."""

    head_ms: float = 0.0
    encode_ms: float = 0.0
    decode_ms: float = 0.0
    tail_ms: float = 0.0


def _ms_since(t0: float) -> float:
    return (time.perf_counter() - t0) * 1e3


def _without_grad(fn: Callable) -> Callable:
    """Runs ``fn`` with autograd off; enters ``torch.no_grad`` only when it is on (the server's
    batcher already runs under ``torch.inference_mode``, where a second context is pure cost)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not torch.is_grad_enabled():
            return fn(*args, **kwargs)
        with torch.no_grad():
            return fn(*args, **kwargs)

    return wrapper


class DeviceSide:
    """Runs on the device: the model's head and the encoder, or the whole model locally."""

    def __init__(self, checkpoint: SplitCheckpoint) -> None:
        self.checkpoint = checkpoint
        self.spec = checkpoint.spec
        self.model = checkpoint.teacher
        self._heads: dict[str, nn.Module] = {}

    def head(self, node: str) -> nn.Module:
        """The teacher's head up to ``node`` (what raw-feature actions send)."""
        if node not in self._heads:
            self._heads[node] = self.checkpoint.teacher_split(node)[0]
        return self._heads[node]

    def encoder_input(self, action: Action) -> nn.Module:
        """What runs on the device before the action's codec: the teacher's head, or nothing
        (identity) for a light encoder, which takes the image itself."""
        if action.kind == "bottleneck":
            return self.checkpoint.encoder_input(action.split)
        return self.head(action.split)

    def actions(self, feature_codecs: Sequence[str] = ("int8+zstd",),
                image_qualities: Sequence[int] = (75,)) -> list[Action]:
        """Every action this checkpoint supports: local, split x width, features, images."""
        acts = [Action("local")]
        for node, point in self.checkpoint.splits.items():
            acts += [Action("bottleneck", node, w, point.bottleneck.config.prior) for w in point.bottleneck.widths]
            acts += [Action("features", node, codec=c) for c in feature_codecs]
        acts += [Action("input", codec="webp", quality=q) for q in image_qualities]
        return acts

    def warm_up(self) -> None:
        """Trace every head and run every encoder width and codec once (first frames then pay no set-up: a
        first WebP encode took 64 ms against 14 ms after it)."""
        h, w = self.spec.input_size
        frame = np.zeros((1, h, w, 3), dtype=np.uint8)
        self.run_local(frame)
        for action in [*self.actions(), Action("input", codec="jpeg", quality=75)]:
            if action.kind != "local":
                self.encode(frame, action)

    def preprocess(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 ``[N, H, W, 3]`` frames to the model's normalized input."""
        return to_tensor(frames, self.spec)

    @torch.no_grad()
    def run_local(self, frames: np.ndarray) -> torch.Tensor:
        """The whole model's output on the device (the fallback path): logits, or a detector's output."""
        return self.model(self.preprocess(frames))

    def codec(self, action: Action) -> Codec:
        """The action's codec; for a bottleneck, set to the action's width (hold its split's lock while using it)."""
        if action.kind == "bottleneck":
            bottleneck = self.checkpoint.split(action.split).bottleneck
            bottleneck.set_width(action.width)
            return BottleneckCodec(bottleneck)
        return create_codec(action.codec, quality=action.quality or 75)

    @torch.no_grad()
    def encode(self, frames: np.ndarray, action: Action, seq: int = 0,
               timing: Timing | None = None, use_filter: bool = False) -> list[Payload | None]:
        """Payloads (one per frame) for a batch of uint8 frames ``[N, H, W, 3]``.

        With ``use_filter``, a detector's split with an object filter gives ``None`` for
        the frames the filter finds empty: nothing to send, the result is "no objects".
        """
        timing = timing if timing is not None else Timing()
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if action.kind == "local":
            raise SplitnetError("a local action sends nothing; call run_local")
        if action.kind == "input":
            codec = self.codec(action)
            t0 = time.perf_counter()
            blobs = [codec.encode(f) for f in frames]
            timing.encode_ms += _ms_since(t0)
            shape = tuple(frames.shape[1:])
        else:
            t0 = time.perf_counter()
            features = self.encoder_input(action)(self.preprocess(frames))
            keep = None
            point = self.checkpoint.splits.get(action.split)
            if use_filter and point is not None and point.object_filter is not None:
                keep = point.object_filter.keep(features).tolist()
                features = features[torch.as_tensor(keep)]
            timing.head_ms += _ms_since(t0)
            lock = self.checkpoint.split(action.split).lock if action.kind == "bottleneck" else nullcontext()
            with lock:
                codec = self.codec(action)
                t0 = time.perf_counter()
                blobs = codec.encode_batch(features) if len(features) else []
                timing.encode_ms += _ms_since(t0)
            shape = tuple(features.shape[1:])
            if keep is not None:
                it = iter(blobs)
                blobs = [next(it) if k else None for k in keep]
        sent = time.time_ns() // 1000
        return [None if blob is None else
                Payload(self.checkpoint.model_name, self.checkpoint.sha256[:WEIGHTS_ID_HEX], action.split,
                        action.width if action.kind == "bottleneck" else 1.0, codec.codec_id,
                        shape, codec.dtype, blob, seq + i, sent) for i, blob in enumerate(blobs)]


@dataclass
class _Route:
    """What the server runs for one (split, codec family): a decoder and a tail."""

    tail: nn.Module
    bottleneck: object | None = None
    expected_shape: tuple[int, ...] = ()


@dataclass
class ServerSide:
    """Runs on the edge server: decoders and tails for every split point of a checkpoint."""

    checkpoint: SplitCheckpoint
    _routes: dict[tuple[str, str], _Route] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ckpt = self.checkpoint
        h, w = ckpt.spec.input_size
        self._routes[("", "input")] = _Route(ckpt.teacher, None, (h, w, 3))
        for node, point in ckpt.splits.items():
            head, teacher_tail = ckpt.teacher_split(node)
            with torch.no_grad():
                shape = tuple(head(torch.zeros(1, 3, h, w)).shape[1:])
            coded_shape = (3, h, w) if point.bottleneck.config.is_light else shape
            self._routes[(node, "bottleneck")] = _Route(ckpt.bottleneck_tail(node), point.bottleneck, coded_shape)
            self._routes[(node, "features")] = _Route(teacher_tail, None, shape)

    @property
    def model_name(self) -> str:
        return self.checkpoint.model_name

    @torch.no_grad()
    def warm_up(self) -> None:
        """Run every decoder width and tail once, so the first real frames pay no set-up cost."""
        for (_, family), route in self._routes.items():
            if family == "input":
                h, w, _ = route.expected_shape
                route.tail(torch.zeros(1, 3, h, w))
                continue
            x = torch.zeros(1, *route.expected_shape)
            if family == "bottleneck":
                codec = BottleneckCodec(route.bottleneck)
                for width in route.bottleneck.widths:
                    route.bottleneck.set_width(width)
                    x = codec.decode_batch(codec.encode_batch(torch.zeros(1, *route.expected_shape)),
                                           route.expected_shape)
            route.tail(x)

    def feature_shape(self, node: str) -> tuple[int, ...]:
        """Shape (no batch dimension) of the tensor the bottleneck at ``node`` encodes
        (the teacher's features there, or the normalized image for a light encoder)."""
        route = self._routes.get((node, "bottleneck"))
        if route is None:
            raise UnknownSplitPointError(f"no split point {node!r} on this server")
        return route.expected_shape

    def validate(self, p: Payload) -> tuple[str, str]:
        """Check a payload against what this server holds; return its route key."""
        if p.model != self.checkpoint.model_name:
            raise UnknownModelError(f"server holds model {self.checkpoint.model_name!r}, payload is for {p.model!r}")
        if len(p.weights_sha256) < WEIGHTS_ID_HEX or not self.checkpoint.sha256.startswith(p.weights_sha256):
            raise WeightsMismatchError(
                f"payload weights {p.weights_sha256[:12]}… differ from the server's {self.checkpoint.sha256[:12]}…"
            )
        if p.codec in IMAGE_CODECS:
            family = "input"
            if p.split:
                raise PayloadError(f"image codec {p.codec!r} needs an empty split, got {p.split!r}")
        elif p.codec in FEATURE_CODECS:
            family = "features"
        elif p.codec in ("factorized", "hyperprior"):
            family = "bottleneck"
        else:
            raise UnknownCodecError(f"unknown codec {p.codec!r}")
        key = (p.split if family != "input" else "", family)
        route = self._routes.get(key)
        if route is None:
            raise UnknownSplitPointError(
                f"no split point {p.split!r} on this server; it has {', '.join(self.checkpoint.splits)}"
            )
        if family == "bottleneck":
            bottleneck = route.bottleneck
            if p.codec != bottleneck.config.prior:
                raise UnknownCodecError(f"split {p.split!r} codes with {bottleneck.config.prior!r}, not {p.codec!r}")
            bottleneck.width_index(p.width)  # raises UnknownWidthError
        if tuple(p.shape) != route.expected_shape:
            raise ShapeError(f"shape {tuple(p.shape)} does not match {route.expected_shape} at {key[0] or 'input'!r}")
        return key

    def batch_key(self, p: Payload) -> tuple[str, str, float, str]:
        """Payloads with the same key can be decoded and run as one batch."""
        split, family = self.validate(p)
        return (split, family, p.width, p.codec)

    @_without_grad
    def decode(self, payloads: Sequence[Payload], timing: Timing | None = None,
               key: tuple[str, str, float, str] | None = None) -> torch.Tensor:
        """Decode payloads that share one batch key into the tail's input batch (``key``: their
        :meth:`batch_key`, when the caller has already validated them)."""
        timing = timing if timing is not None else Timing()
        split, family, width, codec_id = key or self.batch_key(payloads[0])
        route = self._routes[(split, family)]
        t0 = time.perf_counter()
        if family == "bottleneck":
            with self.checkpoint.split(split).lock:
                route.bottleneck.set_width(width)
                x = BottleneckCodec(route.bottleneck).decode_batch([p.data for p in payloads], payloads[0].shape)
        else:
            codec = create_codec(codec_id)
            x = torch.stack([codec.decode(p.data, p.shape) for p in payloads])
            if family == "input":
                x = to_tensor(x, self.checkpoint.spec)
        timing.decode_ms += _ms_since(t0)
        return x

    @_without_grad
    def run_tail(self, key: tuple[str, str, float, str], x: torch.Tensor,
                 timing: Timing | None = None) -> torch.Tensor:
        """The tail (or the whole model, for images) on a decoded batch; returns logits."""
        timing = timing if timing is not None else Timing()
        t0 = time.perf_counter()
        logits = self._routes[(key[0], key[1])].tail(x)
        timing.tail_ms += _ms_since(t0)
        return logits

    def infer(self, payloads: Sequence[Payload], timing: Timing | None = None) -> torch.Tensor:
        """Logits for payloads that share one batch key."""
        keys = {self.batch_key(p) for p in payloads}
        if len(keys) != 1:
            raise PayloadError(f"payloads of one batch must share split, width and codec; got {sorted(keys)}")
        key = keys.pop()
        return self.run_tail(key, self.decode(payloads, timing, key), timing)
