"""A split checkpoint: the teacher plus trained bottlenecks (and tails) at several split points.

File layout (a dict written by ``torch.save``; read with ``weights_only=True``)::

    {"format": "splitnet-checkpoint", "version": 1,
     "model_name": "resnet56_cifar", "teacher": state_dict,
     "splits": {node: {"config": BottleneckConfig dict, "bottleneck": state_dict,
                       "tail": state_dict of the fine-tuned tail, or absent,
                       "filter": {"config", "state_dict"} of a detector's object filter, or absent}},
     "meta": {...}}   # training commands, figures, data provenance

The file's SHA-256 identifies the weights on the wire: client and server must agree.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from splitnet.bottleneck import BottleneckConfig, SlimmableBottleneck
from splitnet.detection.filter import ObjectFilter
from splitnet.errors import CheckpointError, UnknownSplitPointError
from splitnet.models import create_model, file_sha256, load_weights, model_spec, read_checkpoint
from splitnet.models.registry import ModelSpec, split_registered

FORMAT = "splitnet-checkpoint"
VERSION = 1
SHIPPED_CHECKPOINT = Path(__file__).parent / "assets" / "resnet56_cifar_split.pt"
DEMO_DATA = Path(__file__).parent / "assets" / "demo_val.npz"
SHIPPED_DETECTOR = Path(__file__).parent / "assets" / "tinydet_synth_split.pt"
DETECTION_DEMO_DATA = Path(__file__).parent / "assets" / "detection_demo.npz"  # scenes of validation objects


@dataclass
class SplitPoint:
    """One split point of a checkpoint: its bottleneck (on the teacher's features at ``node``,
    or a light encoder on the image whose decoder rebuilds those features), its own tail if
    fine-tuned, and for detectors optionally an object filter on the head's features."""

    node: str
    bottleneck: SlimmableBottleneck
    tail_state: dict[str, torch.Tensor] | None = None
    object_filter: ObjectFilter | None = None
    # Held while the bottleneck is set to a width and used, so threads sharing it never mix widths.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)


@dataclass
class SplitCheckpoint:
    """Teacher and bottlenecks loaded from (or to be saved to) one checkpoint file."""

    model_name: str
    teacher: nn.Module
    splits: dict[str, SplitPoint] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    sha256: str = ""
    path: str = ""
    _traced: dict[tuple[str, str], object] = field(default_factory=dict, repr=False, compare=False)

    @property
    def spec(self) -> ModelSpec:
        return model_spec(self.model_name)

    def split(self, node: str) -> SplitPoint:
        try:
            return self.splits[node]
        except KeyError:
            raise UnknownSplitPointError(
                f"checkpoint has no bottleneck at {node!r}; it has {', '.join(self.splits) or 'none'}"
            ) from None

    def prepare(self) -> None:
        """Trace every split point now (``load`` does this).

        FX tracing patches ``nn.Module.__call__`` process-wide while it runs, so it must not
        overlap with another thread's forward pass: trace before sharing the checkpoint
        between threads. Afterwards heads and tails come from a cache.
        """
        for node in self.splits:
            self.teacher_split(node)
            self.bottleneck_tail(node)

    def teacher_split(self, node: str) -> tuple[nn.Module, nn.Module]:
        """Head and tail of the (unchanged) teacher at ``node`` (traced once, then cached); cut by
        FX, or by the registered model's own split function (torchvision detectors)."""
        key = ("teacher", node)
        if key not in self._traced:
            self._traced[key] = split_registered(self.model_name, self.teacher, node)
        return self._traced[key]

    def encoder_input(self, node: str) -> nn.Module:
        """What the device runs before the bottleneck's encoder at ``node``: the teacher's head,
        or nothing (identity on the normalized image) for a light encoder."""
        if self.split(node).bottleneck.config.is_light:
            return nn.Identity()
        return self.teacher_split(node)[0]

    def bottleneck_tail(self, node: str) -> nn.Module:
        """The tail that follows the bottleneck at ``node``: fine-tuned if the checkpoint has one (cached)."""
        point = self.split(node)
        cached = self._traced.get(("tail", node))
        if cached is None or cached[0] is not point:  # a split point replaced since: build anew
            cached = self._traced[("tail", node)] = (point, self._build_bottleneck_tail(node))
        return cached[1]

    def _build_bottleneck_tail(self, node: str) -> nn.Module:
        point = self.split(node)
        if point.tail_state is None:
            return split_registered(self.model_name, self.teacher, node)[1]
        model = create_model(self.model_name)
        model.load_state_dict(self.teacher.state_dict())
        _, tail = split_registered(self.model_name, model, node)
        missing = tail.load_state_dict(point.tail_state, strict=False)
        if missing.unexpected_keys:
            raise CheckpointError(f"tail at {node!r} has unexpected keys {missing.unexpected_keys[:5]}")
        return tail.eval()

    def save(self, path: str | Path) -> str:
        """Write the checkpoint; returns its SHA-256."""
        obj = {
            "format": FORMAT,
            "version": VERSION,
            "model_name": self.model_name,
            "teacher": self.teacher.state_dict(),
            "splits": {
                node: {"config": p.bottleneck.config.to_dict(), "bottleneck": p.bottleneck.state_dict(),
                       **({"tail": p.tail_state} if p.tail_state is not None else {}),
                       **({"filter": p.object_filter.to_state()} if p.object_filter is not None else {})}
                for node, p in self.splits.items()
            },
            "meta": self.meta,
        }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(obj, path)
        self.sha256, self.path = file_sha256(path), str(path)
        return self.sha256

    @classmethod
    def load(cls, path: str | Path | None = None) -> SplitCheckpoint:
        """Load a checkpoint (the shipped one when ``path`` is None); bottlenecks in eval mode."""
        path = Path(path) if path is not None else SHIPPED_CHECKPOINT
        obj = read_checkpoint(path)
        if obj.get("format") != FORMAT:
            raise CheckpointError(f"{path} is not a splitnet checkpoint (format {obj.get('format')!r})")
        if obj.get("version") != VERSION:
            raise CheckpointError(f"{path}: checkpoint version {obj.get('version')} not supported")
        name = obj["model_name"]
        teacher = create_model(name)
        load_weights(teacher, obj["teacher"])
        splits = {}
        for node, entry in obj.get("splits", {}).items():
            bottleneck = SlimmableBottleneck(BottleneckConfig.from_dict(entry["config"]))
            bottleneck.load_state_dict(entry["bottleneck"])
            filt = ObjectFilter.from_state(entry["filter"]) if "filter" in entry else None
            splits[node] = SplitPoint(node, bottleneck.eval(), entry.get("tail"), filt)
        ckpt = cls(name, teacher.eval(), splits, dict(obj.get("meta", {})), file_sha256(path), str(path))
        ckpt.prepare()
        return ckpt

    def merge(self, other: SplitCheckpoint) -> None:
        """Add ``other``'s split points (trained separately on the same teacher) to this checkpoint."""
        mine, theirs = self.teacher.state_dict(), other.teacher.state_dict()
        if other.model_name != self.model_name or mine.keys() != theirs.keys() or not all(
                torch.equal(mine[k], theirs[k]) for k in mine):
            raise CheckpointError(f"{other.path or 'checkpoint'} was trained on another teacher; cannot merge")
        for node, point in other.splits.items():
            self.splits[node] = point
        for key, value in other.meta.get("bottlenecks", {}).items():
            self.meta.setdefault("bottlenecks", {})[key] = value

    @classmethod
    def from_teacher(cls, model_name: str, weights: str | Path) -> SplitCheckpoint:
        """A checkpoint with only a teacher (no bottlenecks), e.g. to evaluate third-party weights."""
        teacher = create_model(model_name, weights=weights)
        return cls(model_name, teacher, {}, {"weights": str(weights)}, file_sha256(weights), str(weights))
