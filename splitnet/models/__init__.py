"""Model registry and model definitions."""

from splitnet.models.registry import (
    ModelSpec,
    create_model,
    detections_from_output,
    list_models,
    load_plugins,
    model_spec,
    register_model,
    torchvision_classifier,
)
from splitnet.models.weights import file_sha256, load_weights, read_checkpoint, state_dict_sha256

__all__ = [
    "ModelSpec",
    "create_model",
    "detections_from_output",
    "file_sha256",
    "list_models",
    "load_plugins",
    "load_weights",
    "model_spec",
    "read_checkpoint",
    "register_model",
    "state_dict_sha256",
    "torchvision_classifier",
]
