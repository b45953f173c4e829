"""The ``splitnet client`` report: counts, accuracy, latency percentiles, bytes, actions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from device_client.client import FrameResult


def client_report(results: Sequence[FrameResult], labels: Sequence[int] | None, n_frames: int) -> dict:
    """Summary of a deployed run over ``n_frames`` input frames (lost = frames without a result)."""
    lat = np.asarray([r.latency_ms for r in results], dtype=np.float64)
    offloaded = [r for r in results if r.offloaded]
    sent = [r for r in results if r.payload_bytes > 0]
    report = {
        "frames": n_frames,
        "frames_sent": len(sent),
        "frames_answered": len(offloaded),
        "frames_lost": n_frames - len(results),
        "fallback_local": sum(1 for r in results if r.fallback),
        "fallback_reasons": dict(Counter(r.fallback for r in results if r.fallback)),
        "top1": None,
        "latency_ms": {},
        "bytes_mean": float(np.mean([r.payload_bytes for r in sent])) if sent else 0.0,
        "actions": dict(Counter(r.action for r in results)),
        "chosen_actions": dict(Counter(r.chosen for r in results)),
    }
    if labels is not None and len(results):
        report["top1"] = float(np.mean([r.top1 == int(y) for r, y in zip(results, labels)]))
    if len(lat):
        p50, p95, p99 = np.percentile(lat, [50, 95, 99])
        report["latency_ms"] = {"p50": float(p50), "p95": float(p95), "p99": float(p99), "mean": float(lat.mean())}
    if offloaded:
        report["stage_ms_mean"] = {
            k: float(np.mean([getattr(r, k) for r in offloaded]))
            for k in ("head_ms", "encode_ms", "network_ms", "queue_ms", "decode_ms", "tail_ms")
        }
    return report


def format_report(report: dict) -> str:
    lat = report.get("latency_ms") or {}
    top1 = f"{report['top1'] * 100:.2f} %" if report.get("top1") is not None else "-"
    lines = [
        f"frames {report['frames']}: sent {report['frames_sent']}, answered {report['frames_answered']}, "
        f"lost {report['frames_lost']}, local fallbacks {report['fallback_local']} {report['fallback_reasons'] or ''}",
        f"top-1 {top1}; bytes per sent frame {report['bytes_mean']:.1f}",
    ]
    if lat:
        lines.append(f"latency ms: p50 {lat['p50']:.2f}  p95 {lat['p95']:.2f}  p99 {lat['p99']:.2f}  "
                     f"mean {lat['mean']:.2f}")
    if "stage_ms_mean" in report:
        lines.append("mean ms of offloaded frames: " + "  ".join(
            f"{k.removesuffix('_ms')} {v:.2f}" for k, v in report["stage_ms_mean"].items()))
    lines.append("actions: " + ", ".join(f"{k} {v}" for k, v in sorted(report["actions"].items())))
    return "\n".join(lines)
