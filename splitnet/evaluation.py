"""Rate–accuracy evaluation of a split checkpoint: the ``splitnet eval`` report.

Every configuration runs on the same images in one run: the teacher alone
(``local``; ``local_label`` is the same run with the class id sent on, 1 byte), each
split x width of the learned bottleneck (on the teacher's features, or a light encoder
on the image), raw features coded with int8/int4 + zstandard, and the input image coded
with JPEG/WebP/PNG then run through the whole model. Bytes are the real coded bytes of
each frame; encode and decode times are per frame at batch 1 (median over a sample of
frames). Every configuration carries its device and server MACs, the device's parameters
and its share of the unsplit model's MACs (:mod:`splitnet.compute`).

The summary compares the smallest learned configuration within ``within_pt`` of the
teacher against the smallest JPEG/WebP within the same tolerance, among configurations
whose device share is at most ``device_budget``; the frontier repeats that comparison
at several budgets (5, 10, 20 and 100 % of the model's MACs).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from splitnet.checkpoint import SplitCheckpoint
from splitnet.codecs import BottleneckCodec, Codec, create_codec
from splitnet.compute import ComputeModel
from splitnet.data import ImageSet, batches, to_tensor
from splitnet.pipeline import Action

DEFAULT_QUALITIES = (10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 95)
DEFAULT_DEVICE_BUDGET = 0.10  # share of the unsplit model's MACs the device may spend
FRONTIER_BUDGETS = (0.05, 0.10, 0.20, 1.0)


@dataclass
class EvalOptions:
    """What ``evaluate`` measures."""

    jpeg_qualities: Sequence[int] = DEFAULT_QUALITIES
    webp_qualities: Sequence[int] = DEFAULT_QUALITIES
    png: bool = True
    feature_codecs: Sequence[str] = ("int8+zstd", "int4+zstd")
    batch_size: int = 250
    timing_frames: int = 50  # frames timed one by one for encode_ms / decode_ms
    within_pt: float = 1.0  # accuracy tolerance (points) for the summary's smallest configurations
    device_budget: float = DEFAULT_DEVICE_BUDGET  # the summary considers configurations at most this device share
    progress: bool = True


def _top1(logits: torch.Tensor, labels: np.ndarray) -> int:
    return int((logits.argmax(1).numpy() == labels).sum())


def _timed_ms(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _per_frame_ms(codec: Codec, frames: Sequence[torch.Tensor]) -> tuple[float, float]:
    """Median encode and decode ms of single frames."""
    enc, dec = [], []
    for f in frames:
        t0 = time.perf_counter()
        blob = codec.encode(f)
        t1 = time.perf_counter()
        codec.decode(blob, tuple(f.shape))
        t2 = time.perf_counter()
        enc.append((t1 - t0) * 1e3)
        dec.append((t2 - t1) * 1e3)
    return statistics.median(enc), statistics.median(dec)


def _row(kind: str, codec: str, correct: int, sizes: list[int], n: int, **extra: object) -> dict:
    arr = np.asarray(sizes, dtype=np.float64) if sizes else np.zeros(1)
    return {"kind": kind, "codec": codec, **extra, "top1": correct / n,
            "bytes_mean": float(arr.mean()), "bytes_p95": float(np.percentile(arr, 95))}


@torch.no_grad()
def evaluate(ckpt: SplitCheckpoint, data: ImageSet, options: EvalOptions | None = None) -> dict:
    """Measure every configuration on ``data``; returns the ``splitnet eval`` report dict."""
    opt = options or EvalOptions()
    spec, teacher, n = ckpt.spec, ckpt.teacher.eval(), len(data)
    torch.manual_seed(0)
    slices = list(batches(n, opt.batch_size))
    inputs = [to_tensor(data.images[s], spec) for s in slices]
    n_time = min(opt.timing_frames, n)

    jobs: list[tuple[str, Callable[[], dict]]] = []

    def local() -> dict:
        correct = sum(_top1(teacher(x), data.labels[s]) for x, s in zip(inputs, slices))
        ms = _timed_ms(lambda: teacher(inputs[0][:1]), min(20, n_time))
        return {**_row("local", "", correct, [], n), "bytes_mean": 0.0, "bytes_p95": 0.0, "compute_ms": ms}

    jobs.append(("local", local))

    for node, point in ckpt.splits.items():
        head, teacher_tail = ckpt.teacher_split(node)
        tail = ckpt.bottleneck_tail(node)
        encoder = point.bottleneck.config.encoder
        cache: dict[str, list[torch.Tensor]] = {}

        def feats(head=head, cache=cache) -> list[torch.Tensor]:
            if "features" not in cache:
                cache["features"] = [head(x) for x in inputs]
            return cache["features"]

        def coded_inputs(feats=feats, light=point.bottleneck.config.is_light) -> list[torch.Tensor]:
            return inputs if light else feats()

        for width in point.bottleneck.widths:
            def bottleneck_job(node=node, point=point, width=width, tail=tail, coded_inputs=coded_inputs,
                               encoder=encoder) -> dict:
                point.bottleneck.set_width(width)
                codec = BottleneckCodec(point.bottleneck)
                correct, sizes = 0, []
                for f, s in zip(coded_inputs(), slices):
                    blobs = codec.encode_batch(f)
                    sizes += [len(b) for b in blobs]
                    correct += _top1(tail(codec.decode_batch(blobs, tuple(f.shape[1:]))), data.labels[s])
                frames = list(torch.cat(coded_inputs())[:n_time])
                enc, dec = _per_frame_ms(codec, frames)
                return _row("bottleneck", codec.codec_id, correct, sizes, n, split=node, width=width,
                            encoder=encoder, encode_ms=enc, decode_ms=dec)

            jobs.append((f"{node}/w{width:g}", bottleneck_job))

        for codec_id in opt.feature_codecs:
            def feature_job(node=node, codec_id=codec_id, teacher_tail=teacher_tail, feats=feats) -> dict:
                codec = create_codec(codec_id)
                correct, sizes = 0, []
                for f, s in zip(feats(), slices):
                    blobs = codec.encode_batch(f)
                    sizes += [len(b) for b in blobs]
                    correct += _top1(teacher_tail(codec.decode_batch(blobs, tuple(f.shape[1:]))), data.labels[s])
                enc, dec = _per_frame_ms(codec, list(torch.cat(feats())[:n_time]))
                return _row("features", codec_id, correct, sizes, n, split=node, encode_ms=enc, decode_ms=dec)

            jobs.append((f"{node}/{codec_id}", feature_job))

    image_settings = [("jpeg", q) for q in opt.jpeg_qualities] + [("webp", q) for q in opt.webp_qualities]
    if opt.png:
        image_settings.append(("png", None))
    for fmt, quality in image_settings:
        def image_job(fmt=fmt, quality=quality) -> dict:
            codec = create_codec(fmt, quality=quality or 75)
            correct, sizes = 0, []
            for s in slices:
                blobs = [codec.encode(im) for im in data.images[s]]
                sizes += [len(b) for b in blobs]
                decoded = torch.stack([codec.decode(b, data.images.shape[1:]) for b in blobs])
                correct += _top1(teacher(to_tensor(decoded, spec)), data.labels[s])
            enc, dec = _per_frame_ms(codec, [torch.from_numpy(im) for im in data.images[:n_time]])
            extra = {"quality": quality} if quality is not None else {}
            return _row("input", fmt, correct, sizes, n, **extra, encode_ms=enc, decode_ms=dec)

        jobs.append((fmt if quality is None else f"{fmt}/q{quality}", image_job))

    configs = []
    bar = tqdm(jobs, desc="eval", disable=not opt.progress, leave=False)
    for name, job in bar:
        bar.set_postfix_str(name)
        configs.append(job())
    local_row = configs[0]
    configs.insert(1, {**local_row, "kind": "local_label", "bytes_mean": 1.0, "bytes_p95": 1.0})
    compute = ComputeModel(ckpt)
    for c in configs:
        c.update(compute.cost(config_action(c)).to_dict())
    teacher_top1 = local_row["top1"]
    return {
        "model": ckpt.model_name,
        "checkpoint_sha256": ckpt.sha256,
        "checkpoint": ckpt.path,
        "data": data.path,
        "n_images": n,
        "teacher_top1": teacher_top1,
        "model_macs": compute.model_macs,
        "model_params": compute.model_params,
        "configs": configs,
        "summary": summarize(configs, teacher_top1, opt.within_pt, opt.device_budget),
        "frontier": [summarize(configs, teacher_top1, opt.within_pt, b) for b in FRONTIER_BUDGETS],
        "torch_threads": torch.get_num_threads(),
    }


def config_action(config: dict) -> Action | str:
    """The pipeline action a report row measured (``"local_label"`` for that row)."""
    kind = config["kind"]
    if kind == "local_label":
        return "local_label"
    if kind == "local":
        return Action("local")
    if kind == "bottleneck":
        return Action("bottleneck", config["split"], config["width"], config["codec"])
    if kind == "features":
        return Action("features", config["split"], codec=config["codec"])
    return Action("input", codec=config["codec"], quality=config.get("quality"))


LEARNED_CODECS = ("factorized", "hyperprior")


def summarize(configs: list[dict], teacher_top1: float, within_pt: float = 1.0,
              device_budget: float = DEFAULT_DEVICE_BUDGET, score_key: str = "top1") -> dict:
    """Smallest learned configuration and smallest JPEG/WebP within ``within_pt`` of the teacher,
    among configurations whose device share of the model's MACs is at most ``device_budget``.

    ``score_key`` is the accuracy figure of the rows (``top1``; ``map_50`` for detectors), a
    fraction; ``within_pt`` is in points (1 pt = 0.01).
    """
    floor = teacher_top1 - within_pt / 100.0 - 1e-12

    def smallest(kind: str, codecs: tuple[str, ...]) -> dict | None:
        ok = [c for c in configs if c["kind"] == kind and c["codec"] in codecs and c[score_key] >= floor
              and c.get("device_share", 0.0) <= device_budget + 1e-12]
        return min(ok, key=lambda c: c["bytes_mean"]) if ok else None

    best_b = smallest("bottleneck", LEARNED_CODECS)
    best_i = smallest("input", ("jpeg", "webp"))
    ratio = best_i["bytes_mean"] / best_b["bytes_mean"] if best_b and best_i else None
    return {"within_pt": within_pt, "device_budget": device_budget, "accuracy_floor": floor,
            "smallest_bottleneck": best_b, "smallest_image": best_i, "image_to_bottleneck_bytes_ratio": ratio}


def format_table(report: dict) -> str:
    """A plain-text rate–accuracy table of a report."""
    lines = [f"{report['model']} on {report['n_images']} images of {report['data']}",
             f"teacher top-1 {report['teacher_top1'] * 100:.2f} %, {report['model_macs'] / 1e6:.1f} M MACs",
             f"{'configuration':<28}{'top-1 %':>9}{'bytes':>10}{'p95':>8}{'enc ms':>9}{'dec ms':>9}"
             f"{'dev MMAC':>10}{'dev %':>8}"]
    for c in report["configs"]:
        enc = f"{c['encode_ms']:.2f}" if "encode_ms" in c else "-"
        dec = f"{c['decode_ms']:.2f}" if "decode_ms" in c else "-"
        lines.append(f"{config_name(c):<28}{c['top1'] * 100:>9.2f}{c['bytes_mean']:>10.1f}{c['bytes_p95']:>8.0f}"
                     f"{enc:>9}{dec:>9}{c['device_macs'] / 1e6:>10.2f}{c['device_share'] * 100:>8.2f}")
    for summary in verdicts(report):
        lines.append(summary_line(summary, "pt of the teacher"))
    return "\n".join(lines)


def verdicts(report: dict) -> list[dict]:
    """The report's verdict at its own device budget, then the frontier's at the other budgets."""
    summary = report.get("summary", {})
    return [summary] + [f for f in report.get("frontier", []) if f["device_budget"] != summary.get("device_budget")]


def config_name(c: dict) -> str:
    """A report row's short name: ``local``, ``local+label``, ``layer1/w0.5 light``, ``webp q80``."""
    if c["kind"] == "bottleneck":
        return f"{c.get('split')}/w{c.get('width', 0):g}" + (" light" if c.get("encoder") == "light" else "")
    if c["kind"] == "features":
        return f"{c.get('split')}/{c['codec']}"
    if c["kind"] == "input":
        return f"{c['codec']}" + (f" q{c['quality']}" if c.get("quality") is not None else "")
    return {"local": "local", "local_label": "local+label"}[c["kind"]]


def summary_line(summary: dict, within: str) -> str:
    """The smallest learned configuration against the smallest image codec under one device budget."""
    budget = f"device <= {summary.get('device_budget', 1.0) * 100:g} % of MACs"
    b, i = summary.get("smallest_bottleneck"), summary.get("smallest_image")
    if not b:
        return f"{budget}: no learned configuration within {summary['within_pt']} {within}"
    if not i:
        return (f"{budget}: {config_name(b)} {b['bytes_mean']:.1f} B; "
                f"no JPEG/WebP within {summary['within_pt']} {within}")
    return (f"{budget}, within {summary['within_pt']} {within}: {config_name(b)} "
            f"{b['bytes_mean']:.1f} B ({b['device_share'] * 100:.1f} % on the device) vs {config_name(i)} "
            f"{i['bytes_mean']:.1f} B -> {summary['image_to_bottleneck_bytes_ratio']:.1f}x fewer bytes")


def plot_rate_accuracy(report: dict, path: str | Path) -> None:
    """Save a rate–accuracy plot (bytes per image, log scale, against top-1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    series: dict[str, list[dict]] = {}
    for c in report["configs"]:
        if c["kind"] == "bottleneck":
            key = f"{'light encoder' if c.get('encoder') == 'light' else 'bottleneck'} {c['split']}"
        elif c["kind"] == "features":
            key = f"features {c['codec']}"
        elif c["kind"] == "input":
            key = c["codec"].upper()
        elif c["kind"] == "local_label":
            key = "local + class id"
        else:
            continue
        series.setdefault(key, []).append(c)
    for key, rows in series.items():
        rows = sorted(rows, key=lambda r: r["bytes_mean"])
        share = max(r.get("device_share", 0.0) for r in rows)
        ax.plot([r["bytes_mean"] for r in rows], [r["top1"] * 100 for r in rows],
                marker="o", linestyle="-" if len(rows) > 1 and "features" not in key else "none",
                label=f"{key} (device ≤ {share * 100:.0f} % of MACs)")
    t = report["teacher_top1"] * 100
    ax.axhline(t, color="k", linewidth=1, label=f"teacher {t:.1f} %")
    ax.axhline(t - report.get("summary", {}).get("within_pt", 1.0), color="k", linestyle="--", linewidth=0.8,
               label="teacher - 1 pt")
    ax.set_xscale("log")
    ax.set_xlabel("bytes per image")
    ax.set_ylabel("top-1 (%)")
    ax.set_title(f"{report['model']}: rate–accuracy on {report['n_images']} images")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
