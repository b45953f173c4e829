"""Slimmable layers (Yu et al., 2019): one set of weights, several widths.

A width is a fraction in (0, 1] of a layer's channels. The active width is state
of each layer, set through :func:`set_active_width` on the parent module; a layer
runs with the first ``channels[i]`` filters of its weight (a slice, no copy of the
parameters and no new modules), and :class:`SwitchableBatchNorm2d` keeps one
BatchNorm per width because the statistics differ between widths.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from splitnet.errors import ShapeError, UnknownWidthError


def channels_for(widths: Sequence[float], channels: int) -> tuple[int, ...]:
    """Channel count for each width: ``max(1, round(width * channels))``."""
    return tuple(max(1, int(round(w * channels))) for w in widths)


def check_widths(widths: Sequence[float]) -> tuple[float, ...]:
    """Validate and sort widths: each in (0, 1], no duplicates."""
    ws = tuple(sorted(float(w) for w in widths))
    if not ws or any(not 0.0 < w <= 1.0 for w in ws) or len(set(ws)) != len(ws):
        raise UnknownWidthError(f"widths must be distinct fractions in (0, 1], got {list(widths)}")
    return ws


class _Switchable(nn.Module):
    """Holds the index of the active width; set through :func:`set_active_width`."""

    active: int

    def _set_index(self, index: int) -> None:
        # a plain int: object's own setattr skips nn.Module's checks (a frame's width switch sets ~20 layers)
        object.__setattr__(self, "active", index)


class SlimmableConv2d(nn.Conv2d, _Switchable):
    """Conv2d whose in/out channels follow the active width (weights sliced ``[:out, :in]``)."""

    def __init__(self, in_channels: Sequence[int], out_channels: Sequence[int], kernel_size: int,
                 stride: int = 1, padding: int = 0, bias: bool = True) -> None:
        if len(in_channels) != len(out_channels):
            raise ValueError("in_channels and out_channels need one entry per width")
        super().__init__(max(in_channels), max(out_channels), kernel_size, stride, padding, bias=bias)
        self.in_per_width = tuple(in_channels)
        self.out_per_width = tuple(out_channels)
        self.active = len(in_channels) - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cin, cout = self.in_per_width[self.active], self.out_per_width[self.active]
        if x.ndim != 4 or x.shape[1] != cin:
            raise ShapeError(f"{type(self).__name__} expects [N, {cin}, H, W] at this width, got {tuple(x.shape)}")
        bias = self.bias[:cout] if self.bias is not None else None
        return F.conv2d(x, self.weight[:cout, :cin], bias, self.stride, self.padding)


class SlimmableConvTranspose2d(nn.ConvTranspose2d, _Switchable):
    """ConvTranspose2d whose channels follow the active width (weights sliced ``[:in, :out]``)."""

    def __init__(self, in_channels: Sequence[int], out_channels: Sequence[int], kernel_size: int,
                 stride: int = 1, padding: int = 0, output_padding: int = 0, bias: bool = True) -> None:
        if len(in_channels) != len(out_channels):
            raise ValueError("in_channels and out_channels need one entry per width")
        super().__init__(max(in_channels), max(out_channels), kernel_size, stride, padding,
                         output_padding, bias=bias)
        self.in_per_width = tuple(in_channels)
        self.out_per_width = tuple(out_channels)
        self.active = len(in_channels) - 1

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        cin, cout = self.in_per_width[self.active], self.out_per_width[self.active]
        if x.ndim != 4 or x.shape[1] != cin:
            raise ShapeError(f"{type(self).__name__} expects [N, {cin}, H, W] at this width, got {tuple(x.shape)}")
        bias = self.bias[:cout] if self.bias is not None else None
        return F.conv_transpose2d(x, self.weight[:cin, :cout], bias, self.stride, self.padding,
                                  self.output_padding)


class SwitchableBatchNorm2d(_Switchable):
    """One BatchNorm2d per width, the active one chosen by the width index."""

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        self.bn = nn.ModuleList(nn.BatchNorm2d(c) for c in channels)
        self.active = len(channels) - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn[self.active](x)


class PerWidth(_Switchable):
    """A list of modules, one per width; ``current`` is the active one (e.g. entropy models)."""

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        super().__init__()
        self.items = nn.ModuleList(modules)
        self.active = len(modules) - 1

    @property
    def current(self) -> nn.Module:
        return self.items[self.active]

    def forward(self, *args: object, **kwargs: object) -> object:
        return self.current(*args, **kwargs)


def set_active_width(module: nn.Module, index: int) -> None:
    """Set the width index on every switchable layer inside ``module``."""
    for m in module.modules():
        if isinstance(m, _Switchable):
            m._set_index(index)


class SlimmableGDN(_Switchable):
    """CompressAI's GDN (Ballé et al.) over the first ``channels[i]`` channels at width ``i``.

    The GDN's parameters (``beta`` [C], ``gamma`` [C, C]) are sliced like a convolution's
    weights; CompressAI's :class:`~compressai.layers.GDN` holds them and their
    non-negative reparametrization.
    """

    def __init__(self, channels: Sequence[int], inverse: bool = False) -> None:
        from compressai.layers import GDN

        super().__init__()
        self.gdn = GDN(max(channels), inverse=inverse)
        self.channels = tuple(channels)
        self.active = len(channels) - 1
        # (parameter versions and storage, {channels: (beta, gamma)}), replaced as one object
        self._frozen: tuple[tuple, dict[int, tuple[torch.Tensor, torch.Tensor]]] = ((), {})

    def _parameters_at(self, c: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``beta`` [c] and ``gamma`` [c, c, 1, 1] of the first ``c`` channels after the reparametrization.

        Outside autograd (inference) they are kept per width until a parameter changes: its
        version counter moves with every in-place update (optimizer steps, ``load_state_dict``)
        and its storage with ``.to()``, so a frame pays neither the reparametrization nor the
        copy of ``gamma``'s slice.
        """
        beta, gamma = self.gdn.beta, self.gdn.gamma
        if torch.is_grad_enabled():
            return (self.gdn.beta_reparam(beta)[:c],
                    self.gdn.gamma_reparam(gamma)[:c, :c].reshape(c, c, 1, 1))
        key = (beta._version, gamma._version, beta.data_ptr(), gamma.data_ptr())
        kept_key, kept = self._frozen
        if kept_key != key:
            kept = {}
            self._frozen = (key, kept)
        found = kept.get(c)
        if found is None:
            found = kept[c] = (self.gdn.beta_reparam(beta)[:c].contiguous(),
                               self.gdn.gamma_reparam(gamma)[:c, :c].reshape(c, c, 1, 1).contiguous())
        return found

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.channels[self.active]
        if x.ndim != 4 or x.shape[1] != c:
            raise ShapeError(f"SlimmableGDN expects [N, {c}, H, W] at this width, got {tuple(x.shape)}")
        beta, gamma = self._parameters_at(c)
        norm = F.conv2d(x * x, gamma, beta)
        return x * (torch.sqrt(norm) if self.gdn.inverse else torch.rsqrt(norm))
