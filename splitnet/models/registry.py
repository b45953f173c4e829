"""Model registry: ``create_model(name)``, ``list_models()`` and each model's input spec.

A model is a classifier (its output is logits) or a detector (``task="detection"``):
:func:`detections_from_output` turns a detector's output batch into boxes, scores and
labels per image, which is what the server sends back and what ``eval`` scores.

:func:`split_registered` cuts a registered model at a node: with torch.fx
(:func:`splitnet.splitting.split_model`) unless the model registers its own ``split``
(torchvision detectors, which FX cannot trace whole, cut inside their backbone).
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


SplitFn = Callable[[nn.Module, str], tuple[nn.Module, nn.Module]]  # (model, node) -> (head, tail)
SplitPointsFn = Callable[[nn.Module, int | None], list[str]]  # (model, depth) -> nodes


@dataclass(frozen=True)
class _Entry:
    spec: ModelSpec
    build: Callable[..., nn.Module]
    postprocess: Callable[[Any], Detections] | None = None
    split: SplitFn | None = None
    split_points: SplitPointsFn | None = None


_REGISTRY: dict[str, _Entry] = {}


def register_model(spec: ModelSpec, build: Callable[..., nn.Module],
                   postprocess: Callable[[Any], Detections] | None = None,
                   split: SplitFn | None = None, split_points: SplitPointsFn | None = None) -> None:
    """Add a model to the registry; ``build(weights=..., **kw)`` returns an nn.Module.

    A detector gives ``postprocess(output) -> detections``; without one its output must
    already be torchvision's list of ``{"boxes", "scores", "labels"}`` dicts.
    A model FX cannot trace whole gives ``split(model, node) -> (head, tail)`` (with
    ``tail(head(x)) == model(x)``, sharing the model's parameters) and
    ``split_points(model, depth) -> nodes``; other models are cut by FX.
    """
    _REGISTRY[spec.name] = _Entry(spec, build, postprocess, split, split_points)


def split_registered(name: str, model: nn.Module, node: str) -> tuple[nn.Module, nn.Module]:
    """``(head, tail)`` of registered model ``name`` (built by :func:`create_model`) at ``node``.

    Raises :class:`~splitnet.errors.UnknownSplitPointError` when the model cannot be cut there.
    """
    entry = _entry(name)
    if entry.split is not None:
        return entry.split(model, node)
    from splitnet.splitting import split_model

    return split_model(model, node)


def registered_split_points(name: str, model: nn.Module, depth: int | None = 2) -> list[str]:
    """Nodes where registered model ``name`` can be cut (one tensor crossing), in execution order."""
    entry = _entry(name)
    if entry.split_points is not None:
        return entry.split_points(model, depth)
    from splitnet.splitting import list_split_points

    return list_split_points(model, depth=depth)


def has_output_maps(name: str) -> bool:
    """True when a registered detector's output is a tensor of raw maps (decoded by its
    ``postprocess``) that a student can be distilled on; False for a detector whose output
    is already post-processed boxes (torchvision's), and for classifiers."""
    entry = _entry(name)
    return entry.spec.is_detector and entry.postprocess is not None


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


ENTRY_POINT_GROUP = "splitnet.models"
_plugins_loaded = False


def load_plugins(modules: tuple[str, ...] | list[str] = ()) -> list[str]:
    """Import user modules that call :func:`register_model`; return the names imported.

    ``modules`` are import paths (``mypkg.models``) or Python files (``mymodels.py``), what
    ``splitnet --import`` passes.
    Installed packages can instead declare an entry point in the ``splitnet.models``
    group (``[project.entry-points."splitnet.models"] mymodels = "mypkg.models"``); those
    load once, the first time a model name is not found, or here.
    """
    import importlib
    from importlib.metadata import entry_points

    global _plugins_loaded
    loaded = []
    for module in modules:
        try:
            if module.endswith(".py"):  # a file: mymodels.py
                import importlib.util
                import sys

                path = Path(module)
                if not path.is_file():
                    raise ImportError(f"no such file {path}")
                spec = importlib.util.spec_from_file_location(path.stem, path)
                mod = importlib.util.module_from_spec(spec)
                sys.modules[path.stem] = mod
                spec.loader.exec_module(mod)  # type: ignore[union-attr]
            else:
                importlib.import_module(module)
        except ImportError as exc:
            raise UnknownModelError(f"cannot import model module {module!r}: {exc}") from None
        loaded.append(module)
    if not _plugins_loaded:
        _plugins_loaded = True
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                ep.load()
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not hide the others
                import warnings

                warnings.warn(f"splitnet.models entry point {ep.name!r} failed to load: {exc}", stacklevel=2)
                continue
            loaded.append(ep.value)
    return loaded


def _entry(name: str) -> _Entry:
    if name not in _REGISTRY and not _plugins_loaded:
        load_plugins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown model {name!r}; registered models: {', '.join(list_models())} (a model of your own: "
            f"import the module that registers it with `splitnet --import MODULE ...`, or declare it in the "
            f"{ENTRY_POINT_GROUP!r} entry point group)"
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


def torchvision_classifier(name: str, num_classes: int) -> Callable[..., nn.Module]:
    """A builder for :func:`register_model`: torchvision's ``name`` with ``num_classes`` outputs.

    ``weights`` given to the builder is a file (your trained teacher: loaded as is) or
    torchvision weights (``"DEFAULT"``, ``"IMAGENET1K_V1"``, from torchvision's cache):
    those load with their 1,000 classes and the last linear layer is then replaced by a
    fresh one with ``num_classes`` outputs, ready to fine-tune.
    """

    def build(weights: str | Path | None = None, **kwargs: object) -> nn.Module:
        import torchvision

        is_file = weights is not None and Path(str(weights)).is_file()
        if weights is None or is_file:
            model = torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs)
            if is_file:
                load_weights(model, weights)  # type: ignore[arg-type]
            return model
        model = torchvision.models.get_model(name, weights=str(weights), **kwargs)
        parent, attr, last = None, "", None
        for module_name, module in model.named_modules():
            if isinstance(module, nn.Linear):
                last, attr = module, module_name
        if last is None:
            raise UnknownModelError(f"torchvision {name!r} has no linear classifier to resize")
        *path, leaf = attr.split(".")
        parent = model.get_submodule(".".join(path)) if path else model
        setattr(parent, leaf, nn.Linear(last.in_features, num_classes))
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


def _tv_detector_builder(name: str) -> Callable[..., nn.Module]:
    def build(weights: str | Path | None = None, **kwargs: object) -> nn.Module:
        from splitnet.models.tv_detection import build_registered_detector

        return build_registered_detector(name, weights, **kwargs)

    return build


def _tv_detector_split(name: str) -> SplitFn:
    def split(model: nn.Module, node: str) -> tuple[nn.Module, nn.Module]:
        from splitnet.models.tv_detection import split_registered_detector

        return split_registered_detector(model, name, node)

    return split


def _tv_detector_split_points(name: str) -> SplitPointsFn:
    def points(model: nn.Module, depth: int | None = 2) -> list[str]:
        from splitnet.models.tv_detection import registered_detector_split_points

        return registered_detector_split_points(model, name, depth)

    return points


# torchvision's SSDLite as a registered model: inputs in [0, 1] (mean 0, std 1), as torchvision's
# detectors expect them; the model normalizes and resizes itself. Random weights unless the
# caller names weights (a file, or torchvision weights it has cached: nothing is downloaded
# unless asked for).
register_model(
    ModelSpec(
        name="ssdlite320_mobilenet_v3_large",
        input_size=(320, 320),
        num_classes=91,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        default_splits=("features.2", "features.4", "features.7"),
        description="torchvision SSDLite 320 on MobileNetV3-Large (COCO classes), cut inside its backbone",
        task="detection",
    ),
    _tv_detector_builder("ssdlite320_mobilenet_v3_large"),
    split=_tv_detector_split("ssdlite320_mobilenet_v3_large"),
    split_points=_tv_detector_split_points("ssdlite320_mobilenet_v3_large"),
)
