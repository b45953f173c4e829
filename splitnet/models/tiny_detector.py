"""A small anchor-free detector (CenterNet-style) that trains on a CPU.

Backbone: a 3x3 stem and three stages of basic residual blocks (total stride 8); head:
one 3x3 conv, then per class a centre heatmap (logits), and per location the box size
and the sub-cell offset of the centre, both in feature cells. ``forward`` returns one
tensor ``[N, C + 4, H / 8, W / 8]`` so the network splits at any node like a classifier.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

STRIDE = 8


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class TinyDetector(nn.Module):
    """Centre heatmaps + box size + offset at stride 8."""

    def __init__(self, num_classes: int = 10, width: int = 32) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.stem = nn.Sequential(nn.Conv2d(3, width // 2, 3, 2, 1, bias=False), nn.BatchNorm2d(width // 2),
                                  nn.ReLU(inplace=False))
        self.layer1 = nn.Sequential(Block(width // 2, width, 2), Block(width, width))
        self.layer2 = nn.Sequential(Block(width, 2 * width, 2), Block(2 * width, 2 * width))
        self.layer3 = nn.Sequential(Block(2 * width, 2 * width), Block(2 * width, 2 * width))
        self.neck = nn.Sequential(nn.Conv2d(2 * width, 2 * width, 3, 1, 1), nn.ReLU(inplace=False))
        self.heads = nn.Conv2d(2 * width, num_classes + 4, 1)
        with torch.no_grad():
            self.heads.bias[:num_classes].fill_(-2.19)  # sigmoid = 0.1: the usual CenterNet start

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.heads(self.neck(x))


def _gaussian_radius(size: float, min_overlap: float = 0.7) -> float:
    # Square boxes: the centre may move r cells and keep IoU >= min_overlap (CenterNet's bound, simplified).
    return max(0.0, size * (1 - min_overlap) / 2)


def encode_targets(boxes: list[torch.Tensor], labels: list[torch.Tensor], num_classes: int,
                   out_hw: tuple[int, int]) -> dict[str, torch.Tensor]:
    """Heatmaps with a Gaussian at each centre, and size/offset targets at the centre cells."""
    n, (h, w) = len(boxes), out_hw
    heat = torch.zeros(n, num_classes, h, w)
    reg = torch.zeros(n, 4, h, w)
    mask = torch.zeros(n, 1, h, w)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    for i, (bx, lb) in enumerate(zip(boxes, labels)):
        for box, label in zip(bx, lb):
            x1, y1, x2, y2 = (box / STRIDE).tolist()
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            ix, iy = min(int(cx), w - 1), min(int(cy), h - 1)
            sigma = max(_gaussian_radius(max(x2 - x1, y2 - y1)), 0.5) / 1.5
            g = torch.exp(-((xs - ix) ** 2 + (ys - iy) ** 2) / (2 * sigma**2))
            heat[i, label] = torch.maximum(heat[i, label], g)
            reg[i, :, iy, ix] = torch.tensor([x2 - x1, y2 - y1, cx - ix, cy - iy])
            mask[i, 0, iy, ix] = 1.0
    return {"heat": heat, "reg": reg, "mask": mask}


def detection_loss(out: torch.Tensor, targets: dict[str, torch.Tensor], num_classes: int) -> torch.Tensor:
    """CenterNet's focal loss on the heatmaps plus L1 on size and offset at object centres."""
    logits, reg = out[:, :num_classes], out[:, num_classes:]
    heat = targets["heat"]
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = heat.eq(1).float()
    pos_loss = -(torch.log(p) * (1 - p) ** 2 * pos).sum()
    neg_loss = -(torch.log(1 - p) * p**2 * (1 - heat) ** 4 * (1 - pos)).sum()
    n_pos = pos.sum().clamp(min=1.0)
    mask = targets["mask"]
    reg_loss = (F.l1_loss(reg, targets["reg"], reduction="none") * mask).sum() / n_pos
    return (pos_loss + neg_loss) / n_pos + 0.1 * reg_loss


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, num_classes: int) -> torch.Tensor:
    """How far the student's output maps are from the teacher's, where it matters for detection.

    Heatmaps: KL divergence between the per-cell, per-class Bernoulli distributions (sigmoid
    of the logits), so confident background costs nothing whatever its logit. Box size and
    offset: L1, weighted by the teacher's strongest class probability at each cell. Both
    are normalized by the teacher's expected object count, like :func:`detection_loss`.
    """
    s_logits, t_logits = student[:, :num_classes], teacher[:, :num_classes]
    t_prob = torch.sigmoid(t_logits)
    kl = (F.binary_cross_entropy_with_logits(s_logits, t_prob, reduction="sum")
          - F.binary_cross_entropy_with_logits(t_logits, t_prob, reduction="sum"))
    weight = t_prob.amax(1, keepdim=True)
    reg = (F.l1_loss(student[:, num_classes:], teacher[:, num_classes:], reduction="none") * weight).sum()
    norm = weight.sum().clamp(min=1.0)
    return kl / norm + 0.1 * reg / norm


@torch.no_grad()
def decode(out: torch.Tensor, num_classes: int, top_k: int = 20, score_threshold: float = 0.05
           ) -> list[dict[str, torch.Tensor]]:
    """Boxes (pixels), scores and labels per image: local maxima of the heatmaps."""
    heat = torch.sigmoid(out[:, :num_classes])
    peaks = heat * (F.max_pool2d(heat, 3, 1, 1) == heat)
    n, c, h, w = heat.shape
    scores, idx = peaks.reshape(n, -1).topk(min(top_k, c * h * w))
    results = []
    for i in range(n):
        keep = scores[i] >= score_threshold
        s, k = scores[i][keep], idx[i][keep]
        label, cell = k // (h * w), k % (h * w)
        iy, ix = cell // w, cell % w
        reg = out[i, num_classes:, iy, ix]  # [4, K]
        cx, cy = (ix.float() + reg[2]) * STRIDE, (iy.float() + reg[3]) * STRIDE
        bw, bh = reg[0].clamp(min=0) * STRIDE, reg[1].clamp(min=0) * STRIDE
        boxes = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], dim=1)
        results.append({"boxes": boxes, "scores": s, "labels": label})
    return results
