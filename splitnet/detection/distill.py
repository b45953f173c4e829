"""Distilling a bottleneck into a detector: the detection task of the bottleneck trainer.

Training scenes are generated from the object images in ``cfg.data`` (the training
split) with a seed different from the detector's own, the first ``cfg.holdout``
scenes held out for the per-epoch evaluation. Stage 2 fits the student's output maps
to the teacher's (``tiny_detector.distillation_loss``: KL on the heatmaps, weighted L1 on the
boxes) plus ``ce_weight`` times the detection loss on the true boxes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from splitnet.bottleneck import SlimmableBottleneck
from splitnet.codecs import BottleneckCodec
from splitnet.data import load_npz
from splitnet.detection.synth import DetectionSet, make_detection_set
from splitnet.detection.train import flip_boxes, mean_average_precision, to_input
from splitnet.models.registry import ModelSpec
from splitnet.models.tiny_detector import STRIDE, detection_loss, distillation_loss, encode_targets

SCENE_SEED_OFFSET = 1000  # bottleneck scenes differ from the detector's training scenes


class DetectionTask:
    """Batches of synthetic scenes (random flips), output distillation + detection loss, mAP@0.5 per width."""

    score_key = "map_50"
    has_stage2 = True

    def __init__(self, cfg, spec: ModelSpec) -> None:  # cfg: BottleneckTrainConfig
        self.cfg, self.spec = cfg, spec
        size = spec.input_size[0]
        data = make_detection_set(load_npz(cfg.data, limit=cfg.limit), cfg.detection_images, size=size,
                                  seed=cfg.seed + SCENE_SEED_OFFSET)
        n_held = min(cfg.holdout, len(data) // 10)
        self.held: DetectionSet = data.subset(0, n_held)
        self.train: DetectionSet = data.subset(n_held, len(data))
        self.size = len(self.train)
        self.num_classes = spec.num_classes

    def batch(self, idx: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        ids = idx.tolist()
        x = to_input(self.train.images[ids])
        boxes = [torch.as_tensor(self.train.targets(j)[0]) for j in ids]
        labels = [torch.as_tensor(self.train.targets(j)[1]) for j in ids]
        boxes = flip_boxes(x, boxes, torch.rand(len(ids), generator=gen) < 0.5, x.shape[-1])
        h, w = x.shape[-2] // STRIDE, x.shape[-1] // STRIDE
        return x, encode_targets(boxes, labels, self.num_classes, (h, w))

    def loss(self, student: torch.Tensor, teacher: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        return (distillation_loss(student, teacher, self.num_classes)
                + self.cfg.ce_weight * detection_loss(student, targets, self.num_classes))

    @torch.no_grad()
    def evaluate(self, head: nn.Module, bottleneck: SlimmableBottleneck, tail: nn.Module) -> list[dict]:
        return evaluate_detection_bottleneck(head, bottleneck, tail, self.held, self.num_classes)


@torch.no_grad()
def evaluate_detection_bottleneck(head: nn.Module, bottleneck: SlimmableBottleneck, tail: nn.Module,
                                  data: DetectionSet, num_classes: int, batch_size: int = 100) -> list[dict]:
    """mAP@0.5, mAP@[.5:.95] and real coded bytes per image for every width (bottleneck updated)."""
    bottleneck.eval()
    tail.eval()
    starts = range(0, len(data), batch_size)
    feats = [head(to_input(data.images[s : s + batch_size])) for s in starts]
    rows = []
    for w in bottleneck.widths:
        bottleneck.set_width(w)
        codec = BottleneckCodec(bottleneck)
        outputs, sizes = [], []
        for f in feats:
            blobs = codec.encode_batch(f)
            sizes += [len(b) for b in blobs]
            outputs.append(tail(codec.decode_batch(blobs, f.shape[1:])))
        scores = mean_average_precision(None, data, batch_size, outputs=outputs, num_classes=num_classes)
        rows.append({"width": w, **scores, "bytes_mean": float(np.mean(sizes))})
    return rows
