"""``splitnet eval``: the rate–accuracy (or, for detectors, rate–mAP) evaluation of a checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from splitnet.errors import SplitnetError
from splitnet_cli.argtypes import asset_path, fraction, positive_int, quality
from splitnet_cli.reports import write_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    from splitnet.evaluation import DEFAULT_QUALITIES

    e = sub.add_parser("eval", help="rate–accuracy evaluation on an npz data set")
    e.add_argument("--checkpoint", type=asset_path, default=None, help="split checkpoint (default: the shipped one)")
    e.add_argument("--model", default=None, help="evaluate a bare model instead (with --weights)")
    e.add_argument("--weights", default=None)
    e.add_argument("--data", type=asset_path, default=None, help="npz data set (default: the shipped demo sample)")
    e.add_argument("--limit", type=positive_int, default=None, help="first N images only")
    e.add_argument("--scenes", type=positive_int, default=1000,
                   help="detectors given object images: how many validation scenes to build (seed 1)")
    e.add_argument("--qualities", type=quality, nargs="+", default=list(DEFAULT_QUALITIES),
                   help="JPEG and WebP qualities")
    e.add_argument("--no-png", action="store_true")
    e.add_argument("--feature-codecs", nargs="*", default=["int8+zstd", "int4+zstd"],
                   choices=("fp32", "fp16", "int8+zstd", "int4+zstd"), help="raw-feature codecs at each split")
    e.add_argument("--device-budget", type=fraction, default=None,
                   help="the verdict considers only configurations whose device share of the model's MACs is at "
                        "most this fraction (default 0.10 for classifiers, 0.15 for detectors); the report also "
                        "lists the frontier at 5, 10, 20 and 100 %%")
    e.add_argument("--timing-frames", type=positive_int, default=50)
    e.add_argument("--batch-size", type=positive_int, default=250)
    e.add_argument("--json", default=None, help="write the report here")
    e.add_argument("--plot", default=None, help="rate–accuracy PNG (default: beside --json)")
    e.set_defaults(func=run)


def _load_checkpoint(args: argparse.Namespace):
    from splitnet.checkpoint import SplitCheckpoint

    if args.model or args.weights:
        if not (args.model and args.weights):
            raise SplitnetError("--model and --weights go together")
        return SplitCheckpoint.from_teacher(args.model, args.weights)
    return SplitCheckpoint.load(args.checkpoint)


def _eval_detector(ckpt, args: argparse.Namespace) -> int:
    import numpy as np

    from splitnet.data import load_npz
    from splitnet.detection.evaluation import DetectionEvalOptions, evaluate_detection, format_detection_table
    from splitnet.detection.synth import DetectionSet, make_detection_set

    if not args.data:
        raise SplitnetError("detectors need --data: a detection set (splitnet data detection) or object images")
    with np.load(args.data, allow_pickle=False) as z:
        is_detection_set = "boxes" in z.files
    if is_detection_set:
        data = DetectionSet.load(args.data)
    else:  # object images: build the validation scenes from them (seeded)
        data = make_detection_set(load_npz(args.data), args.scenes, size=ckpt.spec.input_size[0], seed=1)
    if args.limit:
        data = data.subset(0, min(args.limit, len(data)))
    opts = DetectionEvalOptions(jpeg_qualities=args.qualities, webp_qualities=args.qualities,
                                batch_size=min(args.batch_size, 100))
    if args.device_budget is not None:
        opts.device_budget = args.device_budget
    report = evaluate_detection(ckpt, data, opts, data_path=args.data)
    print(format_detection_table(report))
    write_json(report, args.json)
    return 0


def run(args: argparse.Namespace) -> int:
    from splitnet.checkpoint import DEMO_DATA
    from splitnet.data import load_npz
    from splitnet.evaluation import EvalOptions, evaluate, format_table, plot_rate_accuracy

    ckpt = _load_checkpoint(args)
    if ckpt.spec.is_detector:
        return _eval_detector(ckpt, args)
    data = load_npz(args.data or DEMO_DATA, limit=args.limit)
    opts = EvalOptions(jpeg_qualities=args.qualities, webp_qualities=args.qualities, png=not args.no_png,
                       feature_codecs=tuple(args.feature_codecs), timing_frames=args.timing_frames,
                       batch_size=args.batch_size)
    if args.device_budget is not None:
        opts.device_budget = args.device_budget
    report = evaluate(ckpt, data, opts)
    print(format_table(report))
    write_json(report, args.json)
    plot = args.plot or (str(Path(args.json).with_suffix(".png")) if args.json else None)
    if plot:
        plot_rate_accuracy(report, plot)
        print(f"wrote {plot}")
    return 0
