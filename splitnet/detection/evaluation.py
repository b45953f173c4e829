"""Rate–mAP evaluation of a split detector: the ``splitnet eval`` report for detectors.

Every configuration runs on the same scenes in one run: the unsplit detector
(``local``), each split x width of the learned bottleneck (with and without the
split's object filter, when it has one), and the input image coded with JPEG/WebP at
several qualities then run through the whole detector. mAP@0.5 and mAP@[.5:.95] come
from torchmetrics (COCO definition); bytes are the real coded bytes of each frame
(0 for a frame the filter drops). Every configuration carries its device and server MACs
and the device's share of the unsplit detector's MACs (the object filter's MACs included
where it runs); the summary and the frontier compare configurations under device budgets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from splitnet.checkpoint import SplitCheckpoint
from splitnet.codecs import BottleneckCodec, create_codec
from splitnet.compute import ComputeModel, count_macs
from splitnet.detection.filter import filter_report
from splitnet.detection.synth import DetectionSet
from splitnet.detection.train import to_input
from splitnet.evaluation import config_action, summarize, summary_line, verdicts
from splitnet.models import detections_from_output

DEFAULT_DETECTION_QUALITIES = (10, 30, 50, 70, 90)
DETECTION_DEVICE_BUDGET = 0.15
DETECTION_FRONTIER_BUDGETS = (0.05, 0.10, 0.15, 0.20, 1.0)


@dataclass
class DetectionEvalOptions:
    """What :func:`evaluate_detection` measures."""

    jpeg_qualities: Sequence[int] = DEFAULT_DETECTION_QUALITIES
    webp_qualities: Sequence[int] = DEFAULT_DETECTION_QUALITIES
    batch_size: int = 100
    within_pt: float = 2.0  # mAP@0.5 tolerance (points) for the summary's smallest configurations
    device_budget: float = DETECTION_DEVICE_BUDGET  # the summary considers at most this device share of MACs
    progress: bool = True


def _map(name: str, outputs: list, data: DetectionSet, batch_size: int,
         keep: np.ndarray | None = None) -> dict[str, float]:
    """mAP of a detector's outputs (one per batch); frames with ``keep`` False count as "no detections"."""
    from torchmetrics.detection import MeanAveragePrecision

    metric = MeanAveragePrecision(iou_type="bbox")
    for k, out in enumerate(outputs):
        start = k * batch_size
        preds = detections_from_output(name, out)
        gts = []
        for j, pred in enumerate(preds):
            i = start + j
            b, lb = data.targets(i)
            gts.append({"boxes": torch.as_tensor(b), "labels": torch.as_tensor(lb)})
            if keep is not None and not keep[i]:
                preds[j] = {key: value[:0] for key, value in pred.items()}
        metric.update(preds, gts)
    r = metric.compute()
    return {"map_50": float(r["map_50"]), "map": float(r["map"])}


def _row(kind: str, codec: str, scores: dict[str, float], sizes: list[int], **extra: object) -> dict:
    arr = np.asarray(sizes, dtype=np.float64) if sizes else np.zeros(1)
    return {"kind": kind, "codec": codec, **extra, **scores,
            "bytes_mean": float(arr.mean()), "bytes_p95": float(np.percentile(arr, 95))}


@torch.no_grad()
def evaluate_detection(ckpt: SplitCheckpoint, data: DetectionSet,
                       options: DetectionEvalOptions | None = None, data_path: str = "") -> dict:
    """Measure every configuration on ``data``; returns the report dict."""
    opt = options or DetectionEvalOptions()
    name, teacher, bs = ckpt.model_name, ckpt.teacher.eval(), opt.batch_size
    starts = list(range(0, len(data), bs))
    inputs = [to_input(data.images[s : s + bs]) for s in starts]
    jobs: list[tuple[str, Callable[[], list[dict]]]] = []

    def local() -> list[dict]:
        return [{**_row("local", "", _map(name, [teacher(x) for x in inputs], data, bs), []),
                 "bytes_mean": 0.0, "bytes_p95": 0.0}]

    jobs.append(("local", local))
    for node, point in ckpt.splits.items():
        head = ckpt.encoder_input(node)
        tail = ckpt.bottleneck_tail(node)

        def bottleneck_job(node=node, point=point, head=head, tail=tail) -> list[dict]:
            feats = [head(x) for x in inputs]
            keep = None
            if point.object_filter is not None and not point.bottleneck.config.is_light:
                keep = np.concatenate([point.object_filter.keep(f).numpy() for f in feats])
            rows = []
            for width in point.bottleneck.widths:
                point.bottleneck.set_width(width)
                codec = BottleneckCodec(point.bottleneck)
                outputs, sizes = [], []
                for f in feats:
                    blobs = codec.encode_batch(f)
                    sizes += [len(b) for b in blobs]
                    outputs.append(tail(codec.decode_batch(blobs, tuple(f.shape[1:]))))
                rows.append(_row("bottleneck", codec.codec_id, _map(name, outputs, data, bs), sizes,
                                 split=node, width=width, encoder=point.bottleneck.config.encoder))
                if keep is not None:
                    rep = filter_report(keep, data)
                    filtered_sizes = [s if k else 0 for s, k in zip(sizes, keep)]
                    rows.append(_row("bottleneck+filter", codec.codec_id, _map(name, outputs, data, bs, keep),
                                     filtered_sizes, split=node, width=width,
                                     frames_filtered=rep.frames_filtered, empty_frames=rep.empty_frames,
                                     empty_frames_filtered=rep.empty_frames_filtered, objects=rep.objects,
                                     objects_missed=rep.objects_missed))
            return rows

        jobs.append((f"{node}", bottleneck_job))

    settings = [("jpeg", q) for q in opt.jpeg_qualities] + [("webp", q) for q in opt.webp_qualities]
    for fmt, quality in settings:
        def image_job(fmt=fmt, quality=quality) -> list[dict]:
            codec = create_codec(fmt, quality=quality)
            outputs, sizes = [], []
            for s in starts:
                blobs = [codec.encode(im) for im in data.images[s : s + bs]]
                sizes += [len(b) for b in blobs]
                decoded = torch.stack([codec.decode(b, data.images.shape[1:]) for b in blobs])
                outputs.append(teacher(to_input(decoded.numpy())))
            return [_row("input", fmt, _map(name, outputs, data, bs), sizes, quality=quality)]

        jobs.append((f"{fmt}/q{quality}", image_job))

    configs: list[dict] = []
    bar = tqdm(jobs, desc="eval", disable=not opt.progress, leave=False)
    for job_name, job in bar:
        bar.set_postfix_str(job_name)
        configs.extend(job())
    _add_compute(ckpt, configs)
    unsplit = configs[0]["map_50"]
    return {"model": name, "task": "detection", "checkpoint_sha256": ckpt.sha256, "checkpoint": ckpt.path,
            "data": data_path, "n_images": len(data), "teacher_map_50": unsplit, "teacher_map": configs[0]["map"],
            "model_macs": configs[0]["device_macs"], "configs": configs,
            "summary": summarize_detection(configs, unsplit, opt.within_pt, opt.device_budget),
            "frontier": [summarize_detection(configs, unsplit, opt.within_pt, b) for b in DETECTION_FRONTIER_BUDGETS],
            "torch_threads": torch.get_num_threads()}


def _add_compute(ckpt: SplitCheckpoint, configs: list[dict]) -> None:
    """Device/server MACs of every row; a filtered row adds the object filter's MACs to the device's."""
    compute = ComputeModel(ckpt)
    h, w = ckpt.spec.input_size
    for c in configs:
        filtered = c["kind"] == "bottleneck+filter"
        cost = compute.cost(config_action({**c, "kind": "bottleneck"} if filtered else c)).to_dict()
        if filtered:
            point = ckpt.split(c["split"])
            with torch.no_grad():
                features = ckpt.teacher_split(c["split"])[0](torch.zeros(1, 3, h, w))
            cost["device_macs"] += count_macs(point.object_filter, features)
            cost["device_share"] = cost["device_macs"] / compute.model_macs
        c.update(cost)


def summarize_detection(configs: list[dict], unsplit_map_50: float, within_pt: float = 2.0,
                        device_budget: float = DETECTION_DEVICE_BUDGET) -> dict:
    """Smallest bottleneck and smallest JPEG/WebP setting within ``within_pt`` mAP@0.5 points of the
    unsplit model, among configurations using at most ``device_budget`` of its MACs on the device."""
    summary = summarize(configs, unsplit_map_50, within_pt, device_budget, score_key="map_50")
    with_filter = summarize([{**c, "kind": "bottleneck"} for c in configs if c["kind"] == "bottleneck+filter"],
                            unsplit_map_50, within_pt, device_budget, score_key="map_50")
    return {**summary, "map_50_floor": summary["accuracy_floor"],
            "smallest_bottleneck_with_filter": with_filter["smallest_bottleneck"]}


def format_detection_table(report: dict) -> str:
    """A plain-text rate–mAP table of a detection report."""
    lines = [f"{report['model']} on {report['n_images']} scenes of {report['data'] or 'the given set'}",
             f"unsplit detector mAP@0.5 {report['teacher_map_50'] * 100:.2f}, mAP@[.5:.95] "
             f"{report['teacher_map'] * 100:.2f}",
             f"{'configuration':<28}{'mAP@.5':>8}{'mAP':>8}{'bytes':>9}{'p95':>8}{'dev MMAC':>10}{'dev %':>8}  filter"]
    for c in report["configs"]:
        light = " light" if c.get("encoder") == "light" else ""
        name = {"local": "local (unsplit)",
                "bottleneck": f"{c.get('split')}/w{c.get('width', 0):g}{light}",
                "bottleneck+filter": f"{c.get('split')}/w{c.get('width', 0):g} + filter",
                "input": f"{c['codec']} q{c.get('quality')}"}[c["kind"]]
        note = ""
        if c["kind"] == "bottleneck+filter":
            note = (f"dropped {c['frames_filtered']}/{report['n_images']} frames "
                    f"({c['empty_frames_filtered']}/{c['empty_frames']} empty), "
                    f"missed {c['objects_missed']}/{c['objects']} objects")
        lines.append(f"{name:<28}{c['map_50'] * 100:>8.2f}{c['map'] * 100:>8.2f}{c['bytes_mean']:>9.1f}"
                     f"{c['bytes_p95']:>8.0f}{c['device_macs'] / 1e6:>10.2f}{c['device_share'] * 100:>8.2f}  {note}")
    for summary in verdicts(report):
        lines.append(summary_line(summary, "mAP@0.5 pt of the unsplit detector"))
    return "\n".join(lines)
