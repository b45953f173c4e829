"""Training (or fine-tuning) a classifier teacher on an npz data set, resumable."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from splitnet.data import augment, load_npz, to_tensor
from splitnet.models import create_model, model_spec
from splitnet.training.common import (
    load_run_state,
    save_atomic,
    seed_everything,
    split_holdout,
    top1_accuracy,
    training_device,
)


@dataclass
class TeacherConfig:
    """Hyper-parameters of a teacher run; stored in every checkpoint it writes."""

    model: str = "resnet56_cifar"
    data: str = "../shared/data/cifar10/train.npz"
    init_weights: str | None = None  # fine-tune from these weights; None trains from scratch
    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    warmup_epochs: float = 0.0
    holdout: int = 1000  # training images kept aside to monitor progress (never the validation split)
    seed: int = 0
    limit: int | None = None  # use only the first N training images (smoke tests)
    device: str = "auto"  # "auto" (a CUDA GPU when there is one), "cpu", "cuda", "cuda:N"; not a resume setting


def _settings(cfg: TeacherConfig) -> dict:
    """What a run is (stored, compared on resume): every field but where it computes."""
    settings = asdict(cfg)
    del settings["device"]
    return settings


def _lr_at(cfg: TeacherConfig, step: int, steps_per_epoch: int) -> float:
    total = cfg.epochs * steps_per_epoch
    warm = int(cfg.warmup_epochs * steps_per_epoch)
    if step < warm:
        return cfg.lr * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return 0.5 * cfg.lr * (1 + math.cos(math.pi * progress))


def train_teacher(cfg: TeacherConfig, out: str | Path, work_dir: str | Path | None = None,
                  command: str = "") -> dict:
    """Train a teacher; resumes from ``work_dir/last.pt`` if present. Returns a summary dict.

    Writes ``out`` as ``{"model_name", "state_dict", "config", "holdout_top1"}``.
    """
    out = Path(out)
    work = Path(work_dir) if work_dir else out.parent / (out.stem + ".work")
    last = work / "last.pt"
    spec = model_spec(cfg.model)
    device = training_device(cfg.device)
    gen = seed_everything(cfg.seed)
    data = load_npz(cfg.data, limit=cfg.limit)
    train, held = split_holdout(data, min(cfg.holdout, len(data) // 10), cfg.seed)
    model = create_model(cfg.model, weights=cfg.init_weights).train().to(device)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay, nesterov=True)
    start_epoch, history = 0, []
    state = load_run_state(last, _settings(cfg))
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        start_epoch, history = int(state["epoch"]), list(state["history"])
    images = to_tensor(train.images, spec)
    labels = torch.as_tensor(train.labels)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        order = torch.randperm(len(train), generator=gen)
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False)
        total_loss = 0.0
        for i in bar:
            idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            for group in opt.param_groups:
                group["lr"] = _lr_at(cfg, epoch * steps_per_epoch + i, steps_per_epoch)
            x = augment(images[idx], gen).to(device, non_blocking=True)
            loss = F.cross_entropy(model(x), labels[idx].to(device, non_blocking=True),
                                   label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total_loss += loss.item()
            bar.set_postfix(loss=f"{total_loss / (i + 1):.3f}")
        acc = top1_accuracy(model, held, spec)
        history.append({"epoch": epoch + 1, "loss": total_loss / steps_per_epoch, "holdout_top1": acc})
        tqdm.write(f"epoch {epoch + 1}/{cfg.epochs}: loss {total_loss / steps_per_epoch:.4f}, holdout top-1 {acc:.4f}")
        save_atomic({"model": model.state_dict(), "optimizer": opt.state_dict(), "generator": gen.get_state(),
                     "epoch": epoch + 1, "history": history, "config": _settings(cfg)}, last)
    model.eval().cpu()
    summary = {"model_name": cfg.model, "config": _settings(cfg), "history": history, "command": command,
               "holdout_top1": history[-1]["holdout_top1"] if history else float("nan")}
    save_atomic({**summary, "state_dict": model.state_dict()}, out)
    return summary
