"""Training a split detector's object filter (no object in the frame: send nothing) into its checkpoint.

The filter reads the device head's features at a split that has a bottleneck; it is
trained on synthetic scenes built from object images, its threshold set on held-out
scenes (see :func:`splitnet.detection.filter.train_object_filter`), and it is saved
with that split of the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from splitnet.detection.filter import FilterReport, ObjectFilter


@dataclass
class FilterTrainConfig:
    """``splitnet train filter``'s options (defaults as on the command line)."""

    checkpoint: str | Path
    data: str | Path = "../shared/data/cifar10/train.npz"  # object images (training split)
    split: str = "layer2"
    scenes: int = 6000
    holdout: int = 1000  # scenes to set the threshold on
    epochs: int = 4
    max_dropped: float = 0.01  # largest share of frames with objects the filter may drop
    seed: int = 2000


def train_filter(cfg: FilterTrainConfig, out: str | Path | None = None,
                 command: str = "") -> tuple[str, ObjectFilter, FilterReport]:
    """Train the filter at ``cfg.split``, save the checkpoint to ``out`` (default: over ``cfg.checkpoint``).

    Returns the saved checkpoint's sha256, the filter and its report on the held-out scenes.
    """
    from splitnet.checkpoint import SplitCheckpoint
    from splitnet.data import load_npz
    from splitnet.detection.filter import train_object_filter
    from splitnet.detection.synth import make_detection_set
    from splitnet.errors import SplitnetError

    ckpt = SplitCheckpoint.load(cfg.checkpoint)
    if not ckpt.spec.is_detector:
        raise SplitnetError(f"{cfg.checkpoint} holds {ckpt.model_name}, not a detector")
    point = ckpt.split(cfg.split)  # the split must have a bottleneck: the filter rides with it
    if point.bottleneck.config.is_light:
        raise SplitnetError(f"the split at {cfg.split!r} has a light encoder: its device runs no teacher layers, "
                            "and the object filter reads the teacher's features at the split")
    head = ckpt.teacher_split(cfg.split)[0]
    size = ckpt.spec.input_size[0]
    objects = load_npz(cfg.data)
    train = make_detection_set(objects, cfg.scenes, size=size, seed=cfg.seed)
    held = make_detection_set(objects, cfg.holdout, size=size, seed=cfg.seed + 1)
    filt, rep = train_object_filter(head, train, held, epochs=cfg.epochs,
                                    max_object_frames_dropped=cfg.max_dropped, seed=cfg.seed)
    ckpt.splits[cfg.split].object_filter = filt
    ckpt.meta.setdefault("filters", {})[cfg.split] = {"command": command, "threshold": filt.config.threshold}
    sha = ckpt.save(out or cfg.checkpoint)
    return sha, filt, rep
