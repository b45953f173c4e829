"""Training really trains: losses fall, checkpoints resume, outputs load."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from splitnet.checkpoint import SplitCheckpoint
from splitnet.errors import CheckpointError
from splitnet.models import create_model, read_checkpoint
from splitnet.training.bottleneck import BottleneckTrainConfig, train_bottleneck
from splitnet.training.teacher import TeacherConfig, train_teacher


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A learnable 10-class set: each class is a coloured square at its own place, plus noise."""
    rng = np.random.default_rng(0)
    n = 400
    y = rng.integers(0, 10, n)
    x = rng.integers(0, 60, (n, 32, 32, 3)).astype(np.uint8)
    for i, c in enumerate(y):
        r, col = divmod(int(c), 5)
        x[i, 4 + 12 * r : 14 + 12 * r, 2 + 6 * col : 7 + 6 * col, c % 3] = 250
    path = tmp_path_factory.mktemp("data") / "toy.npz"
    np.savez(path, x=x, y=y.astype(np.int64))
    return str(path)


@pytest.mark.slow
def test_teacher_training_learns_and_resumes(toy_data: str, tmp_path) -> None:
    cfg = TeacherConfig(model="resnet20_cifar", data=toy_data, epochs=2, batch_size=32, lr=0.05, holdout=40)
    out = tmp_path / "teacher.pt"
    first = train_teacher(cfg, out)
    assert first["history"][-1]["loss"] < first["history"][0]["loss"]
    assert first["holdout_top1"] > 0.3  # chance is 0.1
    # A second call finds the finished work state and does not train again.
    again = train_teacher(cfg, out)
    assert again["history"] == first["history"]
    # ... nor on another device: where a run computes is not one of its settings
    assert train_teacher(dataclasses.replace(cfg, device="cpu"), out)["history"] == first["history"]
    model = create_model("resnet20_cifar", weights=out)
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    with pytest.raises(CheckpointError, match="other settings"):
        train_teacher(TeacherConfig(**{**cfg.__dict__, "lr": 0.01}), out)


@pytest.fixture(scope="module")
def toy_teacher(toy_data: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    teacher_path = tmp_path_factory.mktemp("teacher") / "teacher.pt"
    train_teacher(TeacherConfig(model="resnet20_cifar", data=toy_data, epochs=2, batch_size=32, lr=0.05,
                                holdout=40), teacher_path)
    return str(teacher_path)


@pytest.mark.slow
def test_bottleneck_training_builds_a_loadable_checkpoint(toy_data: str, toy_teacher: str, tmp_path) -> None:
    teacher_path = toy_teacher
    out = tmp_path / "split.pt"
    cfg = BottleneckTrainConfig(teacher="resnet20_cifar", weights=str(teacher_path), split="layer2", data=toy_data,
                                latent_channels=8, hidden_channels=16, epochs=2, finetune_epochs=1, batch_size=32,
                                holdout=40, lmbda=1e-3)
    result = train_bottleneck(cfg, out, command="test")
    history = read_checkpoint(tmp_path / "split.layer2.work" / "last.pt")["history"]
    assert history[1]["loss"] < history[0]["loss"]  # stage 1 loss falls
    assert history[1]["bits_mean"] < history[0]["bits_mean"]  # and so does the rate
    assert [r["width"] for r in result["holdout"]] == [0.25, 0.5, 0.75, 1.0]
    # A second split goes into the same checkpoint.
    train_bottleneck(BottleneckTrainConfig(**{**cfg.__dict__, "split": "layer1", "finetune_epochs": 0}), out)
    ckpt = SplitCheckpoint.load(out)
    assert set(ckpt.splits) == {"layer1", "layer2"}
    assert ckpt.splits["layer2"].tail_state is not None and ckpt.splits["layer1"].tail_state is None
    assert ckpt.meta["bottlenecks"]["layer2"]["command"] == "test"


@pytest.mark.slow
def test_light_encoder_training_rebuilds_the_teachers_features(toy_data: str, toy_teacher: str, tmp_path) -> None:
    """``encoder="light"``: the encoder takes the image, the decoder learns the teacher's layer1 features
    (stage 1: feature MSE falls), stage 2 fine-tunes with the tail; the checkpoint's split runs no teacher layer
    on the device."""
    out = tmp_path / "light.pt"
    cfg = BottleneckTrainConfig(teacher="resnet20_cifar", weights=toy_teacher, split="layer1", data=toy_data,
                                encoder="light", latent_channels=8, hidden_channels=8, decoder_channels=16,
                                downsample=2, epochs=2, finetune_epochs=1, widths_per_step=1, batch_size=32,
                                holdout=40, lmbda=1e-3)
    result = train_bottleneck(cfg, out, command="test")
    history = read_checkpoint(tmp_path / "light.layer1.work" / "last.pt")["history"]
    assert history[1]["loss"] < history[0]["loss"]
    assert [r["width"] for r in result["holdout"]] == [0.25, 0.5, 0.75, 1.0]
    ckpt = SplitCheckpoint.load(out)
    config = ckpt.splits["layer1"].bottleneck.config
    assert config.is_light and config.in_channels == 3 and config.out_channels == 16 and config.upsample == 2
    assert isinstance(ckpt.encoder_input("layer1"), torch.nn.Identity)
    assert ckpt.splits["layer1"].tail_state is not None
    with pytest.raises(CheckpointError, match="stride"):  # features at stride 4 cannot come from a stride-2 latent
        train_bottleneck(BottleneckTrainConfig(**{**cfg.__dict__, "split": "layer3", "downsample": 1}),
                         tmp_path / "bad.pt")

    # a longer stage 2 starts from the finished run's bottleneck and tail, not from scratch: with a learning
    # rate of ~0 its loss is the finished run's last one (a fresh start's first loss is twice that or more)
    more = dataclasses.replace(cfg, epochs=0, finetune_epochs=1, init_from=str(out), finetune_lr=1e-12)
    train_bottleneck(more, tmp_path / "more.pt", command="test")
    again = read_checkpoint(tmp_path / "more.layer1.work" / "last.pt")["history"]
    assert again[0]["loss"] == pytest.approx(history[-1]["loss"], rel=0.1)
    assert history[0]["loss"] > 1.5 * again[0]["loss"]
    with pytest.raises(CheckpointError, match="another shape"):
        train_bottleneck(dataclasses.replace(more, latent_channels=4), tmp_path / "other.pt")

    # a new, deeper server-side decoder for the finished run's encoder: stage 1 leaves the encoder as it was
    source = SplitCheckpoint.load(out).splits["layer1"].bottleneck
    deeper = dataclasses.replace(cfg, decoder_depth=2, epochs=1, finetune_epochs=0, init_encoder_from=str(out))
    train_bottleneck(deeper, tmp_path / "deeper.pt", command="test")
    trained = SplitCheckpoint.load(tmp_path / "deeper.pt").splits["layer1"].bottleneck
    assert trained.config.decoder_depth == 2 and source.config.decoder_depth == 1
    assert all(torch.equal(a, b) for a, b in zip(trained.g_a.state_dict().values(), source.g_a.state_dict().values()))
    assert len(trained.g_s) > len(source.g_s)
    with pytest.raises(CheckpointError, match="only the decoder may differ"):
        train_bottleneck(dataclasses.replace(deeper, hidden_channels=4), tmp_path / "wider.pt")
    with pytest.raises(CheckpointError, match="not both"):
        train_bottleneck(dataclasses.replace(deeper, init_from=str(out)), tmp_path / "both.pt")

    # the layer1 encoder starts a run whose decoder rebuilds layer2 (other channels, other upsampling)
    to_layer2 = dataclasses.replace(deeper, split="layer2", init_encoder_split="layer1")
    train_bottleneck(to_layer2, tmp_path / "layer2.pt", command="test")
    rebuilt = SplitCheckpoint.load(tmp_path / "layer2.pt").splits["layer2"].bottleneck
    assert (rebuilt.config.out_channels, rebuilt.config.upsample) == (32, 1)
    assert (source.config.out_channels, source.config.upsample) == (16, 2)
    assert all(torch.equal(a, b) for a, b in zip(rebuilt.g_a.state_dict().values(), source.g_a.state_dict().values()))
    with pytest.raises(CheckpointError, match="no resnet20_cifar split at 'layer3'"):
        train_bottleneck(dataclasses.replace(to_layer2, init_encoder_split="layer3"), tmp_path / "none.pt")
    with pytest.raises(CheckpointError, match="give init_encoder_from too"):
        train_bottleneck(dataclasses.replace(to_layer2, init_encoder_from=""), tmp_path / "alone.pt")


def test_the_training_device_is_chosen_and_checked() -> None:
    """``auto`` takes a CUDA GPU when torch sees one, else the CPU; a GPU the machine lacks and an unknown name
    are refused naming them; batches (also nested targets) go where the models are."""
    from splitnet.errors import SplitnetError
    from splitnet.training.bottleneck import _config_dict
    from splitnet.training.common import to_device, training_device
    from splitnet.training.teacher import _settings

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    assert training_device("auto").type == ("cuda" if gpus else "cpu")
    assert training_device("cpu") == torch.device("cpu")
    with pytest.raises(SplitnetError, match=f"'cuda:{gpus}' asked for"):
        training_device(f"cuda:{gpus}")
    for name in ("tpu", "gpu0", ""):
        with pytest.raises(SplitnetError, match="unknown training device"):
            training_device(name)
    batch = (torch.zeros(2, 3), {"heat": torch.ones(2), "boxes": [torch.zeros(1)]}, None)
    moved = to_device(batch, torch.device("cpu"))
    assert isinstance(moved, tuple) and moved[2] is None and torch.equal(moved[1]["boxes"][0], torch.zeros(1))
    # the device is not a setting of the run: a run started on one device resumes on another
    cfg = BottleneckTrainConfig(teacher="resnet20_cifar", weights="w.pt", split="layer1", device="cpu")
    assert "device" not in _config_dict(cfg)
    assert _config_dict(cfg) == _config_dict(dataclasses.replace(cfg, device="auto"))
    assert _settings(TeacherConfig(device="cpu")) == _settings(TeacherConfig()) and "device" not in _settings(
        TeacherConfig())
