"""Training and evaluating the small detector on a synthetic detection set (resumable, seeded)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from splitnet.data import ImageSet, load_npz
from splitnet.detection.synth import DetectionSet, make_detection_set
from splitnet.models.registry import IMAGENET_MEAN, IMAGENET_STD
from splitnet.models.tiny_detector import TinyDetector, decode, detection_loss, encode_targets
from splitnet.training.common import load_run_state, save_atomic, seed_everything


def to_input(images: np.ndarray) -> torch.Tensor:
    """uint8 ``[N, H, W, 3]`` to the normalized float ``[N, 3, H, W]`` the detector takes."""
    x = torch.as_tensor(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


@dataclass
class DetectorConfig:
    source: str = "../shared/data/cifar10/train.npz"  # object images (training split only)
    n_images: int = 12000
    size: int = 128
    epochs: int = 24
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    width: int = 32
    seed: int = 0


def mean_average_precision(model: torch.nn.Module | None, data: DetectionSet, batch_size: int = 100,
                           outputs: list[torch.Tensor] | None = None, num_classes: int | None = None
                           ) -> dict[str, float]:
    """mAP@0.5 and mAP@[.5:.95] (torchmetrics, COCO definition) of the detector's output maps.

    Either ``model`` runs on the images, or ``outputs`` holds its output for each batch of
    ``batch_size`` images (e.g. after a bottleneck).
    """
    from torchmetrics.detection import MeanAveragePrecision

    if model is None and outputs is None:
        raise ValueError("give a model or its outputs")
    metric = MeanAveragePrecision(iou_type="bbox")
    if model is not None:
        model.eval()
        num_classes = num_classes or getattr(model, "num_classes", None)
    with torch.no_grad():
        for k, start in enumerate(range(0, len(data), batch_size)):
            out = outputs[k] if outputs is not None else model(to_input(data.images[start : start + batch_size]))
            preds = decode(out, num_classes or out.shape[1] - 4)
            gts = []
            for i in range(start, min(start + batch_size, len(data))):
                b, lb = data.targets(i)
                gts.append({"boxes": torch.as_tensor(b), "labels": torch.as_tensor(lb)})
            metric.update(preds, gts)
    r = metric.compute()
    return {"map_50": float(r["map_50"]), "map": float(r["map"])}


def flip_boxes(x: torch.Tensor, boxes: list[torch.Tensor], flip: torch.Tensor, size: int) -> list[torch.Tensor]:
    """Flip images ``x[flip]`` left-right in place and their boxes with them (``size``: width, pixels)."""
    x[flip] = x[flip].flip(3)
    out = []
    for b, f in zip(boxes, flip.tolist()):
        if f and len(b):
            b = torch.stack([size - b[:, 2], b[:, 1], size - b[:, 0], b[:, 3]], 1)
        out.append(b)
    return out


def train_detector(cfg: DetectorConfig, out: str | Path, command: str = "") -> dict:
    """Generate the training set from ``cfg.source``, train, save ``{"state_dict", "config", ...}``."""
    out = Path(out)
    last = out.parent / f"{out.stem}.work" / "last.pt"
    gen = seed_everything(cfg.seed)
    data = make_detection_set(load_npz(cfg.source), cfg.n_images, size=cfg.size, seed=cfg.seed)
    model = TinyDetector(width=cfg.width)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start, history = 0, []
    state = load_run_state(last, asdict(cfg))
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        start, history = int(state["epoch"]), list(state["history"])
    steps = math.ceil(len(data) / cfg.batch_size)
    for epoch in range(start, cfg.epochs):
        model.train()
        order = torch.randperm(len(data), generator=gen)
        bar = tqdm(range(steps), desc=f"detector epoch {epoch + 1}/{cfg.epochs}", leave=False)
        total = 0.0
        for i in bar:
            idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size].tolist()
            for g in opt.param_groups:
                g["lr"] = 0.5 * cfg.lr * (1 + math.cos(math.pi * (epoch * steps + i) / (cfg.epochs * steps)))
            x = to_input(data.images[idx])
            boxes = [torch.as_tensor(data.targets(j)[0]) for j in idx]
            labels = [torch.as_tensor(data.targets(j)[1]) for j in idx]
            boxes = flip_boxes(x, boxes, torch.rand(len(idx), generator=gen) < 0.5, cfg.size)
            pred = model(x)
            loss = detection_loss(pred, encode_targets(boxes, labels, model.num_classes, pred.shape[2:]),
                                  model.num_classes)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item()
            bar.set_postfix(loss=f"{total / (i + 1):.3f}")
        history.append({"epoch": epoch + 1, "loss": total / steps})
        tqdm.write(f"detector epoch {epoch + 1}/{cfg.epochs}: loss {total / steps:.4f}")
        save_atomic({"model": model.state_dict(), "optimizer": opt.state_dict(), "generator": gen.get_state(),
                     "epoch": epoch + 1, "history": history, "config": asdict(cfg)}, last)
    model.eval()
    summary = {"model_name": "tinydet_synth", "config": asdict(cfg), "history": history, "command": command}
    save_atomic({**summary, "state_dict": model.state_dict()}, out)
    return summary


def make_validation_set(n_images: int = 1000, source: str | Path = "../shared/data/cifar10/val.npz",
                        seed: int = 1) -> DetectionSet:
    """The validation detection set: objects from the validation images only."""
    src: ImageSet = load_npz(source)
    return make_detection_set(src, n_images, seed=seed)
