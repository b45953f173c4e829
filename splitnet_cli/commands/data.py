"""``splitnet data detection``: build a synthetic detection set from object images."""

from __future__ import annotations

import argparse

from splitnet_cli.argtypes import asset_path, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    dt = sub.add_parser("data", help="build data sets").add_subparsers(dest="what", required=True)
    dd = dt.add_parser("detection", help="synthetic detection scenes: CIFAR objects pasted on clutter")
    dd.add_argument("--objects", type=asset_path, required=True,
                    help="npz of object images (use val.npz for validation scenes)")
    dd.add_argument("--scenes", type=positive_int, default=1000)
    dd.add_argument("--size", type=positive_int, default=128)
    dd.add_argument("--seed", type=int, default=1)
    dd.add_argument("--out", required=True)
    dd.set_defaults(func=run_detection)


def run_detection(args: argparse.Namespace) -> int:
    from splitnet.data import load_npz
    from splitnet.detection.synth import make_detection_set

    data = make_detection_set(load_npz(args.objects), args.scenes, size=args.size, seed=args.seed)
    data.save(args.out)
    print(f"wrote {args.out}: {len(data)} scenes, {len(data.boxes)} objects, "
          f"{int((~data.has_objects()).sum())} empty")
    return 0
