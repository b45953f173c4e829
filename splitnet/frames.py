"""Frames of any size to a model's input, and a detector's boxes back to the frame.

The model's input spec (:class:`~splitnet.models.registry.ModelSpec`) decides:

- classifiers: the frame is resized so its shorter side is the input's, then centre-cropped
  (torchvision's evaluation transform; a square frame is simply resized);
- detectors: the frame is letterboxed (resized to fit whole, aspect kept, padded at the
  right and bottom), and boxes are mapped back to the frame's pixels by :meth:`FrameFit.box_to_frame`.

A frame that is not an image (wrong dtype, rank or channels) raises :class:`ShapeError`
with what was expected; nothing is run silently on a wrong-sized input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from splitnet.errors import ShapeError
from splitnet.models.registry import ModelSpec

PAD_VALUE = 0  # letterbox padding (black)


@dataclass(frozen=True)
class FrameFit:
    """How one frame became the model's input: ``input = frame * scale + offset`` (pixels)."""

    frame_size: tuple[int, int]  # (height, width) of the original frame
    input_size: tuple[int, int]  # (height, width) of the model input
    scale_x: float = 1.0
    scale_y: float = 1.0
    offset_x: float = 0.0  # model-input x of the frame's x = 0 (negative: cropped)
    offset_y: float = 0.0

    @property
    def identity(self) -> bool:
        return self.frame_size == self.input_size and self.scale_x == self.scale_y == 1.0

    def box_to_frame(self, x1: float, y1: float, x2: float, y2: float) -> tuple[float, float, float, float]:
        """A box in model-input pixels as frame pixels (clipped to the frame)."""
        h, w = self.frame_size
        fx = lambda x: min(max((x - self.offset_x) / self.scale_x, 0.0), float(w))  # noqa: E731
        fy = lambda y: min(max((y - self.offset_y) / self.scale_y, 0.0), float(h))  # noqa: E731
        return fx(x1), fy(y1), fx(x2), fy(y2)


def as_rgb(frame: object) -> np.ndarray:
    """A uint8 ``[H, W, 3]`` RGB array from ``frame`` (gray ``[H, W]`` and RGBA are converted)."""
    a = np.asarray(frame)
    if a.dtype != np.uint8:
        raise ShapeError(f"a frame must be uint8 pixels, got dtype {a.dtype} (scale floats to 0..255 first)")
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ShapeError(f"a frame must be [H, W, 3] RGB (or [H, W] gray, [H, W, 4] RGBA), got shape {a.shape}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ShapeError(f"a frame must have pixels, got shape {a.shape}")
    return a[:, :, :3]


def fit_frame(frame: object, spec: ModelSpec) -> tuple[np.ndarray, FrameFit]:
    """``frame`` as the model's uint8 ``[h, w, 3]`` input, and how it was fitted."""
    rgb = as_rgb(frame)
    fh, fw = rgb.shape[:2]
    h, w = spec.input_size
    if (fh, fw) == (h, w):
        return np.ascontiguousarray(rgb), FrameFit((fh, fw), (h, w))
    img = Image.fromarray(np.ascontiguousarray(rgb))
    if spec.is_detector:  # letterbox: the whole frame, aspect kept
        s = min(h / fh, w / fw)
        nh, nw = max(1, round(fh * s)), max(1, round(fw * s))
        out = np.full((h, w, 3), PAD_VALUE, dtype=np.uint8)
        out[:nh, :nw] = np.asarray(img.resize((nw, nh), Image.BILINEAR))
        return out, FrameFit((fh, fw), (h, w), nw / fw, nh / fh, 0.0, 0.0)
    s = max(h / fh, w / fw)  # shorter side to the input's, then centre crop
    nh, nw = max(h, round(fh * s)), max(w, round(fw * s))
    top, left = (nh - h) // 2, (nw - w) // 2
    resized = np.asarray(img.resize((nw, nh), Image.BILINEAR))
    return (np.ascontiguousarray(resized[top : top + h, left : left + w]),
            FrameFit((fh, fw), (h, w), nw / fw, nh / fh, -float(left), -float(top)))
