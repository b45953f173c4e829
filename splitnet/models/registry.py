"""Model registry: ``create_model(name)``, ``list_models()`` and each model's input spec.

A model is a classifier (its output is logits) or a detector (``task="detection"``):
:func:`detections_from_output` turns a detector's output batch into boxes, scores and
labels per image, which is what the server sends back and what ``eval`` scores.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from splitnet.errors import UnknownModelError
from splitnet.models.cifar_resnet import CifarResNet
from splitnet.models.weights import load_weights

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelSpec:
    """What a caller needs to feed a registered model: input size and normalization."""

    name: str
    input_size: tuple[int, int]  # (height, width) in pixels
    num_classes: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    default_splits: tuple[str, ...] = ()
    description: str = ""
    task: str = "classification"  # or "detection"

    @property
    def is_detector(self) -> bool:
        return self.task == "detection"


Detections = list[dict[str, torch.Tensor]]  # per image: "boxes" [K, 4] (x1, y1, x2, y2 pixels), "scores", "labels"


@dataclass(frozen=True)
class _Entry:
    spec: ModelSpec
    build: Callable[..., nn.Module]
    postprocess: Callable[[Any], Detections] | None = None


_REGISTRY: dict[str, _Entry] = {}


def register_model(spec: ModelSpec, build: Callable[..., nn.Module],
                   postprocess: Callable[[Any], Detections] | None = None) -> None:
    """Add a model to the registry; ``build(weights=..., **kw)`` returns an nn.Module.

    A detector gives ``postprocess(output) -> detections``; without one its output must
    already be torchvision's list of ``{"boxes", "scores", "labels"}`` dicts.
    """
    _REGISTRY[spec.name] = _Entry(spec, build, postprocess)


def detections_from_output(name: str, output: Any) -> Detections:
    """Boxes, scores and labels per image from a registered detector's output batch."""
    entry = _entry(name)
    if not entry.spec.is_detector:
        raise UnknownModelError(f"{name!r} is a {entry.spec.task} model, not a detector")
    return entry.postprocess(output) if entry.postprocess is not None else list(output)


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    return sorted(_REGISTRY)


def model_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of a registered model."""
    return _entry(name).spec


def _entry(name: str) -> _Entry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown model {name!r}; registered models: {', '.join(list_models())}"
        ) from None


def create_model(name: str, weights: str | Path | None = None, **kwargs: object) -> nn.Module:
    """Build a registered model in eval mode.

    ``weights`` is a path to a checkpoint (a plain state dict, or a dict holding a
    ``state_dict``/``model`` entry, ``module.`` prefixes allowed). For torchvision
    models it may instead name torchvision weights (``"DEFAULT"``,
    ``"IMAGENET1K_V1"``), which torchvision loads from its cache.
    """
    model = _entry(name).build(weights=weights, **kwargs)
    return model.eval()


def _cifar_builder(depth: int) -> Callable[..., nn.Module]:
    def build(weights: str | Path | None = None, num_classes: int = 10) -> nn.Module:
        model = CifarResNet(depth=depth, num_classes=num_classes)
        if weights is not None:
            load_weights(model, weights)
        return model

    return build


def _torchvision_builder(name: str) -> Callable[..., nn.Module]:
    def build(weights: str | Path | None = None, **kwargs: object) -> nn.Module:
        import torchvision

        is_file = weights is not None and Path(str(weights)).is_file()
        tv_weights = None if (weights is None or is_file) else str(weights)
        model = torchvision.models.get_model(name, weights=tv_weights, **kwargs)
        if is_file:
            load_weights(model, weights)  # type: ignore[arg-type]
        return model

    return build


for _depth in (20, 32, 44, 56):
    register_model(
        ModelSpec(
            name=f"resnet{_depth}_cifar",
            input_size=(32, 32),
            num_classes=10,
            default_splits=("layer1", "layer2"),
            description=f"CIFAR ResNet-{_depth}, option-A shortcuts",
        ),
        _cifar_builder(_depth),
    )

for _name, _splits in (
    ("resnet18", ("layer1", "layer2")),
    ("resnet50", ("layer1", "layer2")),
    ("mobilenet_v3_small", ("features.3", "features.6")),
    ("mobilenet_v3_large", ("features.4", "features.7")),
):
    register_model(
        ModelSpec(
            name=_name,
            input_size=(224, 224),
            num_classes=1000,
            default_splits=_splits,
            description=f"torchvision {_name} (ImageNet)",
        ),
        _torchvision_builder(_name),
    )


def _tiny_detector_builder(weights: str | Path | None = None, num_classes: int = 10, width: int = 32) -> nn.Module:
    from splitnet.models.tiny_detector import TinyDetector

    model = TinyDetector(num_classes=num_classes, width=width)
    if weights is not None:
        load_weights(model, weights)
    return model


def _tiny_detector_decode(output: torch.Tensor) -> Detections:
    from splitnet.models.tiny_detector import decode

    return decode(output, output.shape[1] - 4)


register_model(
    ModelSpec(
        name="tinydet_synth",
        input_size=(128, 128),
        num_classes=10,
        default_splits=("layer2", "layer3"),
        description="small CenterNet-style detector (stride 8) trained on splitnet's synthetic CIFAR-object scenes",
        task="detection",
    ),
    _tiny_detector_builder,
    _tiny_detector_decode,
)
