from __future__ import annotations

import pytest
import torch

import splitnet
from splitnet.errors import UnknownSplitPointError
from splitnet.splitting import split_shape


@pytest.mark.parametrize("name", ["resnet20_cifar", "resnet56_cifar", "resnet18", "resnet50",
                                  "mobilenet_v3_small", "mobilenet_v3_large"])
def test_tail_of_head_equals_model_at_every_split_point(name: str) -> None:
    torch.manual_seed(0)
    model = splitnet.create_model(name)
    points = splitnet.list_split_points(model)
    assert len(points) >= 10
    size = 32 if name.endswith("cifar") else 64
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        reference = model(x)
        for node in points:
            head, tail = splitnet.split_model(model, node)
            out = tail(head(x))
            assert torch.allclose(out, reference, atol=1e-5, rtol=1e-4), node


def test_split_points_use_torchvision_node_names() -> None:
    assert {"layer1", "layer2", "layer3"} <= set(splitnet.list_split_points(splitnet.create_model("resnet18")))
    assert "features.3" in splitnet.list_split_points(splitnet.create_model("mobilenet_v3_small"))


def test_head_and_tail_share_the_models_parameters() -> None:
    model = splitnet.create_model("resnet20_cifar")
    head, tail = splitnet.split_model(model, "layer1")
    assert head.conv1.weight.data_ptr() == model.conv1.weight.data_ptr()
    assert tail.get_submodule("layer3.0.conv1").weight.data_ptr() == model.layer3[0].conv1.weight.data_ptr()


def test_split_shape() -> None:
    model = splitnet.create_model("resnet20_cifar")
    assert split_shape(model, "layer1", (1, 3, 32, 32)) == (1, 16, 32, 32)
    assert split_shape(model, "layer2", (1, 3, 32, 32)) == (1, 32, 16, 16)


def test_unknown_node_is_rejected() -> None:
    with pytest.raises(UnknownSplitPointError, match="no node named 'layer9'"):
        splitnet.split_model(splitnet.create_model("resnet20_cifar"), "layer9")


def test_cut_inside_a_residual_block_is_rejected() -> None:
    with pytest.raises(UnknownSplitPointError, match="more than one tensor"):
        splitnet.split_model(splitnet.create_model("resnet20_cifar"), "layer1.0.conv1")
