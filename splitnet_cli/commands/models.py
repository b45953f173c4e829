"""``splitnet models``: the registered models, their input sizes and split points."""

from __future__ import annotations

import argparse

from splitnet_cli.argtypes import positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list registered models (and their split points)")
    p.add_argument("model", nargs="?", help="one model name")
    p.add_argument("--split-points", action="store_true", help="also list valid split points")
    p.add_argument("--depth", type=positive_int, default=2, help="deepest node-name level listed")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from splitnet import create_model, list_models, model_spec
    from splitnet.models.registry import registered_split_points
    from splitnet.models.tv_detection import DEFAULT_INPUT_SIZE, DETECTOR_SPLITS

    registered = list_models()
    if args.model and args.model not in registered and args.model not in DETECTOR_SPLITS:
        model_spec(args.model)  # raises UnknownModelError, listing the registered models
    names = [n for n in registered if not args.model or n == args.model]
    for name in names:
        spec = model_spec(name)
        what = "detector, " if spec.is_detector else ""
        line = f"{name:<22} input {spec.input_size[0]}x{spec.input_size[1]}, {what}{spec.num_classes} classes"
        if args.split_points:
            points = registered_split_points(name, create_model(name), depth=args.depth)
            line += "\n    split points: " + ", ".join(points)
        print(line)
    unregistered = {n: nodes for n, nodes in DETECTOR_SPLITS.items() if n not in registered}
    if not args.model and unregistered:
        print("torchvision detectors (in-process only: splitnet.models.tv_detection.split_detector):")
    for name, nodes in unregistered.items():
        if not args.model or args.model == name:
            h, w = DEFAULT_INPUT_SIZE
            print(f"{name:<38} input {h}x{w}, recommended splits {', '.join(nodes)}")
    return 0
