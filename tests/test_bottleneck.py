from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from splitnet.bottleneck import BottleneckConfig, SlimmableBottleneck
from splitnet.codecs import BottleneckCodec
from splitnet.errors import DecodeError, ShapeError, SplitnetError, UnknownWidthError
from tests.conftest import make_bottleneck


@pytest.fixture(params=["factorized", "hyperprior"])
def bottleneck(request: pytest.FixtureRequest) -> SlimmableBottleneck:
    return make_bottleneck(16, request.param)


def test_forward_contract(bottleneck: SlimmableBottleneck) -> None:
    x = torch.relu(torch.randn(3, 16, 16, 16))
    bottleneck.train()
    out = bottleneck(x)
    bottleneck.eval()
    assert set(out) == {"x_hat", "likelihoods"}
    assert out["x_hat"].shape == x.shape
    expected = {"y"} if bottleneck.config.prior == "factorized" else {"y", "z"}
    assert set(out["likelihoods"]) == expected
    assert all(((lik > 0) & (lik <= 1)).all() for lik in out["likelihoods"].values())


def test_decompress_of_compress_equals_forward_in_eval(bottleneck: SlimmableBottleneck) -> None:
    x = torch.relu(torch.randn(4, 16, 16, 16))
    for w in bottleneck.widths:
        bottleneck.set_width(w)
        with torch.no_grad():
            reference = bottleneck(x)["x_hat"]
        coded = bottleneck.compress(x)
        assert all(isinstance(s, bytes) for group in coded["strings"] for s in group)
        restored = bottleneck.decompress(coded["strings"], coded["shape"])["x_hat"]
        assert torch.allclose(restored, reference, atol=1e-5)


def test_latent_round_trip_is_exact_rounding() -> None:
    """The CompressAI contract: decompress(compress(y)) == round(y) around the medians."""
    b = make_bottleneck(16, "factorized")
    eb = b.entropy.current
    y = torch.randn(2, b.latent_per_width[-1], 4, 4) * 3
    strings = b._encode_factorized(eb, y)
    y_hat = b._decode_factorized(eb, strings, tuple(y.shape[1:]))
    medians = eb.quantiles[:, 0, 1].detach().view(1, -1, 1, 1)
    assert torch.equal(y_hat, torch.round(y - medians) + medians)


def test_widths_change_latent_channels_and_bytes() -> None:
    b = make_bottleneck(16, "factorized", latent=16)
    x = torch.relu(torch.randn(8, 16, 16, 16))
    channels, sizes = [], []
    for w in b.widths:
        b.set_width(w)
        coded = b.compress(x)
        channels.append(coded["shape"][0])
        sizes.append(sum(len(s) for s in coded["strings"][0]))
    assert channels == [4, 8, 12, 16]
    assert sizes == sorted(sizes)


def test_set_width_reloads_and_allocates_nothing(bottleneck: SlimmableBottleneck) -> None:
    before = {n: p.data_ptr() for n, p in bottleneck.named_parameters()}
    modules = list(bottleneck.modules())
    for w in (0.25, 1.0, 0.5, 0.75):
        bottleneck.set_width(w)
        assert bottleneck.width == w
    assert {n: p.data_ptr() for n, p in bottleneck.named_parameters()} == before
    assert list(bottleneck.modules()) == modules


def test_unknown_width_and_wrong_shapes(bottleneck: SlimmableBottleneck) -> None:
    with pytest.raises(UnknownWidthError, match="width 0.3 not available"):
        bottleneck.set_width(0.3)
    with pytest.raises(ShapeError):
        bottleneck.compress(torch.randn(1, 15, 16, 16))
    bottleneck.set_width(1.0)
    with pytest.raises(ShapeError):
        bottleneck.decompress([[b"\x00" * 8]] * 2, (3, 4, 4))


def test_compress_before_update_is_a_clear_error() -> None:
    b = SlimmableBottleneck(BottleneckConfig(in_channels=16, latent_channels=8, hidden_channels=8)).eval()
    with pytest.raises(SplitnetError, match="call update"):
        b.compress(torch.randn(1, 16, 8, 8))


def test_invalid_config() -> None:
    with pytest.raises(SplitnetError):
        BottleneckConfig(in_channels=16, widths=(0.5, 1.5))
    with pytest.raises(SplitnetError):
        BottleneckConfig(in_channels=16, prior="laplace")


@pytest.mark.parametrize("prior", ["factorized", "hyperprior"])
def test_corrupted_streams_raise_or_decode_bounded(prior: str) -> None:
    b = make_bottleneck(16, prior)
    codec = BottleneckCodec(b)
    x = torch.relu(torch.randn(1, 16, 16, 16))
    data = codec.encode(x[0])
    for bad in (b"", data[:1], data[: len(data) // 2], bytes(reversed(data)), b"\xff" * 200, b"\x80" * 7):
        try:
            out = codec.decode(bad, (16, 16, 16))
        except DecodeError:
            continue
        assert out.shape == (16, 16, 16) and torch.isfinite(out).all()



@pytest.mark.parametrize("prior", ["factorized", "hyperprior"])
def test_bytes_are_compressais_public_compress_and_decompress(prior: str) -> None:
    """The cached-table rANS calls (splitnet.bottleneck's docstring says why) code exactly what
    EntropyBottleneck / GaussianConditional.compress code, and decode what their decompress decodes."""
    b = make_bottleneck(16, prior)
    torch.manual_seed(7)
    x = torch.relu(torch.randn(3, 16, 16, 16))
    for w in b.widths:
        b.set_width(w)
        ours = b.compress(x)
        with torch.no_grad():
            y = b.g_a(x)
            eb = b.entropy.current
            if prior == "factorized":
                assert ours["strings"] == [eb.compress(y)]
                y_hat = eb.decompress(ours["strings"][0], y.shape[2:])
            else:
                z = b.h_a(torch.abs(y))
                z_hat = eb.decompress(eb.compress(z), z.shape[2:])
                indexes = b.gaussian.build_indexes(b.h_s(z_hat))
                assert ours["strings"] == [b.gaussian.compress(y, indexes), eb.compress(z)]
                y_hat = b.gaussian.decompress(ours["strings"][0], indexes)
            assert torch.equal(b.decompress(ours["strings"], ours["shape"])["x_hat"], b.g_s(y_hat))

_CHILD = r"""
import sys, json, torch
sys.path.insert(0, {root!r})
from tests.conftest import make_bottleneck
from splitnet.codecs import BottleneckCodec
b = make_bottleneck(16, {prior!r})
b.set_width(0.5)
codec = BottleneckCodec(b)
if sys.argv[1] == "encode":
    torch.manual_seed(123)
    x = torch.relu(torch.randn(3, 16, 16, 16))
    blobs = codec.encode_batch(x)
    out = codec.decode_batch(blobs, (16, 16, 16))
    print(json.dumps({{"blobs": [b.hex() for b in blobs], "out": out.flatten().tolist()}}))
else:
    blobs = [bytes.fromhex(h) for h in json.loads(sys.stdin.read())["blobs"]]
    print(json.dumps({{"out": codec.decode_batch(blobs, (16, 16, 16)).flatten().tolist()}}))
"""


@pytest.mark.parametrize("prior", ["factorized", "hyperprior"])
def test_bytes_from_one_process_decode_identically_in_another(prior: str) -> None:
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    code = _CHILD.format(root=root, prior=prior)
    enc = subprocess.run([sys.executable, "-c", code, "encode"], capture_output=True, text=True, check=True)
    encoded = json.loads(enc.stdout)
    enc2 = json.loads(subprocess.run([sys.executable, "-c", code, "encode"], capture_output=True, text=True,
                                     check=True).stdout)
    assert enc2["blobs"] == encoded["blobs"]  # same input, same bytes
    dec = subprocess.run([sys.executable, "-c", code, "decode"], input=enc.stdout, capture_output=True,
                         text=True, check=True)
    assert json.loads(dec.stdout)["out"] == encoded["out"]  # bit-identical


def test_oversized_streams_are_refused_before_decoding() -> None:
    b = make_bottleneck(16, "factorized")
    codec = BottleneckCodec(b)
    symbols = b.latent_shape((16, 16, 16))
    n = symbols[0] * symbols[1] * symbols[2]
    with pytest.raises(DecodeError, match="longer than any stream"):
        codec.decode(b"\xff" * (8 * n + 64), (16, 16, 16))


# ------------------------------------------------------------------ light encoders
@pytest.fixture(params=["factorized", "hyperprior"])
def light(request: pytest.FixtureRequest) -> SlimmableBottleneck:
    from tests.conftest import make_light_bottleneck

    return make_light_bottleneck(16, prior=request.param)


def test_light_encoder_takes_the_image_and_rebuilds_features(light: SlimmableBottleneck) -> None:
    """The encoder runs on a [N, 3, H, W] image; the decoder's output has the features' shape."""
    x = torch.randn(3, 3, 32, 32)
    for w in light.widths:
        light.set_width(w)
        coded = light.compress(x)
        assert coded["shape"] == light.latent_shape((3, 32, 32))
        assert coded["shape"][1:] == (8, 8)  # two stride-2 stages
        out = light.decompress(coded["strings"], coded["shape"])["x_hat"]
        assert out.shape == (3, 16, 32, 32) and light.output_shape((3, 32, 32)) == (16, 32, 32)
        with torch.no_grad():
            assert torch.allclose(out, light(x)["x_hat"], atol=1e-4)  # real bytes give what eval-mode forward gives
    with pytest.raises(ShapeError):
        light.compress(torch.randn(1, 16, 32, 32))  # features instead of an image


def test_light_codec_round_trip_on_odd_sizes() -> None:
    """Sizes that do not divide by the encoder's stride: the decoder's output is cropped to the features."""
    from tests.conftest import make_light_bottleneck

    light = make_light_bottleneck(24, downsample=3, upsample=1)  # features at stride 4
    codec = BottleneckCodec(light)
    x = torch.randn(2, 3, 30, 34)
    blobs = codec.encode_batch(x)
    out = codec.decode_batch(blobs, (3, 30, 34))
    assert out.shape == (2, 24, 8, 9)  # ceil(30 / 4), ceil(34 / 4)
    assert light.output_shape((3, 30, 34)) == (24, 8, 9)


def test_slimmable_gdn_at_full_width_is_compressai_gdn() -> None:
    from compressai.layers import GDN

    from splitnet.slimmable import SlimmableGDN

    layer = SlimmableGDN((4, 8))
    with torch.no_grad():
        layer.gdn.gamma.add_(0.05 * torch.rand_like(layer.gdn.gamma))
    ref = GDN(8)
    ref.load_state_dict(layer.gdn.state_dict())
    x = torch.randn(2, 8, 5, 5)
    assert torch.allclose(layer(x), ref(x), atol=1e-6)
    layer.active = 0  # the narrow width uses the first 4 channels' parameters
    narrow = GDN(4)
    narrow.beta.data.copy_(layer.gdn.beta.data[:4])
    narrow.gamma.data.copy_(layer.gdn.gamma.data[:4, :4])
    assert torch.allclose(layer(x[:, :4]), narrow(x[:, :4]), atol=1e-6)
    with pytest.raises(ShapeError):
        layer(x)


def test_slimmable_gdn_keeps_inference_parameters_only_until_they_change() -> None:
    from compressai.layers import GDN

    from splitnet.slimmable import SlimmableGDN

    layer = SlimmableGDN((4, 8))
    x = torch.randn(2, 8, 5, 5)

    def reference() -> torch.Tensor:
        ref = GDN(8)
        ref.load_state_dict(layer.gdn.state_dict())
        return ref(x)

    with torch.no_grad():
        first = layer(x)  # computed and kept
        assert torch.equal(layer(x), first)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.5)
    (layer(x) ** 2).mean().backward()  # with autograd: gradients reach beta and gamma
    assert layer.gdn.beta.grad is not None and layer.gdn.gamma.grad is not None
    optimizer.step()  # an in-place update
    with torch.no_grad():
        stepped = layer(x)
        assert not torch.allclose(stepped, first) and torch.allclose(stepped, reference(), atol=1e-6)
    other = SlimmableGDN((4, 8))
    with torch.no_grad():
        other.gdn.gamma.add_(0.3 * torch.rand_like(other.gdn.gamma))
        layer.load_state_dict(other.state_dict())  # copies in place
        assert torch.allclose(layer(x), reference(), atol=1e-6) and not torch.allclose(layer(x), stepped)


@pytest.mark.parametrize("change", [dict(encoder="tiny"), dict(encoder="light", downsample=0), dict(upsample=0),
                                    dict(downsample=1, upsample=2), dict(out_channels=-1),
                                    dict(encoder="light", decoder_depth=0), dict(encoder_depth=1),
                                    dict(encoder="light", downsample=1, encoder_depth=-1)])
def test_light_config_errors(change: dict) -> None:
    with pytest.raises(SplitnetError):
        BottleneckConfig(**{"in_channels": 3, **change})


def test_old_checkpoint_configs_still_load() -> None:
    """Configs saved before light encoders existed have no encoder fields: they mean a features encoder."""
    old = {"in_channels": 16, "latent_channels": 8, "hidden_channels": 16, "downsample": 1,
           "widths": [0.25, 0.5, 0.75, 1.0], "prior": "factorized", "hyper_channels": 32, "out_relu": True}
    config = BottleneckConfig.from_dict(old)
    assert config.encoder == "features" and not config.is_light
    assert config.out_channels == 16 and config.upsample == 1


def test_a_deeper_light_decoder_rebuilds_the_same_shape_and_old_configs_keep_one_layer() -> None:
    """``decoder_depth`` adds 3x3 layers at the output resolution (server side only: the device's encoder and
    the coded bytes do not change); a config saved before the option had one such layer."""
    common = dict(in_channels=3, out_channels=32, encoder="light", latent_channels=8, hidden_channels=8,
                  downsample=2, upsample=1, decoder_channels=16)
    shallow = SlimmableBottleneck(BottleneckConfig(**common))
    deep = SlimmableBottleneck(BottleneckConfig(**common, decoder_depth=3))
    convs = [sum(isinstance(m, torch.nn.Conv2d) for m in b.g_s.modules()) for b in (shallow, deep)]
    assert convs[1] == convs[0] + 2
    assert sum(p.numel() for p in deep.g_a.parameters()) == sum(p.numel() for p in shallow.g_a.parameters())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert deep(x)["x_hat"].shape[1:] == shallow(x)["x_hat"].shape[1:] == (32, 16, 16)
    old = BottleneckConfig(**common).to_dict()
    del old["decoder_depth"]
    assert BottleneckConfig.from_dict(old).decoder_depth == 1
    assert BottleneckConfig.from_dict(deep.config.to_dict()).decoder_depth == 3


def test_a_deeper_light_encoder_adds_device_layers_at_the_latents_resolution() -> None:
    """``encoder_depth`` adds 3x3 convolutions with GDN on the device where the image is smallest: the latent's
    shape and the decoder stay, the device's MACs grow by those layers' (counted by FLOP hooks), slimmed with the
    width; a config saved before the option has none."""
    from splitnet.compute import count_macs

    common = dict(in_channels=3, out_channels=32, encoder="light", latent_channels=8, hidden_channels=16,
                  downsample=2, upsample=1, decoder_channels=16)
    plain = SlimmableBottleneck(BottleneckConfig(**common))
    deep = SlimmableBottleneck(BottleneckConfig(**common, encoder_depth=2))
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert deep.g_a(x).shape == plain.g_a(x).shape == (1, 8, 8, 8)
        assert deep(x)["x_hat"].shape == plain(x)["x_hat"].shape
        for w, hidden in zip((0.25, 1.0), (4, 16)):
            plain.set_width(w)
            deep.set_width(w)
            added = count_macs(deep.g_a, x) - count_macs(plain.g_a, x)
            assert added >= 2 * hidden * hidden * 9 * 8 * 8  # two 3x3 hidden->hidden convolutions at 8x8 (+ GDN)
    assert sum(p.numel() for p in deep.g_s.parameters()) == sum(p.numel() for p in plain.g_s.parameters())
    old = BottleneckConfig(**common).to_dict()
    del old["encoder_depth"]
    assert BottleneckConfig.from_dict(old).encoder_depth == 0
    assert BottleneckConfig.from_dict(deep.config.to_dict()).encoder_depth == 2
