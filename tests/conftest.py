"""Shared fixtures: a small untrained split checkpoint built in-process (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from splitnet.bottleneck import BottleneckConfig, SlimmableBottleneck
from splitnet.checkpoint import SplitCheckpoint, SplitPoint
from splitnet.models import create_model

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CIFAR_VAL = SHARED / "data" / "cifar10" / "val.npz"
CIFAR_TRAIN = SHARED / "data" / "cifar10" / "train.npz"
WEIGHTS = SHARED / "weights"


def needs_shared(path: Path) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not path.exists(), reason=f"{path} not present (shared data is optional)")


def make_bottleneck(in_channels: int, prior: str = "factorized", seed: int = 0, downsample: int = 1,
                    latent: int = 8, **config: object) -> SlimmableBottleneck:
    """An untrained, updated bottleneck; ``config`` adds BottleneckConfig fields (e.g. a light encoder)."""
    torch.manual_seed(seed)
    b = SlimmableBottleneck(BottleneckConfig(in_channels=in_channels, latent_channels=latent, hidden_channels=16,
                                             downsample=downsample, prior=prior, **config))
    # Give BatchNorm non-trivial statistics so the decoder is not an identity of zeros.
    b.train()
    with torch.no_grad():
        for w in b.widths:
            b.set_width(w)
            b(torch.relu(torch.randn(8, in_channels, 16, 16)))
    b.eval()
    b.update(force=True)
    return b


def make_light_bottleneck(out_channels: int, seed: int = 0, downsample: int = 2, upsample: int = 2,
                          prior: str = "factorized") -> SlimmableBottleneck:
    """An untrained light encoder on the image whose decoder outputs ``out_channels`` features."""
    return make_bottleneck(3, prior, seed, downsample, encoder="light", out_channels=out_channels,
                           upsample=upsample, decoder_channels=16)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> SplitCheckpoint:
    """resnet20_cifar with random weights, a light encoder whose decoder rebuilds layer1's features
    and a hyperprior bottleneck on layer2's features with a tail of its own, saved to disk."""
    torch.manual_seed(0)
    teacher = create_model("resnet20_cifar")
    ckpt = SplitCheckpoint("resnet20_cifar", teacher)
    ckpt.splits["layer1"] = SplitPoint("layer1", make_light_bottleneck(16, seed=1))
    ckpt.splits["layer2"] = SplitPoint("layer2", make_bottleneck(32, "hyperprior", 2),
                                       tail_state={k: v.clone() for k, v in
                                                   ckpt.teacher_split("layer2")[1].state_dict().items()})
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    ckpt.save(path)
    return SplitCheckpoint.load(path)


@pytest.fixture(scope="session")
def frames() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8)
