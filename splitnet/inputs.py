"""Frames to feed a deployed model: npz data sets, image folders, single images, video files.

``load_inputs(path)`` gives frames of any size (the client fits them to the model,
:mod:`splitnet.frames`) and labels when the source has them:

- ``*.npz`` with ``x`` (uint8 ``[N, H, W, 3]``) and optionally ``y`` (labels);
- a directory in torchvision's ImageFolder layout (one sub-folder per class: labelled, classes
  sorted by name) or a flat folder of images (unlabelled);
- one image file (unlabelled);
- a video file (unlabelled; needs OpenCV ``opencv-python`` or PyAV ``av``, both optional).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from splitnet.data import read_npz
from splitnet.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


@dataclass
class FrameSource:
    """Frames (uint8 ``[H, W, 3]``, sizes may differ) and their labels when known."""

    frames: list[np.ndarray] | np.ndarray | Iterator[np.ndarray]
    labels: np.ndarray | None
    classes: tuple[str, ...]
    path: str
    count: int | None  # None for a video whose length is not known up front

    def __len__(self) -> int:
        return self.count or 0


def read_image(path: str | Path) -> np.ndarray:
    """One image file as uint8 RGB ``[H, W, 3]``."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except OSError as exc:
        raise DataError(f"cannot read image {path}: {exc}") from None


def image_folder(path: str | Path, limit: int | None = None) -> tuple[list[Path], np.ndarray | None, tuple[str, ...]]:
    """Files of an image folder with labels (ImageFolder layout) or without (flat folder)."""
    root = Path(path)
    subdirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if subdirs:
        from torchvision.datasets import ImageFolder

        try:
            ds = ImageFolder(str(root), loader=lambda p: p, is_valid_file=lambda p: p.lower().endswith(
                IMAGE_EXTENSIONS))
        except (FileNotFoundError, RuntimeError) as exc:
            raise DataError(f"{root}: {exc}") from None
        samples = ds.samples[:limit] if limit else ds.samples
        return [Path(p) for p, _ in samples], np.asarray([y for _, y in samples], dtype=np.int64), tuple(ds.classes)
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise DataError(f"{root} holds no images ({', '.join(IMAGE_EXTENSIONS)}) and no class folders")
    return files[:limit] if limit else files, None, ()


def video_frames(path: str | Path, limit: int | None = None) -> Iterator[np.ndarray]:
    """RGB frames of a video file (OpenCV, else PyAV)."""
    if importlib.util.find_spec("cv2") is not None:
        import cv2

        def gen() -> Iterator[np.ndarray]:
            cap = cv2.VideoCapture(str(path))
            try:
                n = 0
                while limit is None or n < limit:
                    ok, bgr = cap.read()
                    if not ok:
                        return
                    n += 1
                    yield np.ascontiguousarray(bgr[:, :, ::-1])
            finally:
                cap.release()

        return gen()
    if importlib.util.find_spec("av") is not None:
        import av

        def gen_av() -> Iterator[np.ndarray]:
            with av.open(str(path)) as container:
                for n, frame in enumerate(container.decode(video=0)):
                    if limit is not None and n >= limit:
                        return
                    yield frame.to_ndarray(format="rgb24")

        return gen_av()
    raise DataError(f"reading the video {path} needs OpenCV or PyAV: pip install opencv-python-headless (or av)")


def load_inputs(path: str | Path, limit: int | None = None) -> FrameSource:
    """Frames from an npz, an image folder, an image or a video file (see the module docstring)."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"input not found: {p}")
    if p.is_dir():
        files, labels, classes = image_folder(p, limit)
        return FrameSource([read_image(f) for f in files], labels, classes, str(p), len(files))
    suffix = p.suffix.lower()
    if suffix == ".npz":
        x, y, classes = read_npz(p, labels_required=False)
        x, y = (x[:limit], None if y is None else y[:limit]) if limit else (x, y)
        return FrameSource(x, None if y is None else y.astype(np.int64), classes, str(p), len(x))
    if suffix in IMAGE_EXTENSIONS:
        return FrameSource([read_image(p)], None, (), str(p), 1)
    if suffix in VIDEO_EXTENSIONS:
        return FrameSource(video_frames(p, limit), None, (), str(p), None)
    raise DataError(f"{p}: not an npz, image folder, image ({', '.join(IMAGE_EXTENSIONS)}) or video "
                    f"({', '.join(VIDEO_EXTENSIONS)})")
