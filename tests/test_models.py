from __future__ import annotations

import numpy as np
import pytest
import torch

import splitnet
from splitnet.data import load_npz, to_tensor
from splitnet.errors import CheckpointError, UnknownModelError
from splitnet.models import create_model, load_weights, model_spec
from splitnet.training.common import top1_accuracy
from tests.conftest import CIFAR_VAL, WEIGHTS, needs_shared

REQUIRED = ["resnet20_cifar", "resnet56_cifar", "resnet18", "resnet50", "mobilenet_v3_small", "mobilenet_v3_large"]


def test_registry_lists_required_models() -> None:
    assert set(REQUIRED) <= set(splitnet.list_models())


@pytest.mark.parametrize("name", REQUIRED)
def test_models_build_and_run(name: str) -> None:
    model = splitnet.create_model(name)
    assert not model.training
    size = 32 if name.endswith("cifar") else 64
    out = model(torch.randn(1, 3, size, size))
    assert out.shape == (1, model_spec(name).num_classes)


def test_unknown_model_is_a_clear_error() -> None:
    with pytest.raises(UnknownModelError, match="unknown model 'resnet9000'.*resnet20_cifar"):
        splitnet.create_model("resnet9000")


def test_cifar_resnet_depths() -> None:
    n_params = {name: sum(p.numel() for p in create_model(name).parameters())
                for name in ("resnet20_cifar", "resnet56_cifar")}
    # The published parameter counts of ResNet-20 and ResNet-56 (option A): 0.27 M and 0.85 M.
    assert 0.26e6 < n_params["resnet20_cifar"] < 0.28e6
    assert 0.84e6 < n_params["resnet56_cifar"] < 0.86e6


def test_plain_and_prefixed_state_dicts_load(tmp_path) -> None:
    src = create_model("resnet20_cifar")
    plain = tmp_path / "plain.pt"
    wrapped = tmp_path / "wrapped.th"
    torch.save(src.state_dict(), plain)
    torch.save({"best_prec1": 90.0, "state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, wrapped)
    x = torch.randn(2, 3, 32, 32)
    for path in (plain, wrapped):
        assert torch.equal(create_model("resnet20_cifar", weights=path)(x), src(x))


def test_mismatched_weights_are_rejected(tmp_path) -> None:
    path = tmp_path / "w.pt"
    torch.save(create_model("resnet20_cifar").state_dict(), path)
    with pytest.raises(CheckpointError, match="do not match"):
        create_model("resnet56_cifar", weights=path)
    with pytest.raises(CheckpointError, match="not found"):
        load_weights(create_model("resnet20_cifar"), tmp_path / "missing.pt")


@pytest.mark.slow
@needs_shared(CIFAR_VAL)
@pytest.mark.parametrize(("name", "file", "expected"), [
    ("resnet20_cifar", "resnet20-12fca82f.th", 0.810),
    ("resnet56_cifar", "resnet56-4bfd9763.th", 0.830),
])
def test_third_party_weights_score_as_published_on_val(name: str, file: str, expected: float) -> None:
    """Independent figures for these weights on the JPEG validation copies: 81.0 % and 83.0 %."""
    if not (WEIGHTS / file).exists():
        pytest.skip(f"{WEIGHTS / file} not present")
    model = create_model(name, weights=WEIGHTS / file)
    acc = top1_accuracy(model, load_npz(CIFAR_VAL), model_spec(name))
    assert abs(acc - expected) <= 0.003


def test_to_tensor_normalizes() -> None:
    spec = model_spec("resnet20_cifar")
    x = to_tensor(np.full((1, 2, 2, 3), 255, np.uint8), spec)
    assert x.shape == (1, 3, 2, 2)
    assert np.allclose(x[0, :, 0, 0].numpy(), [(1 - m) / s for m, s in zip(spec.mean, spec.std)], atol=1e-6)
