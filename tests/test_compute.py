"""MAC accounting: every action's device and server multiply-accumulates, counted by PyTorch's FLOP counter."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from splitnet.compute import ComputeModel, active_params, count_macs
from splitnet.pipeline import Action, DeviceSide
from splitnet.slimmable import SlimmableConv2d


def test_count_macs_of_a_convolution_is_the_textbook_figure() -> None:
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    assert count_macs(conv, torch.zeros(1, 3, 10, 10)) == 8 * 3 * 9 * 10 * 10


def test_active_params_count_the_slice_a_width_uses() -> None:
    conv = SlimmableConv2d((2, 4), (4, 8), 3)
    assert active_params(conv) == 4 * 8 * 9 + 8
    conv.active = 0
    assert active_params(conv) == 2 * 4 * 9 + 4
    model = nn.Sequential(nn.Conv2d(3, 2, 1), conv)
    assert active_params(model) == 3 * 2 + 2 + 2 * 4 * 9 + 4


def test_every_action_of_a_checkpoint(tiny_checkpoint) -> None:
    compute = ComputeModel(tiny_checkpoint)
    assert compute.model_macs == count_macs(tiny_checkpoint.teacher, torch.zeros(1, 3, 32, 32)) > 4e7  # ResNet-20
    local = compute.cost(Action("local"))
    assert local.device_share == 1.0 and local.server_macs == 0 and local.device_params == compute.model_params
    assert compute.cost("local_label") == local
    for action in DeviceSide(tiny_checkpoint).actions(feature_codecs=("int8+zstd",), image_qualities=(75,)):
        cost = compute.cost(action)
        assert cost.device_macs >= 0 and cost.server_macs >= 0
        assert cost.device_share == pytest.approx(cost.device_macs / compute.model_macs)
        if action.kind == "features":  # a cut of the teacher itself: the two sides add up to the model
            assert cost.device_macs + cost.server_macs == pytest.approx(compute.model_macs)
    light = [compute.cost(Action("bottleneck", "layer1", w, "factorized")) for w in (0.25, 0.5, 0.75, 1.0)]
    assert [c.device_macs for c in light] == sorted(c.device_macs for c in light) and light[0] != light[-1]
    assert all(c.device_share < 0.05 for c in light)  # a few strided convolutions, no teacher layer
    on_features = compute.cost(Action("bottleneck", "layer2", 0.5, "hyperprior"))
    head = compute.cost(Action("features", "layer2", codec="int8+zstd"))
    assert on_features.device_macs > head.device_macs  # the teacher's head and the encoder
    assert compute.cost(Action("input", codec="webp", quality=75)).device_macs == 0
