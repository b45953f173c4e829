"""torchvision detectors cut inside their MobileNetV3 backbone.

Two models: ``ssdlite320_mobilenet_v3_large`` and ``fasterrcnn_mobilenet_v3_large_320_fpn``.
Both run a MobileNetV3-Large ``features`` body, then build multi-scale maps from it
(SSDLite: the C4 expansion layer and extra blocks; Faster R-CNN: an FPN on blocks 13 and
16). The cut is made in the body *before* those maps exist, so one tensor crosses it.

Split nodes are named as in a plain ``mobilenet_v3_large``: ``features.N`` (or a deeper
name such as ``features.N.block.0`` where that is a one-tensor cut), whatever the
detector calls the body internally (``backbone.features.0.N`` in SSDLite,
``backbone.body.N`` in Faster R-CNN). :func:`split_detector` cuts the backbone with
:func:`splitnet.splitting.split_model`.

Preprocessing and the fixed input size:

* ``head(images)`` takes ``[N, 3, H, W]`` floats in ``[0, 1]``, normalizes them with the
  model's own mean/std and resizes them bilinearly to a FIXED ``input_size`` (320x320),
  exactly as the model's ``GeneralizedRCNNTransform`` does with ``fixed_size`` set, so
  every image gives the same feature shape and tails can be batched on the server.
* SSDLite always resizes to 320x320. Faster R-CNN 320 normally keeps the aspect ratio
  (shorter side 320, longer side at most 640); :func:`create_detector` sets its
  transform's ``fixed_size`` to 320x320 instead (pass ``fixed_size=(W, H)`` to override),
  so the unsplit model and ``tail(head(x))`` agree. Non-square images are therefore
  squashed, which costs pretrained Faster R-CNN weights a little accuracy.
* ``tail(features, image_sizes)`` returns torchvision's list of
  ``{"boxes", "scores", "labels"}`` with boxes in original-image pixels ``(x1, y1, x2, y2)``.

Registered: ``ssdlite320_mobilenet_v3_large`` is also a registered model
(:func:`splitnet.models.create_model`), built as a :class:`BatchedDetector` (a batch tensor
in, torchvision's detections out) and cut by :func:`split_registered_detector`, whose tail
takes the features alone (every frame at the registered 320x320 input size); split
checkpoints, ``splitnet serve``, ``DeviceSide``/``ServerSide`` and ``SplitClient`` hold it
like any other registered model.

Bottlenecks: every MobileNetV3 block ends in a linear projection (conv + BN, no
activation) and ``features.0`` ends in a hardswish, so the features at every split node
can be negative. A :class:`~splitnet.bottleneck.SlimmableBottleneck` in front of these
tails needs ``BottleneckConfig(out_relu=False)``.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torchvision.models.detection.image_list import ImageList

from splitnet.errors import ShapeError, SplitnetError, UnknownModelError, UnknownSplitPointError
from splitnet.models.weights import extract_state_dict, load_weights, read_checkpoint
from splitnet.splitting import list_split_points, split_model

DETECTOR_SPLITS: dict[str, tuple[str, ...]] = {
    # start of the stride-4, stride-8 and stride-16 stages: same tensor as the stage's end, less device work
    "ssdlite320_mobilenet_v3_large": ("features.2", "features.4", "features.7"),
    "fasterrcnn_mobilenet_v3_large_320_fpn": ("features.2", "features.4", "features.7"),
}

DEFAULT_INPUT_SIZE: tuple[int, int] = (320, 320)  # (height, width) in pixels

_SSD = "ssdlite320_mobilenet_v3_large"
_RCNN = "fasterrcnn_mobilenet_v3_large_320_fpn"
_NODE = re.compile(r"features\.(\d+)((?:\.\w+)*)")

Detection = dict[str, torch.Tensor]


def _check_name(name: str) -> None:
    if name not in DETECTOR_SPLITS:
        raise UnknownModelError(f"unknown detector {name!r}; splittable detectors: {', '.join(DETECTOR_SPLITS)}")


def _check_model(model: nn.Module, name: str) -> None:
    """``model`` must be the architecture ``name`` stands for."""
    from torchvision.models.detection.faster_rcnn import FasterRCNN
    from torchvision.models.detection.ssd import SSD

    expected = SSD if name == _SSD else FasterRCNN
    if not isinstance(model, expected):
        raise SplitnetError(f"{name} is a {expected.__name__}, got a {type(model).__name__}")


def create_detector(
    name: str,
    weights: str | None = None,
    weights_backbone: str | None = None,
    num_classes: int | None = None,
    **kwargs: Any,
) -> nn.Module:
    """A torchvision detector in eval mode, ready for :func:`split_detector`.

    ``weights``/``weights_backbone`` name torchvision weights (``"DEFAULT"``,
    ``"COCO_V1"``); torchvision loads them from its cache (it downloads them otherwise,
    so offline use needs them cached). ``kwargs`` go to the torchvision builder
    (``score_thresh``, ``box_score_thresh``, ...). Faster R-CNN gets
    ``fixed_size=(320, 320)`` unless ``kwargs`` set it (``(width, height)``, torchvision's order).
    """
    _check_name(name)
    import torchvision

    if name == _RCNN:
        kwargs.setdefault("fixed_size", (DEFAULT_INPUT_SIZE[1], DEFAULT_INPUT_SIZE[0]))
    model = torchvision.models.get_model(
        name, weights=weights, weights_backbone=weights_backbone, num_classes=num_classes, **kwargs
    )
    return model.eval()


def _fixed_size(model: nn.Module) -> tuple[int, int]:
    """The (height, width) the model's transform resizes every image to; 320x320 when unset."""
    fixed = getattr(model.transform, "fixed_size", None)
    return DEFAULT_INPUT_SIZE if fixed is None else (int(fixed[1]), int(fixed[0]))


def _padded_size(size: tuple[int, int], divisible: int) -> tuple[int, int]:
    """``size`` rounded up to a multiple of ``divisible``, as ``GeneralizedRCNNTransform.batch_images`` pads."""
    return tuple(int(math.ceil(s / divisible) * divisible) for s in size)  # type: ignore[return-value]


def _body_prefix(model: nn.Module, name: str) -> tuple[str, int]:
    """Internal node-name prefix of the MobileNet body in ``model.backbone`` and its first non-body index."""
    if name == _SSD:
        stage0 = model.backbone.features[0]  # MobileNet features[:c4] + the C4 expansion layer
        return "features.0.", len(stage0) - 1
    return "body.", len(model.backbone.body)


def _internal_node(model: nn.Module, name: str, node: str) -> str:
    """Map a public ``features.N...`` name to the node name in ``model.backbone``."""
    match = _NODE.fullmatch(node)
    prefix, limit = _body_prefix(model, name)
    if match is None or int(match.group(1)) >= limit:
        raise UnknownSplitPointError(_invalid(model, name, node))
    return f"{prefix}{match.group(1)}{match.group(2)}"


def detector_split_points(model: nn.Module, name: str) -> list[str]:
    """Every public node (``features.N``) where ``model`` can be cut with one tensor crossing."""
    _check_name(name)
    _check_model(model, name)
    prefix, limit = _body_prefix(model, name)
    points = []
    for internal in list_split_points(model.backbone, depth=prefix.count(".") + 1):
        rest = internal.removeprefix(prefix)
        if internal.startswith(prefix) and int(rest.split(".")[0]) < limit:
            points.append(f"features.{rest}")
    return points


def _invalid(model: nn.Module, name: str, node: str) -> str:
    return (
        f"cannot split {name} at {node!r}: not a node of its MobileNet body before the multi-scale "
        f"features, or more than one tensor crosses it (valid nodes: {', '.join(detector_split_points(model, name))})"
    )


class DetectorHead(nn.Module):
    """Device side: normalize, resize to ``input_size``, run the backbone up to the split node."""

    def __init__(self, body: fx.GraphModule, mean: list[float], std: list[float], input_size: tuple[int, int],
                 size_divisible: int) -> None:
        super().__init__()
        self.body = body
        self.image_mean = [float(v) for v in mean]
        self.image_std = [float(v) for v in std]
        self.input_size = input_size
        self.padded_size = _padded_size(input_size, size_divisible)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """``[N, 3, H, W]`` in [0, 1] -> normalized ``[N, 3, *padded_size]``, as the model's transform does it."""
        if images.dim() != 4 or images.shape[1] != 3 or not images.is_floating_point():
            raise ShapeError(f"images must be a float tensor [N, 3, H, W], got {tuple(images.shape)} {images.dtype}")
        mean = torch.as_tensor(self.image_mean, dtype=images.dtype, device=images.device)
        std = torch.as_tensor(self.image_std, dtype=images.dtype, device=images.device)
        x = (images - mean[:, None, None]) / std[:, None, None]
        x = F.interpolate(x, size=list(self.input_size), mode="bilinear", align_corners=False)
        pad_h, pad_w = self.padded_size[0] - self.input_size[0], self.padded_size[1] - self.input_size[1]
        return F.pad(x, (0, pad_w, 0, pad_h)) if pad_h or pad_w else x

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(self.preprocess(images))


class DetectorTail(nn.Module):
    """Server side: rest of the backbone, multi-scale features, heads, anchors and post-processing."""

    def __init__(self, rest: fx.GraphModule, transform: nn.Module, input_size: tuple[int, int],
                 padded_size: tuple[int, int], feature_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.rest = rest
        self.transform = transform
        self.input_size = input_size
        self.padded_size = padded_size
        self.feature_shape = feature_shape

    def _image_list(self, features: torch.Tensor) -> ImageList:
        """What the anchor generators read of the resized batch: its shape, dtype and device (no memory)."""
        n = features.shape[0]
        tensors = features.new_zeros(()).expand(n, 3, *self.padded_size)
        return ImageList(tensors, [self.input_size] * n)

    def _check(self, features: torch.Tensor, image_sizes: list[tuple[int, int]]) -> None:
        if features.dim() != 4 or tuple(features.shape[1:]) != self.feature_shape:
            raise ShapeError(f"features must be [N, {', '.join(map(str, self.feature_shape))}], "
                             f"got {tuple(features.shape)}")
        if len(image_sizes) != features.shape[0]:
            raise ShapeError(f"{len(image_sizes)} image sizes for a batch of {features.shape[0]}")

    def detect(self, features: torch.Tensor, images: ImageList) -> list[Detection]:
        """Detections in resized-image pixels (model specific)."""
        raise NotImplementedError

    def forward(self, features: torch.Tensor, image_sizes: list[tuple[int, int]]) -> list[Detection]:
        """``image_sizes`` are the original (H, W) in pixels; boxes come back in those pixels."""
        self._check(features, image_sizes)
        images = self._image_list(features)
        detections = self.detect(features, images)
        originals = [(int(h), int(w)) for h, w in image_sizes]
        return self.transform.postprocess(detections, images.image_sizes, originals)


class SSDTail(DetectorTail):
    """SSDLite tail: rest of the feature extractor, SSD head, default boxes, score/NMS filtering."""

    def __init__(self, model: nn.Module, rest: fx.GraphModule, **kw: Any) -> None:
        super().__init__(rest, model.transform, **kw)
        self.head = model.head
        self.anchor_generator = model.anchor_generator
        self._postprocess = model.postprocess_detections  # bound method: only Python-side settings

    def detect(self, features: torch.Tensor, images: ImageList) -> list[Detection]:
        maps = list(self.rest(features).values())
        anchors = self.anchor_generator(images, maps)
        return self._postprocess(self.head(maps), anchors, images.image_sizes)


class RCNNTail(DetectorTail):
    """Faster R-CNN tail: rest of the body, FPN, RPN and RoI heads."""

    def __init__(self, model: nn.Module, rest: fx.GraphModule, **kw: Any) -> None:
        super().__init__(rest, model.transform, **kw)
        self.rpn = model.rpn
        self.roi_heads = model.roi_heads

    def detect(self, features: torch.Tensor, images: ImageList) -> list[Detection]:
        maps = OrderedDict(self.rest(features))
        proposals, _ = self.rpn(images, maps)
        detections, _ = self.roi_heads(maps, proposals, images.image_sizes)
        return detections


@dataclass
class DetectorSplit:
    """A detector cut in two: ``tail(head(images), sizes)`` equals ``model(list(images))``.

    ``input_size`` is the fixed (height, width) in pixels every image is resized to;
    ``feature_channels`` and ``feature_size`` (height, width in feature cells) describe
    the one tensor that crosses the cut.
    """

    head: DetectorHead
    tail: DetectorTail
    node: str
    input_size: tuple[int, int]
    feature_channels: int
    feature_size: tuple[int, int]

    @property
    def feature_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of the features for one image, whatever its original size."""
        return (self.feature_channels, *self.feature_size)


@torch.no_grad()
def _probe(head: DetectorHead, model: nn.Module) -> tuple[int, int, int]:
    """Feature shape (C, h, w) at the head's fixed input size, computed in eval mode."""
    param = next(model.parameters())
    was_training = model.training
    model.eval()
    try:
        out = head(torch.zeros(1, 3, *head.input_size, dtype=param.dtype, device=param.device))
    finally:
        model.train(was_training)
    return tuple(out.shape[1:])  # type: ignore[return-value]


def split_detector(model: nn.Module, name: str, node: str) -> DetectorSplit:
    """Cut ``model`` (built by :func:`create_detector`) at public node ``node`` (``features.N``).

    The head and tail share the model's parameters. Raises :class:`UnknownModelError` for
    an unknown ``name`` and :class:`UnknownSplitPointError` (listing the valid nodes) when
    ``node`` does not exist, lies past the point where the multi-scale features start, or
    more than one tensor would cross it.
    """
    _check_name(name)
    _check_model(model, name)
    internal = _internal_node(model, name, node)
    try:
        body, rest = split_model(model.backbone, internal)
    except UnknownSplitPointError:
        raise UnknownSplitPointError(_invalid(model, name, node)) from None
    transform = model.transform
    input_size = _fixed_size(model)
    head = DetectorHead(body, transform.image_mean, transform.image_std, input_size, transform.size_divisible)
    shape = _probe(head, model)
    tail_cls = SSDTail if name == _SSD else RCNNTail
    tail = tail_cls(model, rest, input_size=input_size, padded_size=head.padded_size, feature_shape=shape)
    return DetectorSplit(head, tail, node, input_size, shape[0], (shape[1], shape[2]))


# ------------------------------------------------------------ registered form
class BatchedDetector(nn.Module):
    """A torchvision detector as a registered model: ``forward(x)`` takes a batch ``[N, 3, H, W]``
    of floats in [0, 1] and returns torchvision's list of ``{"boxes", "scores", "labels"}``
    (boxes in the input's pixels); the detector normalizes and resizes by itself."""

    def __init__(self, model: nn.Module, name: str) -> None:
        super().__init__()
        _check_name(name)
        _check_model(model, name)
        self.model = model
        self.name = name

    def forward(self, x: torch.Tensor) -> list[Detection]:
        if x.dim() != 4 or x.shape[1] != 3 or not x.is_floating_point():
            raise ShapeError(f"images must be a float tensor [N, 3, H, W], got {tuple(x.shape)} {x.dtype}")
        return self.model(list(x))


class FixedSizeTail(nn.Module):
    """A :class:`DetectorTail` for frames of one known size: ``forward(features)`` gives the
    detections of frames of ``input_size`` (height, width) pixels, boxes in those pixels."""

    def __init__(self, tail: DetectorTail, input_size: tuple[int, int]) -> None:
        super().__init__()
        self.tail = tail
        self.input_size = (int(input_size[0]), int(input_size[1]))

    def forward(self, features: torch.Tensor) -> list[Detection]:
        return self.tail(features, [self.input_size] * features.shape[0])


def build_registered_detector(name: str, weights: str | Path | None = None, **kwargs: Any) -> BatchedDetector:
    """The registered form of detector ``name``: random weights (no backbone weights either)
    unless ``weights`` is a state-dict file (of the :class:`BatchedDetector` or of the bare
    torchvision model) or names torchvision weights (loaded from torchvision's cache)."""
    is_file = weights is not None and Path(str(weights)).is_file()
    tv_weights = None if (weights is None or is_file) else str(weights)
    kwargs.setdefault("weights_backbone", None)
    model = create_detector(name, weights=tv_weights, **kwargs)
    wrapper = BatchedDetector(model, name)
    if is_file:
        state = extract_state_dict(read_checkpoint(weights))  # type: ignore[arg-type]
        wrapped = all(k.startswith("model.") for k in state)
        load_weights(wrapper if wrapped else model, state)
    return wrapper.eval()


def _inner(model: nn.Module, name: str) -> nn.Module:
    if not isinstance(model, BatchedDetector):
        raise SplitnetError(f"registered {name} is a BatchedDetector (splitnet.create_model), "
                            f"got a {type(model).__name__}")
    return model.model


def split_registered_detector(model: nn.Module, name: str, node: str) -> tuple[DetectorHead, FixedSizeTail]:
    """``(head, tail)`` of a registered detector at ``node``: ``tail(head(x)) == model(x)`` for
    frames at the model's input size; both share the model's parameters."""
    split = split_detector(_inner(model, name), name, node)
    return split.head, FixedSizeTail(split.tail, split.input_size)


def registered_detector_split_points(model: nn.Module, name: str, depth: int | None = 2) -> list[str]:
    """Nodes ``features.N`` where a registered detector can be cut (``depth`` is not used: the
    nodes are the blocks of the MobileNet body)."""
    return detector_split_points(_inner(model, name), name)
