"""What each action costs in compute: device and server multiply-accumulates (MACs) and device parameters.

MACs are counted by PyTorch's :class:`torch.utils.flop_counter.FlopCounterMode` while the
real code path of the action runs once on a blank input of the model's input size (one
MAC = two FLOPs as that counter reports them): for a learned bottleneck the device runs
the teacher's head (none for a light encoder) and ``compress`` (the encoder, and for a
hyperprior the hyper-encoder and hyper-decoder the coder needs), the server runs
``decompress`` and the tail. Entropy coding itself, image codecs and element-wise
operations are not multiply-accumulates and count as 0. ``device_share`` is the device's
MACs over the unsplit model's.

Device parameters are the parameters the device needs at the action's width: a slimmable
layer counts only the slice it uses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from splitnet.checkpoint import SplitCheckpoint
from splitnet.slimmable import PerWidth, SlimmableConv2d, SlimmableConvTranspose2d, SlimmableGDN, SwitchableBatchNorm2d


@dataclass(frozen=True)
class ComputeCost:
    """Compute of one action for one frame."""

    device_macs: float
    server_macs: float
    device_params: int
    device_share: float  # device_macs / the unsplit model's MACs

    def to_dict(self) -> dict:
        return asdict(self)


def counted(fn, *args: object) -> tuple[object, float]:
    """``fn(*args)`` and the multiply-accumulates PyTorch performed while it ran (FLOPs / 2)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = fn(*args)
    return out, counter.get_total_flops() / 2.0


def count_macs(fn, *args: object) -> float:
    """Multiply-accumulates PyTorch performs while ``fn(*args)`` runs (FLOPs / 2)."""
    return counted(fn, *args)[1]


def active_params(module: nn.Module) -> int:
    """Parameters ``module`` uses at its active width (slimmable layers count their slice)."""
    if isinstance(module, (SlimmableConv2d, SlimmableConvTranspose2d)):
        cin, cout = module.in_per_width[module.active], module.out_per_width[module.active]
        k = module.weight.shape[2] * module.weight.shape[3]
        return cin * cout * k + (cout if module.bias is not None else 0)
    if isinstance(module, SlimmableGDN):
        c = module.channels[module.active]
        return c + c * c
    if isinstance(module, SwitchableBatchNorm2d):
        return active_params(module.bn[module.active])
    if isinstance(module, PerWidth):
        return active_params(module.current)
    return sum(p.numel() for p in module.parameters(recurse=False)) + sum(
        active_params(child) for child in module.children())


class ComputeModel:
    """Counts (once, then cached) the compute of every action of a checkpoint."""

    def __init__(self, checkpoint: SplitCheckpoint) -> None:
        self.checkpoint = checkpoint
        h, w = checkpoint.spec.input_size
        self._x = torch.zeros(1, 3, h, w)
        self._cache: dict[str, ComputeCost] = {}
        self.model_macs = count_macs(checkpoint.teacher.eval(), self._x)
        self.model_params = sum(p.numel() for p in checkpoint.teacher.parameters())

    def _cost(self, device_macs: float, server_macs: float, device_params: int) -> ComputeCost:
        return ComputeCost(device_macs, server_macs, int(device_params),
                           device_macs / self.model_macs if self.model_macs else 0.0)

    def cost(self, action: object) -> ComputeCost:
        """Device and server compute of an :class:`~splitnet.pipeline.Action` (or ``"local_label"``)."""
        name = action if isinstance(action, str) else action.name
        if name not in self._cache:
            self._cache[name] = self._count(action)
        return self._cache[name]

    def _count(self, action: object) -> ComputeCost:
        ckpt = self.checkpoint
        kind = action if isinstance(action, str) else action.kind
        if kind in ("local", "local_label"):
            return self._cost(self.model_macs, 0.0, self.model_params)
        if kind == "input":
            return self._cost(0.0, self.model_macs, 0)
        head, teacher_tail = ckpt.teacher_split(action.split)
        features, head_macs = counted(head, self._x)
        if kind == "features":
            return self._cost(head_macs, count_macs(teacher_tail, features), active_params(head))
        point = ckpt.split(action.split)
        bottleneck = point.bottleneck
        tail = ckpt.bottleneck_tail(action.split)
        with point.lock:
            bottleneck.set_width(action.width)
            light = bottleneck.config.is_light
            x = self._x if light else features  # what the encoder takes
            coded, encode_macs = counted(bottleneck.compress, x)
            device = encode_macs + (0.0 if light else head_macs)
            decoded, decode_macs = counted(bottleneck.decompress, coded["strings"], coded["shape"])
            decoded = decoded["x_hat"][:, :, : features.shape[2], : features.shape[3]]
            server = decode_macs + count_macs(tail, decoded)
            params = active_params(bottleneck.g_a) + active_params(bottleneck.entropy)
            if bottleneck.config.prior == "hyperprior":
                params += active_params(bottleneck.h_a) + active_params(bottleneck.h_s)
            if not light:
                params += active_params(head)
        return self._cost(device, server, params)
