"""The ``splitnet client`` report: counts, accuracy (top-1, or mAP for detectors), latency
percentiles, bytes, actions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from device_client.client import FrameResult

STAGES = ("wait_ms", "head_ms", "encode_ms", "network_ms", "queue_ms", "decode_ms", "tail_ms", "client_queue_ms")


def frame_record(r: FrameResult) -> dict:
    """One frame for ``--json``: latency, where it ran and why, its stages (ms), bytes."""
    where = "server" if r.offloaded else "filtered" if r.filtered else "device"
    return {"seq": r.seq, "latency_ms": round(r.latency_ms, 3), "ran_on": where, "action": r.action,
            "chosen": r.chosen, "why": r.fallback or ("chosen" if r.chosen == r.action else ""),
            "deadline_missed": r.deadline_missed, "probe": r.probe, "payload_bytes": r.payload_bytes,
            "stages_ms": {k.removesuffix("_ms"): round(getattr(r, k), 3) for k in (*STAGES, "local_ms")}}


def client_report(results: Sequence[FrameResult], labels: Sequence[int] | None, n_frames: int,
                  taken: Sequence[int] | None = None, dropped: int = 0) -> dict:
    """Summary of a deployed run over ``n_frames`` input frames (lost = frames without a result that
    were not dropped).

    ``taken``: the input index of each result's frame (default: results are frames 0, 1, ...);
    ``dropped``: frames a live camera dropped because the device was busy
    (:class:`~device_client.camera.LiveCamera`); each counts as a deadline miss, as in ``splitnet
    simulate``. ``deadline_miss_rate``: share of the frames that arrived whose result came after their
    deadline (or the default budget when there is none), answers used late and dropped frames included.
    ``stage_ms_mean`` splits the latency of offloaded frames into waiting before the device, device
    stages, network (round trip minus the server's time), server stages and the client's own in-order queue.
    """
    lat = np.asarray([r.latency_ms for r in results], dtype=np.float64)
    offloaded = [r for r in results if r.offloaded]
    sent = [r for r in results if r.payload_bytes > 0]
    missed = sum(1 for r in results if r.deadline_missed) + dropped
    arrived = len(results) + dropped
    report = {
        "frames": n_frames,
        "frames_sent": len(sent),
        "frames_answered": len(offloaded),
        "frames_dropped": dropped,
        "frames_lost": n_frames - len(results) - dropped,
        "fallback_local": sum(1 for r in results if r.fallback),
        "fallback_reasons": dict(Counter(r.fallback for r in results if r.fallback)),
        "top1": None,
        "latency_ms": {},
        "bytes_mean": float(np.mean([r.payload_bytes for r in sent])) if sent else 0.0,
        "actions": dict(Counter(r.action for r in results)),
        "chosen_actions": dict(Counter(r.chosen for r in results)),
        "deadline_missed": missed,
        "deadline_miss_rate": missed / arrived if arrived else None,
        "budget_ms": results[0].budget_ms if results else None,
        "probes": sum(1 for r in results if r.probe),
    }
    if labels is not None and len(results):
        index = list(taken) if taken is not None else list(range(len(results)))
        report["top1"] = float(np.mean([r.top1 == int(labels[i]) for r, i in zip(results, index)]))
    if len(lat):
        p50, p95, p99 = np.percentile(lat, [50, 95, 99])
        report["latency_ms"] = {"p50": float(p50), "p95": float(p95), "p99": float(p99), "mean": float(lat.mean())}
    if offloaded:
        report["stage_ms_mean"] = {
            k: float(np.mean([getattr(r, k) for r in offloaded]))
            for k in STAGES
        }
    return report


def detection_scores(results: Sequence[FrameResult], targets: Sequence[tuple[np.ndarray, np.ndarray]]) -> dict:
    """mAP@0.5 and mAP@[.5:.95] (torchmetrics) of the boxes in ``results`` against ``(boxes, labels)`` targets,
    and how many frames the object filter kept off the link."""
    import torch
    from torchmetrics.detection import MeanAveragePrecision

    metric = MeanAveragePrecision(iou_type="bbox")
    for r, (boxes, labels) in zip(results, targets):
        pred = torch.tensor([[b.x1, b.y1, b.x2, b.y2] for b in r.boxes], dtype=torch.float32).reshape(-1, 4)
        metric.update([{"boxes": pred, "scores": torch.tensor([b.score for b in r.boxes], dtype=torch.float32),
                        "labels": torch.tensor([b.label for b in r.boxes], dtype=torch.int64)}],
                      [{"boxes": torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                        "labels": torch.as_tensor(labels, dtype=torch.int64)}])
    m = metric.compute()
    return {"map_50": float(m["map_50"]), "map": float(m["map"]),
            "frames_filtered": sum(1 for r in results if r.filtered)}


def format_report(report: dict) -> str:
    lat = report.get("latency_ms") or {}
    top1 = f"{report['top1'] * 100:.2f} %" if report.get("top1") is not None else "- (unlabelled input)"
    score = f"top-1 {top1}"
    if report.get("map_50") is not None:
        score = (f"mAP@0.5 {report['map_50'] * 100:.2f}, mAP@[.5:.95] {report['map'] * 100:.2f}; "
                 f"frames kept off the link by the object filter {report.get('frames_filtered', 0)}")
    miss = report.get("deadline_miss_rate")
    lines = [
        f"frames {report['frames']}: sent {report['frames_sent']}, answered {report['frames_answered']}, "
        f"lost {report['frames_lost']}, local fallbacks {report['fallback_local']} {report['fallback_reasons'] or ''}",
        f"{score}; bytes per sent frame {report['bytes_mean']:.1f}",
    ]
    if lat:
        lines.append(f"latency ms: p50 {lat['p50']:.2f}  p95 {lat['p95']:.2f}  p99 {lat['p99']:.2f}  "
                     f"mean {lat['mean']:.2f}")
    if miss is not None:
        what = "deadline" if report.get("deadline_ms") else "default budget"
        dropped = report.get("frames_dropped", 0)
        lines.append(f"deadline misses: {report['deadline_missed']} of {report['frames'] - report['frames_lost']} "
                     f"({miss * 100:.1f} %, {what} {report.get('budget_ms') or 0:.0f} ms from each frame's arrival"
                     + (f"; {dropped} frames dropped by the camera while the device was busy" if dropped else "")
                     + ")")
    if "stage_ms_mean" in report:
        names = {"wait_ms": "wait", "queue_ms": "server-queue", "client_queue_ms": "client-queue"}
        lines.append("mean ms of offloaded frames: " + "  ".join(
            f"{names.get(k, k.removesuffix('_ms'))} {v:.2f}" for k, v in report["stage_ms_mean"].items()))
    lines.append("actions: " + ", ".join(f"{k} {v}" for k, v in sorted(report["actions"].items())))
    return "\n".join(lines)
