"""Neural filter: a tiny classifier on the head's features that says "no object here".

When it fires the device sends nothing for the frame (the result is "no detections"),
saving the uplink bytes of empty scenes. Trained with binary cross-entropy on whether
a training scene holds any object; its threshold is then set on held-out scenes so
that at most ``max_object_frames_dropped`` of the frames with objects are filtered.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from splitnet.detection.synth import DetectionSet
from splitnet.detection.train import to_input
from splitnet.errors import CheckpointError, ShapeError


@dataclass(frozen=True)
class FilterConfig:
    """Shape and decision threshold of an :class:`ObjectFilter` (stored in the checkpoint)."""

    in_channels: int
    hidden_channels: int = 16
    threshold: float = 0.5  # on the probability that the frame holds an object

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FilterConfig:
        return cls(**d)


class ObjectFilter(nn.Module):
    """1x1 conv, ReLU, global max- and mean-pooling, linear: one logit per frame."""

    def __init__(self, config: FilterConfig) -> None:
        super().__init__()
        self.config = config
        self.reduce = nn.Conv2d(config.in_channels, config.hidden_channels, 1)
        self.classify = nn.Linear(2 * config.hidden_channels, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logits ``[N]`` that each frame holds an object."""
        if features.ndim != 4 or features.shape[1] != self.config.in_channels:
            raise ShapeError(f"filter expects features [N, {self.config.in_channels}, H, W], "
                             f"got {tuple(features.shape)}")
        h = F.relu(self.reduce(features))
        pooled = torch.cat([h.amax((2, 3)), h.mean((2, 3))], 1)
        return self.classify(pooled).squeeze(1)

    @torch.no_grad()
    def keep(self, features: torch.Tensor) -> torch.Tensor:
        """bool ``[N]``: True for frames worth sending (object probability >= threshold)."""
        return torch.sigmoid(self(features)) >= self.config.threshold

    def with_threshold(self, threshold: float) -> ObjectFilter:
        out = ObjectFilter(FilterConfig(self.config.in_channels, self.config.hidden_channels, float(threshold)))
        out.load_state_dict(self.state_dict())
        return out.eval()

    @classmethod
    def from_state(cls, entry: dict) -> ObjectFilter:
        """Rebuild from a checkpoint entry ``{"config", "state_dict"}``."""
        try:
            model = cls(FilterConfig.from_dict(entry["config"]))
            model.load_state_dict(entry["state_dict"])
        except (KeyError, TypeError, RuntimeError) as exc:
            raise CheckpointError(f"bad object filter entry: {exc}") from exc
        return model.eval()

    def to_state(self) -> dict:
        return {"config": self.config.to_dict(), "state_dict": self.state_dict()}


@dataclass(frozen=True)
class FilterReport:
    """How the filter does on a detection set."""

    frames: int
    frames_filtered: int
    empty_frames: int
    empty_frames_filtered: int
    objects: int
    objects_missed: int  # objects in frames the filter dropped

    @property
    def objects_missed_fraction(self) -> float:
        return self.objects_missed / max(1, self.objects)

    @property
    def frames_filtered_fraction(self) -> float:
        return self.frames_filtered / max(1, self.frames)


@torch.no_grad()
def object_probabilities(head: nn.Module, filt: ObjectFilter, data: DetectionSet, batch_size: int = 200
                         ) -> np.ndarray:
    filt.eval()
    return np.concatenate([torch.sigmoid(filt(head(to_input(data.images[s : s + batch_size])))).numpy()
                           for s in range(0, len(data), batch_size)])


def filter_report(keep: np.ndarray, data: DetectionSet) -> FilterReport:
    """Counts for a boolean ``keep`` decision per frame of ``data``."""
    has = data.has_objects()
    counts = np.diff(data.offsets)
    dropped = ~keep
    return FilterReport(len(data), int(dropped.sum()), int((~has).sum()), int((dropped & ~has).sum()),
                        int(counts.sum()), int(counts[dropped].sum()))


def train_object_filter(head: nn.Module, train: DetectionSet, held: DetectionSet, epochs: int = 4,
                        batch_size: int = 64, lr: float = 3e-3, hidden_channels: int = 16,
                        max_object_frames_dropped: float = 0.01, seed: int = 0) -> tuple[ObjectFilter, FilterReport]:
    """Train on ``head`` features of ``train``; pick the threshold on ``held``; report on ``held``."""
    gen = torch.Generator().manual_seed(seed)
    head.eval()
    with torch.no_grad():
        c = head(to_input(train.images[:1])).shape[1]
    torch.manual_seed(seed)
    filt = ObjectFilter(FilterConfig(c, hidden_channels))
    opt = torch.optim.Adam(filt.parameters(), lr=lr)
    target = torch.as_tensor(train.has_objects(), dtype=torch.float32)
    steps = math.ceil(len(train) / batch_size)
    for epoch in range(epochs):
        order = torch.randperm(len(train), generator=gen)
        bar = tqdm(range(steps), desc=f"filter epoch {epoch + 1}/{epochs}", leave=False)
        for i in bar:
            idx = order[i * batch_size : (i + 1) * batch_size]
            with torch.no_grad():
                feats = head(to_input(train.images[idx.tolist()]))
            loss = F.binary_cross_entropy_with_logits(filt(feats), target[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    probs = object_probabilities(head, filt, held)
    filt = filt.with_threshold(choose_threshold(probs, held.has_objects(), max_object_frames_dropped))
    return filt, filter_report(probs >= filt.config.threshold, held)


def choose_threshold(probs: np.ndarray, has_objects: np.ndarray, max_object_frames_dropped: float) -> float:
    """The threshold that drops the most empty frames while dropping at most ``max_object_frames_dropped``
    of the frames with objects, and no more of them than that many empty frames need.

    Among thresholds that drop the same empty frames, the one half-way between the most
    likely dropped empty frame and the next frame with objects: a margin on both sides.
    """
    object_probs, empty_probs = np.sort(probs[has_objects]), np.sort(probs[~has_objects])
    if not len(object_probs):
        return 0.5
    allowed = int(math.floor(max_object_frames_dropped * len(object_probs)))
    upper = float(object_probs[allowed]) if allowed < len(object_probs) else float(object_probs[-1]) + 1e-6
    dropped_empty = empty_probs[empty_probs < upper]
    if not len(dropped_empty):  # no empty frame can be dropped: drop nothing
        return float(object_probs[0]) / 2
    highest_empty = float(dropped_empty[-1])
    above = object_probs[object_probs > highest_empty]
    next_object = min(float(above[0]), upper) if len(above) else upper
    return (highest_empty + next_object) / 2
