"""A seeded detection data set made of real object images pasted onto cluttered backgrounds.

Objects are CIFAR-10 photographs (from the npz given, so training sets use training
images and validation sets validation images), rescaled to a random size and pasted
at random places; backgrounds are smooth random colour fields with random lines,
rectangles and blurred crops of other photographs, so the detector must find objects
in clutter. Some images hold no object at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from splitnet.data import ImageSet
from splitnet.errors import DataError


@dataclass(frozen=True)
class DetectionSet:
    """Images ``[N, H, W, 3]`` uint8; boxes ``[M, 4]`` (x1, y1, x2, y2, pixels), labels ``[M]`` and
    ``offsets`` ``[N + 1]`` so image ``i`` owns boxes ``offsets[i]:offsets[i + 1]``."""

    images: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    offsets: np.ndarray
    classes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, start: int, stop: int) -> DetectionSet:
        """Images ``start:stop`` with their boxes."""
        a, b = int(self.offsets[start]), int(self.offsets[stop])
        return DetectionSet(self.images[start:stop], self.boxes[a:b], self.labels[a:b],
                            self.offsets[start : stop + 1] - a, self.classes)

    def has_objects(self) -> np.ndarray:
        """bool ``[N]``: whether each image holds at least one object."""
        return np.diff(self.offsets) > 0

    def targets(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = self.offsets[i], self.offsets[i + 1]
        return self.boxes[a:b], self.labels[a:b]

    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, x=self.images, boxes=self.boxes, labels=self.labels, offsets=self.offsets,
                            classes=np.asarray(self.classes))

    @classmethod
    def load(cls, path: str | Path) -> DetectionSet:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"detection data not found: {path}")
        with np.load(path, allow_pickle=False) as z:
            missing = {"x", "boxes", "labels", "offsets"} - set(z.files)
            if missing:
                raise DataError(f"{path} lacks {sorted(missing)}")
            classes = tuple(str(c) for c in z["classes"]) if "classes" in z.files else ()
            return cls(z["x"], z["boxes"].astype(np.float32), z["labels"].astype(np.int64),
                       z["offsets"].astype(np.int64), classes)


def _background(rng: np.random.Generator, size: int, source: ImageSet) -> Image.Image:
    low = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    img = Image.fromarray(low).resize((size, size), Image.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 9))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x0, y0, x1, y1 = (int(v) for v in rng.integers(0, size, 4))
        if rng.random() < 0.5:
            draw.line((x0, y0, x1, y1), fill=colour, width=int(rng.integers(1, 4)))
        else:
            draw.rectangle((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), outline=colour)
    for _ in range(int(rng.integers(1, 4))):  # blurred bits of photographs: texture, not objects
        patch = Image.fromarray(source.images[int(rng.integers(len(source)))])
        s = int(rng.integers(size // 4, size // 2))
        patch = patch.resize((s, s), Image.BILINEAR).filter(ImageFilter.GaussianBlur(3))
        img.paste(patch, (int(rng.integers(0, size - s)), int(rng.integers(0, size - s))))
    return img


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def make_detection_set(source: ImageSet, n_images: int, size: int = 128, max_objects: int = 3,
                       object_px: tuple[int, int] = (28, 64), empty_fraction: float = 0.2,
                       seed: int = 0) -> DetectionSet:
    """``n_images`` images of ``size`` x ``size`` with 0..``max_objects`` pasted objects each."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n_images, size, size, 3), dtype=np.uint8)
    boxes, labels, offsets = [], [], [0]
    for i in range(n_images):
        img = _background(rng, size, source)
        placed: list[np.ndarray] = []
        count = 0 if rng.random() < empty_fraction else int(rng.integers(1, max_objects + 1))
        for _ in range(count):
            for _attempt in range(20):
                s = int(rng.integers(object_px[0], object_px[1] + 1))
                x, y = int(rng.integers(0, size - s + 1)), int(rng.integers(0, size - s + 1))
                box = np.array([x, y, x + s, y + s], dtype=np.float32)
                if all(_iou(box, other) < 0.1 for other in placed):
                    break
            else:
                continue
            k = int(rng.integers(len(source)))
            img.paste(Image.fromarray(source.images[k]).resize((s, s), Image.BILINEAR), (x, y))
            placed.append(box)
            labels.append(int(source.labels[k]))
        boxes.extend(placed)
        offsets.append(len(labels))
        images[i] = np.asarray(img)
    return DetectionSet(images, np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
                        np.asarray(labels, dtype=np.int64), np.asarray(offsets, dtype=np.int64), source.classes)
