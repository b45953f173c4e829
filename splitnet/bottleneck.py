"""Learned, slimmable, entropy-coded bottlenecks placed at a split point.

The device runs the encoder ``g_a`` on the head's features and entropy-codes the
latent; the server decodes it and runs the decoder ``g_s``, which restores a
tensor of the shape the tail expects. The contract follows CompressAI:
``forward`` returns ``{"x_hat", "likelihoods"}`` for training, ``compress``
returns ``{"strings", "shape"}`` with real bytes, ``decompress`` restores, and
``update()`` builds the CDF tables after training.

Two kinds of encoder (``BottleneckConfig.encoder``):

- ``"features"``: the encoder takes the teacher's features at the split point (the
  device first runs the teacher's head up to that node);
- ``"light"``: the encoder takes the model's normalized input image itself: a few
  strided 5x5 convolutions with GDN (as in the Entropic Student and FrankenSplit),
  so the device does a few percent of the model's work; the decoder on the server
  rebuilds the teacher's features at the split point and the model runs on from there.

Every layer is slimmable: ``set_width(w)`` selects a fraction of the latent and
hidden channels, that width's BatchNorms and its own entropy model, by setting an
index on each layer. Nothing is reloaded or allocated.

Entropy coding is CompressAI's: its entropy models (``EntropyBottleneck``,
``GaussianConditional``), their CDF tables and its rANS coder (``compressai.ans``).
``compress``/``decompress`` call that coder directly rather than through the entropy
models' public ``compress``/``decompress``, for two reasons: those convert the CDF
tables to Python lists on every call and for every frame of a batch, where this module
converts them once per ``update()`` (the public path took 2-3x the entropy-coding time,
about 0.1-0.2 ms more per frame on the shipped checkpoint); and a stream from the
network must be bounds-padded before CompressAI's decoder reads it (``_safe_stream``).
The bytes are the same as the public methods' (``tests/test_bottleneck.py`` checks).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from compressai.ans import RansDecoder, RansEncoder
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models.base import CompressionModel, get_scale_table
from torch import nn

from splitnet.errors import DecodeError, ShapeError, SplitnetError, UnknownWidthError
from splitnet.slimmable import (
    PerWidth,
    SlimmableConv2d,
    SlimmableConvTranspose2d,
    SlimmableGDN,
    SwitchableBatchNorm2d,
    _Switchable,
    channels_for,
    check_widths,
)

PRIORS = ("factorized", "hyperprior")
ENCODERS = ("features", "light")


@dataclass(frozen=True)
class BottleneckConfig:
    """Shape of a slimmable bottleneck; stored in checkpoints so it can be rebuilt.

    ``in_channels`` is the channel count of what the encoder takes: the features at
    the split point (``encoder="features"``) or the image (``encoder="light"``, 3);
    the latent has ``latent_channels * width`` channels at ``1 / 2**downsample``
    of that input's resolution. The decoder outputs ``out_channels`` (default
    ``in_channels``) at ``2**upsample`` times the latent's resolution (default
    ``upsample = downsample``), cropped to the features the tail expects; a light
    encoder's decoder keeps ``decoder_channels`` hidden channels at every width
    (it runs on the server, so it need not slim) and has ``decoder_depth`` 3x3 layers at the
    output resolution (deeper when it must rebuild deep features, e.g. ``layer2``'s). A light
    encoder has ``encoder_depth`` extra 3x3 convolutions with GDN at the latent's resolution
    (device side, slimmed: more non-linear stages for few MACs, where the image is smallest).
    """

    in_channels: int
    latent_channels: int = 32
    hidden_channels: int = 64
    downsample: int = 1
    widths: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    prior: str = "factorized"
    hyper_channels: int = 32
    out_relu: bool = True  # the tail's input comes after a ReLU in ResNets
    encoder: str = "features"
    out_channels: int = 0  # 0: same as in_channels
    upsample: int = -1  # -1: same as downsample
    decoder_channels: int = 0  # light encoders: hidden channels of the decoder (0: hidden_channels)
    decoder_depth: int = 1  # light encoders: 3x3 conv-BN-ReLU layers of the decoder at the output resolution
    encoder_depth: int = 0  # light encoders: extra 3x3 conv + GDN layers at the latent's resolution (device side)

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", check_widths(self.widths))
        if self.prior not in PRIORS:
            raise SplitnetError(f"prior must be one of {PRIORS}, got {self.prior!r}")
        if self.encoder not in ENCODERS:
            raise SplitnetError(f"encoder must be one of {ENCODERS}, got {self.encoder!r}")
        if self.out_channels == 0:
            object.__setattr__(self, "out_channels", self.in_channels)
        if self.upsample < 0:
            object.__setattr__(self, "upsample", self.downsample)
        if self.decoder_channels == 0:
            object.__setattr__(self, "decoder_channels", self.hidden_channels)
        same_shape = self.upsample == self.downsample and self.out_channels == self.in_channels
        if (min(self.in_channels, self.latent_channels, self.hidden_channels, self.out_channels,
                self.decoder_channels, self.decoder_depth) < 1 or self.downsample < 0 or self.upsample > self.downsample
                or (self.encoder == "light" and self.downsample < 1) or self.encoder_depth < 0
                or (self.encoder == "features" and (not same_shape or self.encoder_depth))):
            raise SplitnetError(f"invalid bottleneck config {self} (a features encoder restores its input's "
                                f"shape and has no encoder_depth; a light one needs downsample >= 1 and upsample <= "
                                f"downsample)")

    @property
    def is_light(self) -> bool:
        """True when the encoder takes the input image (the device runs no part of the teacher)."""
        return self.encoder == "light"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> BottleneckConfig:
        d = dict(d)
        d["widths"] = tuple(d["widths"])
        return cls(**d)


def _conv_bn_relu(cin: tuple[int, ...], cout: tuple[int, ...], stride: int) -> list[nn.Module]:
    return [SlimmableConv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
            SwitchableBatchNorm2d(cout), nn.ReLU(inplace=True)]


def _up_bn_relu(cin: tuple[int, ...], cout: tuple[int, ...]) -> list[nn.Module]:
    return [SlimmableConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=False),
            SwitchableBatchNorm2d(cout), nn.ReLU(inplace=True)]


def _features_encoder(config: BottleneckConfig, c_in: tuple[int, ...], hidden: tuple[int, ...],
                      latent: tuple[int, ...]) -> list[nn.Module]:
    enc: list[nn.Module] = []
    prev = c_in
    for _ in range(config.downsample):
        enc += _conv_bn_relu(prev, hidden, stride=2)
        prev = hidden
    if config.downsample == 0:
        enc += _conv_bn_relu(prev, hidden, stride=1)
    enc.append(SlimmableConv2d(hidden, latent, 3, padding=1))
    return enc


def _features_decoder(config: BottleneckConfig, c_in: tuple[int, ...], hidden: tuple[int, ...],
                      latent: tuple[int, ...]) -> list[nn.Module]:
    dec: list[nn.Module] = _conv_bn_relu(latent, hidden, stride=1)
    for _ in range(config.downsample):
        dec += _up_bn_relu(hidden, hidden)
    dec += [SlimmableConv2d(hidden, c_in, 3, padding=1, bias=False), SwitchableBatchNorm2d(c_in)]
    if config.out_relu:
        dec.append(nn.ReLU(inplace=True))
    return dec


def _light_encoder(config: BottleneckConfig, hidden: tuple[int, ...], latent: tuple[int, ...]) -> list[nn.Module]:
    """Strided 5x5 convolutions with GDN on the image, ``encoder_depth`` 3x3 ones with GDN at the latent's
    resolution, then a 3x3 convolution to the latent."""
    enc: list[nn.Module] = []
    prev = (config.in_channels,) * len(hidden)
    for _ in range(config.downsample):
        enc += [SlimmableConv2d(prev, hidden, 5, stride=2, padding=2), SlimmableGDN(hidden)]
        prev = hidden
    for _ in range(config.encoder_depth):
        enc += [SlimmableConv2d(hidden, hidden, 3, padding=1), SlimmableGDN(hidden)]
    enc.append(SlimmableConv2d(hidden, latent, 3, padding=1))
    return enc


def _light_decoder(config: BottleneckConfig, latent: tuple[int, ...]) -> list[nn.Module]:
    """Latent to the teacher's features at the split point (runs on the server, full width)."""
    n = len(latent)
    dec_ch = (config.decoder_channels,) * n
    out = (config.out_channels,) * n
    dec: list[nn.Module] = _conv_bn_relu(latent, dec_ch, stride=1)
    for _ in range(config.upsample):
        dec += _up_bn_relu(dec_ch, dec_ch)
    for _ in range(config.decoder_depth):
        dec += _conv_bn_relu(dec_ch, dec_ch, stride=1)
    dec += [SlimmableConv2d(dec_ch, out, 3, padding=1, bias=False), SwitchableBatchNorm2d(out)]
    if config.out_relu:
        dec.append(nn.ReLU(inplace=True))
    return dec


def _round_ste(x: torch.Tensor, medians: torch.Tensor | None = None) -> torch.Tensor:
    """Round (around ``medians``) in the forward pass, identity gradient in the backward pass."""
    m = medians if medians is not None else x.new_zeros(())
    return x + (torch.round(x - m) + m - x).detach()


@dataclass
class _Tables:
    """An entropy model's CDF tables as Python lists, built once after ``update()``."""

    cdf: list[list[int]]
    cdf_length: list[int]
    offset: list[int]

    @classmethod
    def of(cls, model: EntropyBottleneck | GaussianConditional) -> _Tables:
        if model._quantized_cdf.numel() == 0:
            raise SplitnetError("entropy model has no CDF tables: call update() after training")
        return cls(model._quantized_cdf.tolist(), model._cdf_length.reshape(-1).tolist(),
                   model._offset.reshape(-1).tolist())


@dataclass
class _Cache:
    tables: dict[int, _Tables] = field(default_factory=dict)  # id(entropy model) -> tables
    indexes: dict[tuple[int, ...], list[int]] = field(default_factory=dict)


MAX_STREAM_BYTES_PER_SYMBOL = 8  # 16 bits of range coding plus at most ~40 escape bits per int32 symbol


def _safe_stream(data: bytes, num_symbols: int) -> bytes:
    """Pad a rANS stream with zeros so a malformed one cannot make the decoder read past it.

    CompressAI's rANS decoder does no bounds checks. Each decode step reads at most
    one 32-bit word; the escape (bypass) path can add steps, at most 16 per word of
    real data plus 16 per symbol. Zero words end every escape run, so this bound holds
    for any input, valid or not.
    """
    if len(data) < 8 or len(data) % 4:
        raise DecodeError(f"a rANS stream is a whole number of 32-bit words, at least 2; got {len(data)} bytes")
    if len(data) > MAX_STREAM_BYTES_PER_SYMBOL * num_symbols + 16:
        raise DecodeError(f"{len(data)} bytes is longer than any stream of {num_symbols} symbols can be")
    words = len(data) // 4
    pad_words = 4 + num_symbols + 16 * (16 + 8 * words + 2 * num_symbols)
    return data + bytes(4 * pad_words)


class SlimmableBottleneck(CompressionModel):
    """Encoder/decoder pair with entropy models, at one split point, at several widths."""

    def __init__(self, config: BottleneckConfig) -> None:
        super().__init__()
        self.config = config
        ws = config.widths
        c_in = (config.in_channels,) * len(ws)
        hidden = channels_for(ws, config.hidden_channels)
        latent = channels_for(ws, config.latent_channels)
        self.latent_per_width = latent

        self.g_a = nn.Sequential(*(_light_encoder(config, hidden, latent) if config.is_light
                                   else _features_encoder(config, c_in, hidden, latent)))
        self.g_s = nn.Sequential(*(_light_decoder(config, latent) if config.is_light
                                   else _features_decoder(config, c_in, hidden, latent)))

        if config.prior == "factorized":
            self.entropy = PerWidth([EntropyBottleneck(c) for c in latent])
        else:
            hyper = channels_for(ws, config.hyper_channels)
            self.h_a = nn.Sequential(SlimmableConv2d(latent, hyper, 3, padding=1), nn.ReLU(inplace=True),
                                     SlimmableConv2d(hyper, hyper, 3, padding=1))
            self.h_s = nn.Sequential(SlimmableConv2d(hyper, hyper, 3, padding=1), nn.ReLU(inplace=True),
                                     SlimmableConv2d(hyper, latent, 3, padding=1), nn.ReLU(inplace=True))
            self.entropy = PerWidth([EntropyBottleneck(c) for c in hyper])
            self.gaussian = GaussianConditional(None)
        self._switchables = [m for m in self.modules() if isinstance(m, _Switchable)]
        self._cache = _Cache()

    # ----------------------------------------------------------------- widths
    @property
    def widths(self) -> tuple[float, ...]:
        return self.config.widths

    @property
    def width(self) -> float:
        return self.widths[self.entropy.active]

    def width_index(self, width: float) -> int:
        """Index of ``width`` in :attr:`widths` (tolerates float noise)."""
        for i, w in enumerate(self.widths):
            if abs(w - float(width)) < 1e-6:
                return i
        raise UnknownWidthError(f"width {width} not available; widths are {list(self.widths)}")

    def set_width(self, width: float) -> None:
        """Make ``width`` active on every layer and entropy model (no reload, no allocation)."""
        index = self.width_index(width)
        for m in self._switchables:
            m._set_index(index)

    def latent_shape(self, feature_shape: tuple[int, ...]) -> tuple[int, int, int]:
        """(C, H, W) of the latent at the active width for features of shape (C, H, W)."""
        if len(feature_shape) != 3 or feature_shape[0] != self.config.in_channels:
            raise ShapeError(f"features must be ({self.config.in_channels}, H, W), got {tuple(feature_shape)}")
        h, w = feature_shape[1], feature_shape[2]
        for _ in range(self.config.downsample):
            h, w = (h + 1) // 2, (w + 1) // 2
        return (self.latent_per_width[self.entropy.active], h, w)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
        """(C, H, W) of the decoder's output (what the tail takes) for an input of shape (C, H, W):
        the input's size over the stride left after the decoder's upsampling, rounded up."""
        self.latent_shape(input_shape)  # checks the shape
        stride = 2 ** (self.config.downsample - self.config.upsample)
        return (self.config.out_channels, -(-int(input_shape[1]) // stride), -(-int(input_shape[2]) // stride))

    # --------------------------------------------------------------- training
    def forward(self, x: torch.Tensor, decoder_input: str = "noise") -> dict:
        """Features in, ``{"x_hat": features, "likelihoods": {...}}`` out.

        In training mode the rate always uses additive uniform noise. The decoder
        sees the noisy latent (``decoder_input="noise"``, CompressAI's default, smooth
        early on) or the rounded one with a straight-through gradient (``"ste"``, what
        it gets at run time). In eval mode both see the rounded latent.
        """
        if decoder_input not in ("noise", "ste"):
            raise ValueError(f"decoder_input must be 'noise' or 'ste', got {decoder_input!r}")
        self._check_features(x)
        ste = self.training and decoder_input == "ste"
        y = self.g_a(x)
        eb: EntropyBottleneck = self.entropy.current
        if self.config.prior == "factorized":
            y_noisy, y_lik = eb(y)
            y_hat = _round_ste(y, eb.quantiles[:, 0, 1].detach().view(1, -1, 1, 1)) if ste else y_noisy
            return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": y_lik}}
        z = self.h_a(torch.abs(y))
        z_noisy, z_lik = eb(z)
        z_hat = _round_ste(z, eb.quantiles[:, 0, 1].detach().view(1, -1, 1, 1)) if ste else z_noisy
        y_noisy, y_lik = self.gaussian(y, self.h_s(z_hat))
        y_hat = _round_ste(y) if ste else y_noisy
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": y_lik, "z": z_lik}}

    # ------------------------------------------------------------ real coding
    def update(self, scale_table: torch.Tensor | None = None, force: bool = False,
               update_quantiles: bool = False) -> bool:
        """Build the CDF tables of every width's entropy models (after training)."""
        if self.config.prior == "hyperprior" and scale_table is None:
            scale_table = get_scale_table()
        updated = super().update(scale_table=scale_table, force=force, update_quantiles=update_quantiles)
        self._cache = _Cache()
        return updated

    def load_state_dict(self, state_dict: dict, strict: bool = True) -> object:
        result = super().load_state_dict(state_dict, strict=strict)
        self._cache = _Cache()
        return result

    def _tables(self, model: EntropyBottleneck | GaussianConditional) -> _Tables:
        key = id(model)
        if key not in self._cache.tables:
            self._cache.tables[key] = _Tables.of(model)
        return self._cache.tables[key]

    def _channel_indexes(self, shape: tuple[int, ...]) -> list[int]:
        if shape not in self._cache.indexes:
            c, h, w = shape
            self._cache.indexes[shape] = torch.arange(c).repeat_interleave(h * w).tolist()
        return self._cache.indexes[shape]

    def _check_features(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ShapeError(f"bottleneck expects input [N, {self.config.in_channels}, H, W], "
                             f"got {tuple(x.shape)}")

    def _encode_factorized(self, eb: EntropyBottleneck, y: torch.Tensor) -> list[bytes]:
        tables = self._tables(eb)
        medians = eb.quantiles[:, 0, 1].detach().view(1, -1, 1, 1)
        symbols = torch.round(y - medians).int()
        indexes = self._channel_indexes(tuple(y.shape[1:]))
        return [RansEncoder().encode_with_indexes(s.reshape(-1).tolist(), indexes, tables.cdf,
                                                  tables.cdf_length, tables.offset) for s in symbols]

    def _decode_factorized(self, eb: EntropyBottleneck, strings: list[bytes],
                           shape: tuple[int, int, int]) -> torch.Tensor:
        tables = self._tables(eb)
        indexes = self._channel_indexes(shape)
        values = [RansDecoder().decode_with_indexes(_safe_stream(s, len(indexes)), indexes, tables.cdf,
                                                    tables.cdf_length, tables.offset) for s in strings]
        medians = eb.quantiles[:, 0, 1].detach().view(1, -1, 1, 1)
        return torch.tensor(values, dtype=torch.float32).view(len(strings), *shape) + medians

    @torch.no_grad()
    def compress(self, x: torch.Tensor) -> dict:
        """Features ``[N, C, H, W]`` to ``{"strings": [y_strings(, z_strings)], "shape": latent (C, H, W)}``."""
        self._check_features(x)
        y = self.g_a(x)
        eb: EntropyBottleneck = self.entropy.current
        if self.config.prior == "factorized":
            return {"strings": [self._encode_factorized(eb, y)], "shape": tuple(y.shape[1:])}
        z = self.h_a(torch.abs(y))
        z_strings = self._encode_factorized(eb, z)
        z_hat = self._decode_factorized(eb, z_strings, tuple(z.shape[1:]))
        indexes = self.gaussian.build_indexes(self.h_s(z_hat))
        tables = self._tables(self.gaussian)
        symbols = torch.round(y).int()
        y_strings = [RansEncoder().encode_with_indexes(s.reshape(-1).tolist(), i.reshape(-1).tolist(),
                                                       tables.cdf, tables.cdf_length, tables.offset)
                     for s, i in zip(symbols, indexes)]
        return {"strings": [y_strings, z_strings], "shape": tuple(y.shape[1:])}

    @torch.no_grad()
    def decompress(self, strings: list[list[bytes]], shape: tuple[int, int, int]) -> dict:
        """Inverse of :meth:`compress` at the active width: ``{"x_hat": features}``."""
        shape = tuple(int(s) for s in shape)
        expected_c = self.latent_per_width[self.entropy.active]
        if len(shape) != 3 or shape[0] != expected_c or min(shape) < 1:
            raise ShapeError(f"latent shape must be ({expected_c}, H, W) at width {self.width}, got {shape}")
        eb: EntropyBottleneck = self.entropy.current
        try:
            if self.config.prior == "factorized":
                y_hat = self._decode_factorized(eb, strings[0], shape)
            else:
                z_shape = (self.h_a[-1].out_per_width[self.entropy.active], shape[1], shape[2])
                z_hat = self._decode_factorized(eb, strings[1], z_shape)
                indexes = self.gaussian.build_indexes(self.h_s(z_hat))
                tables = self._tables(self.gaussian)
                n = shape[0] * shape[1] * shape[2]
                values = [RansDecoder().decode_with_indexes(_safe_stream(s, n), i.reshape(-1).tolist(),
                                                            tables.cdf, tables.cdf_length, tables.offset)
                          for s, i in zip(strings[0], indexes)]
                y_hat = torch.tensor(values, dtype=torch.float32).view(len(strings[0]), *shape)
        except (ValueError, RuntimeError, TypeError) as exc:
            raise DecodeError(f"cannot decode latent: {exc}") from exc
        if not torch.isfinite(y_hat).all() or y_hat.abs().max() > 1e6:
            raise DecodeError("decoded latent is out of range: corrupted stream")
        return {"x_hat": self.g_s(y_hat)}

    def extra_repr(self) -> str:
        c = self.config
        return (f"encoder={c.encoder}, in={c.in_channels}, out={c.out_channels}, latent={c.latent_channels}, "
                f"hidden={c.hidden_channels}, downsample={c.downsample}, upsample={c.upsample}, prior={c.prior}, "
                f"widths={list(c.widths)}")
