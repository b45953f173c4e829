"""Image data sets in the shared npz format (or an image folder) and the preprocessing models expect.

An npz holds ``x`` (uint8, ``[N, H, W, 3]`` RGB), ``y`` (int64 ``[N]``) and optionally
``classes`` and ``files``. Loading never unpickles (``allow_pickle=False``). A directory in
torchvision's ImageFolder layout (``root/<class>/<image>``, classes sorted by name) loads
the same way when its images share one size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from splitnet.errors import DataError
from splitnet.models.registry import ModelSpec


@dataclass(frozen=True)
class ImageSet:
    """Images (uint8 ``[N, H, W, 3]``) with labels (int64 ``[N]``)."""

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...] = ()
    path: str = ""

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, limit: int | None) -> ImageSet:
        """The first ``limit`` images (all of them when ``limit`` is None)."""
        if limit is None or limit >= len(self):
            return self
        return ImageSet(self.images[:limit], self.labels[:limit], self.classes, self.path)


def load_image_folder(path: str | Path, limit: int | None = None) -> ImageSet:
    """An ImageFolder directory (one sub-folder per class) as an :class:`ImageSet`; images must share a size."""
    from splitnet.inputs import image_folder, read_image

    files, labels, classes = image_folder(path, limit)
    if labels is None:
        raise DataError(f"{path} has no class sub-folders (ImageFolder layout: {path}/<class>/<image>)")
    images = [read_image(f) for f in files]
    sizes = sorted({im.shape[:2] for im in images})
    if len(sizes) > 1:
        raise DataError(f"images in {path} differ in size ({sizes[0]} and {sizes[-1]}, ...); resize them to the "
                        "model's input size first")
    return ImageSet(np.stack(images), labels, classes, str(path))


def read_npz(path: Path, labels_required: bool) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...]]:
    """``x`` (checked uint8 [N, H, W, 3]), ``y`` (None when absent and not required) and ``classes`` of an npz."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "x" not in npz or (labels_required and "y" not in npz):
                wanted = "the arrays 'x' and 'y'" if labels_required else "the array 'x'"
                raise DataError(f"{path} lacks {wanted} (has {list(npz.keys())})")
            images, labels = npz["x"], (npz["y"] if "y" in npz else None)
            classes = tuple(str(c) for c in npz["classes"]) if "classes" in npz else ()
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"cannot read {path} as npz: {exc}") from exc
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise DataError(f"{path}: 'x' must be uint8 [N, H, W, 3], got {images.dtype} {images.shape}")
    return images, labels, classes


def load_npz(path: str | Path, limit: int | None = None) -> ImageSet:
    """Read an npz data set (or an ImageFolder directory), checking shapes and dtypes."""
    path = Path(path)
    if path.is_dir():
        return load_image_folder(path, limit)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    images, labels, classes = read_npz(path, labels_required=True)
    assert labels is not None
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(f"{path}: 'y' must be [N] with N={len(images)}, got {labels.shape}")
    return ImageSet(images, labels.astype(np.int64), classes, str(path)).subset(limit)


def to_tensor(images: np.ndarray | torch.Tensor, spec: ModelSpec) -> torch.Tensor:
    """uint8 ``[N, H, W, 3]`` (or one ``[H, W, 3]`` frame) to a normalized float ``[N, 3, H, W]``."""
    x = torch.as_tensor(np.ascontiguousarray(images) if isinstance(images, np.ndarray) else images)
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise DataError(f"expected images [N, H, W, 3], got {tuple(x.shape)}")
    x = x.permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    return (x - mean) / std


def batches(n: int, batch_size: int) -> Iterator[slice]:
    """Consecutive slices covering ``range(n)``."""
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def augment(images: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop after ``pad`` pixels of zero padding, and random horizontal flip (NCHW)."""
    n, _, h, w = images.shape
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).tolist()
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).tolist()
    cropped = torch.stack([padded[i, :, y : y + h, x : x + w] for i, (y, x) in enumerate(zip(dy, dx))])
    flip = torch.rand(n, generator=generator) < 0.5
    cropped[flip] = cropped[flip].flip(3)
    return cropped
