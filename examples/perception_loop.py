"""The perception loop of ``examples/detection_loop.py``, around :class:`~device_client.detector.SplitDetector`.

Example code, not part of the installed package (``benchmarks/detection_loop.py`` reuses it):
the camera-paced loop, its statistics, and the demo frames, video decoding (OpenCV or
PyAV) and box drawing that the example needs.

A camera ticks at a fixed rate (``fps``); on every tick the loop submits the newest
frame without waiting and collects whatever results have finished, in frame order.
The detector keeps its queue bounded (it drops the oldest waiting frame, or a frame
that waited past its deadline), so the loop never falls behind the camera: when the
link slows down frames are dropped or run locally instead of piling up.

    frames, classes = demo_frames()
    with SplitDetector.connect(address, checkpoint=ckpt, deadline_ms=200) as det:
        summary = run_loop(det, frames, fps=10, seconds=20, out_dir="frames", class_names=classes)

The summary reports the results delivered per second, their latency (submission to
result, queueing included, ms), the frames dropped and run locally, and the bytes sent.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from device_client.detector import DetectorResult, SplitDetector
from splitnet.checkpoint import DETECTION_DEMO_DATA
from splitnet.rpc.convert import Box

PALETTE = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
           (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212))


# ---------------------------------------------------------------- frames
def demo_frames(path: str | Path = DETECTION_DEMO_DATA) -> tuple[Iterator[np.ndarray], tuple[str, ...]]:
    """The shipped detection demo scenes, looped forever, and their class names."""
    from splitnet.detection.synth import DetectionSet

    data = DetectionSet.load(path)
    return itertools.cycle(data.images), data.classes


def _fit(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An RGB uint8 frame resized to ``size`` (height, width), the model's input."""
    h, w = size
    if rgb.shape[:2] == (h, w):
        return np.ascontiguousarray(rgb, dtype=np.uint8)
    return np.asarray(Image.fromarray(rgb).resize((w, h), Image.BILINEAR))


def _opencv_frames(path: str, size: tuple[int, int]) -> Iterator[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(path)
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                return
            yield _fit(bgr[:, :, ::-1], size)
    finally:
        cap.release()


def _pyav_frames(path: str, size: tuple[int, int]) -> Iterator[np.ndarray]:
    import av

    with av.open(path) as container:
        for frame in container.decode(video=0):
            yield _fit(frame.to_ndarray(format="rgb24"), size)


def video_frames(path: str | Path, size: tuple[int, int]) -> Iterator[np.ndarray] | None:
    """RGB frames of a video file resized to ``size`` (OpenCV, else PyAV); None if neither is installed."""
    import importlib.util

    if not Path(path).is_file():
        raise FileNotFoundError(f"video not found: {path}")
    for module, reader in (("cv2", _opencv_frames), ("av", _pyav_frames)):
        if importlib.util.find_spec(module) is not None:
            return reader(str(path), size)
    return None


# ------------------------------------------------------------ annotation
def annotate(frame: np.ndarray, boxes: Iterable[Box], class_names: tuple[str, ...] = (), min_score: float = 0.3,
             min_side: int = 384, caption: str = "") -> Image.Image:
    """The frame (upscaled to at least ``min_side`` px) with boxes, class names and scores drawn."""
    h, w = frame.shape[:2]
    scale = max(1, math.ceil(min_side / max(1, min(h, w))))
    img = Image.fromarray(np.asarray(frame, dtype=np.uint8)).resize((w * scale, h * scale), Image.NEAREST)
    draw = ImageDraw.Draw(img)
    for b in boxes:
        if b.score < min_score:
            continue
        colour = PALETTE[b.label % len(PALETTE)]
        name = class_names[b.label] if 0 <= b.label < len(class_names) else str(b.label)
        x1, y1, x2, y2 = (v * scale for v in (b.x1, b.y1, b.x2, b.y2))
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=2)
        label = f"{name} {b.score:.2f}"
        tx, ty = x1, max(0.0, y1 - 12)
        draw.rectangle(draw.textbbox((tx, ty), label), fill=colour)
        draw.text((tx, ty), label, fill=(0, 0, 0))
    if caption:
        draw.rectangle(draw.textbbox((2, img.height - 14), caption), fill=(0, 0, 0))
        draw.text((2, img.height - 14), caption, fill=(255, 255, 255))
    return img


def _caption(r: DetectorResult) -> str:
    res = r.result
    assert res is not None
    where = "edge" if res.offloaded else "filtered" if res.filtered else f"local {res.fallback}".strip()
    return f"#{r.index} {r.latency_ms:.0f} ms {res.action} ({where}) {res.payload_bytes} B"


# ----------------------------------------------------------- statistics
@dataclass
class LoopRecord:
    """One frame's outcome (latency: submission to result, ms; bytes: payload sent)."""

    index: int
    delivered_at: float  # time.perf_counter() when the loop got the result
    latency_ms: float
    drop_reason: str = ""  # "" when delivered
    payload_bytes: int = 0
    offloaded: bool = False
    fallback: str = ""
    filtered: bool = False
    action: str = ""

    @property
    def dropped(self) -> bool:
        return bool(self.drop_reason)

    @classmethod
    def of(cls, r: DetectorResult, now: float) -> LoopRecord:
        if r.result is None:
            return cls(r.index, now, r.latency_ms, r.drop_reason or "dropped")
        res = r.result
        return cls(r.index, now, r.latency_ms, "", res.payload_bytes, res.offloaded, res.fallback, res.filtered,
                   res.action)


def _percentiles(values: list[float]) -> dict[str, float | None]:
    """p50/p95/p99/max/mean in ms (None when there are no values)."""
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    a = np.asarray(values, dtype=float)
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
            "p99": float(np.percentile(a, 99)), "max": float(a.max()), "mean": float(a.mean())}


def timeline(records: list[LoopRecord], start: float, elapsed_s: float) -> list[dict]:
    """Per second of the run: results delivered, their latency p50/max (ms), drops, fallbacks, payload bytes."""
    rows = []
    for k in range(max(1, math.ceil(elapsed_s))):
        sec = [r for r in records if k <= r.delivered_at - start < k + 1]
        done = [r for r in sec if not r.dropped]
        lat = [r.latency_ms for r in done]
        rows.append({"t_s": k, "results": len(done), "latency_p50_ms": float(np.median(lat)) if lat else None,
                     "latency_max_ms": max(lat) if lat else None, "dropped": sum(r.dropped for r in sec),
                     "fallbacks": sum(bool(r.fallback) for r in done),
                     "payload_bytes": sum(r.payload_bytes for r in done)})
    return rows


def summarize(records: list[LoopRecord], submitted: int, elapsed_s: float, target_fps: float,
              deadline_ms: float | None) -> dict:
    """The loop's summary: counts, result rate (1/s), latency of delivered results (ms), bytes, Mbit/s."""
    delivered = [r for r in records if not r.dropped]
    sent = [r for r in delivered if r.payload_bytes > 0]
    total_bytes = sum(r.payload_bytes for r in sent)
    fallbacks = Counter(r.fallback for r in delivered if r.fallback)
    return {
        "target_fps": target_fps,
        "deadline_ms": deadline_ms,
        "elapsed_s": elapsed_s,  # the run plus the wait for the last frames' results
        "frames_submitted": submitted,
        "results_delivered": len(delivered),
        "unaccounted": submitted - len(records),  # submitted frames with no result at all (should be 0)
        "dropped": sum(r.dropped for r in records),
        "dropped_by_reason": dict(Counter(r.drop_reason for r in records if r.dropped)),
        "fallbacks": sum(fallbacks.values()),
        "fallbacks_by_reason": dict(fallbacks),
        "offloaded": sum(r.offloaded for r in delivered),
        "filtered": sum(r.filtered for r in delivered),
        "actions": dict(Counter(r.action for r in delivered)),
        "result_fps": len(delivered) / elapsed_s if elapsed_s > 0 else 0.0,
        "submit_fps": submitted / elapsed_s if elapsed_s > 0 else 0.0,
        "latency_ms": _percentiles([r.latency_ms for r in delivered]),
        "frames_sent": len(sent),  # payload handed to gRPC (answered, or run locally after a failed/late RPC)
        "bytes_sent": total_bytes,
        "bytes_per_sent_frame": total_bytes / len(sent) if sent else 0.0,
        "uplink_mbps": total_bytes * 8 / elapsed_s / 1e6 if elapsed_s > 0 else 0.0,  # payload only, no headers
    }


def live_line(records: list[LoopRecord], now: float, start: float, window_s: float = 1.0) -> str:
    """One line about the last ``window_s`` seconds: result rate, latency p50/max, bytes per frame."""
    recent = [r for r in records if r.delivered_at > now - window_s and not r.dropped]
    lat = [r.latency_ms for r in recent]
    sent = [r.payload_bytes for r in recent if r.payload_bytes]
    dropped = sum(r.dropped for r in records)
    fallbacks = sum(bool(r.fallback) for r in records if not r.dropped)
    latency = f"p50 {np.median(lat):6.1f} max {max(lat):6.1f} ms" if lat else "p50      - max      - ms"
    return (f"t={now - start:5.1f}s  {len(recent) / window_s:5.1f} results/s  latency {latency}  "
            f"{(sum(sent) / len(sent)) if sent else 0:7.0f} B/frame  dropped {dropped}  fallbacks {fallbacks}")


def format_counts(counts: dict[str, int]) -> str:
    """``{"late": 2, "deadline": 5}`` as ``"(late: 2, deadline: 5) "``; empty for no counts."""
    return f"({', '.join(f'{k}: {v}' for k, v in counts.items())}) " if counts else ""


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def format_summary(s: dict) -> str:
    """The summary of :func:`run_loop` as a few human-readable lines."""
    lat = s["latency_ms"]
    return "\n".join([
        f"{s['frames_submitted']} frames submitted in {s['elapsed_s']:.1f} s, {s['results_delivered']} results "
        f"delivered ({s['result_fps']:.2f}/s for a target of {s['target_fps']:g}), "
        f"{s['unaccounted']} unaccounted",
        f"dropped {s['dropped']} {format_counts(s['dropped_by_reason'])} fallbacks {s['fallbacks']} "
        f"{format_counts(s['fallbacks_by_reason'])} offloaded {s['offloaded']}  filtered {s['filtered']}",
        f"latency ms (delivered, deadline {_ms(s['deadline_ms'])}): p50 {_ms(lat['p50'])}  p95 {_ms(lat['p95'])}  "
        f"p99 {_ms(lat['p99'])}  max {_ms(lat['max'])}",
        f"{s['bytes_per_sent_frame']:.0f} B per sent frame ({s['frames_sent']} sent), "
        f"uplink {s['uplink_mbps'] * 1e3:.1f} kbit/s of payload",
    ])


# ------------------------------------------------------------------ loop
@dataclass
class _Saver:
    """Writes annotated PNGs of every ``every``-th frame that got a result."""

    out_dir: Path | None
    every: int = 1
    class_names: tuple[str, ...] = ()
    min_score: float = 0.3
    frames: dict[int, np.ndarray] = field(default_factory=dict)
    written: int = 0

    def __post_init__(self) -> None:
        if self.out_dir is not None:
            self.out_dir = Path(self.out_dir)
            self.out_dir.mkdir(parents=True, exist_ok=True)

    def keep(self, index: int, frame: np.ndarray) -> None:
        if self.out_dir is not None and index % max(1, self.every) == 0:
            self.frames[index] = frame

    def done(self, r: DetectorResult) -> None:
        frame = self.frames.pop(r.index, None)
        if frame is None or r.result is None or self.out_dir is None:
            return
        img = annotate(frame, r.boxes, self.class_names, self.min_score, caption=_caption(r))
        img.save(self.out_dir / f"frame_{r.index:06d}.png")
        self.written += 1


def run_loop(detector: SplitDetector, frames: Iterable[np.ndarray], fps: float = 10.0, seconds: float = 10.0,
             out_dir: str | Path | None = None, save_every: int = 1, class_names: tuple[str, ...] = (),
             min_score: float = 0.3, live: Callable[[str], None] | None = print, drain_s: float = 10.0) -> dict:
    """Submit one frame per tick at ``fps`` for ``seconds`` (or until ``frames`` ends); return the summary.

    Never blocks on a result: between ticks it collects finished results (in frame
    order). A tick the loop is late for is skipped, never made up in a burst. At the end
    it waits up to ``drain_s`` seconds for the results of frames still in flight.
    """
    if fps <= 0 or seconds <= 0:
        raise ValueError("fps and seconds must be positive")
    period = 1.0 / fps
    saver = _Saver(Path(out_dir) if out_dir is not None else None, save_every, class_names, min_score)
    records: list[LoopRecord] = []

    def collect(results: list[DetectorResult]) -> None:
        now = time.perf_counter()
        for r in results:
            records.append(LoopRecord.of(r, now))
            saver.done(r)

    it = iter(frames)
    submitted = 0
    start = time.perf_counter()
    end, next_tick, next_live = start + seconds, start, start + 1.0
    while (now := time.perf_counter()) < end:
        if now >= next_tick:
            frame = next(it, None)
            if frame is None:
                break
            saver.keep(detector.submit(frame), frame)
            submitted += 1
            next_tick += period
            if next_tick <= now:  # late by a whole period or more: skip the missed ticks
                next_tick = now + period
        if now >= next_live:
            if live is not None:
                live(live_line(records, now, start))
            next_live += 1.0
        collect(detector.poll(timeout_s=max(0.0, min(next_tick, next_live, end) - time.perf_counter())))
    collect(detector.flush(timeout_s=drain_s))
    elapsed_s = time.perf_counter() - start
    summary = summarize(records, submitted, elapsed_s, fps, detector.deadline_ms)
    return {**summary, "frames_saved": saver.written, "timeline": timeline(records, start, elapsed_s)}
