"""``splitnet checkpoint merge|info``: combine split checkpoints, or say what one holds and how it was made."""

from __future__ import annotations

import argparse

from splitnet_cli.argtypes import asset_path
from splitnet_cli.reports import command_line


def add_parser(sub: argparse._SubParsersAction) -> None:
    ck = sub.add_parser("checkpoint", help="inspect or merge split checkpoints").add_subparsers(
        dest="action", required=True)
    m = ck.add_parser("merge", help="combine split points trained separately on the same teacher")
    m.add_argument("inputs", nargs="+", help="split checkpoints; later ones win on a shared split")
    m.add_argument("--out", required=True)
    m.set_defaults(func=run_merge)
    i = ck.add_parser("info", help="what a split checkpoint holds and how it was made")
    i.add_argument("checkpoint", nargs="?", default=None, type=asset_path, help="default: the shipped one")
    i.set_defaults(func=run_info)


def run_merge(args: argparse.Namespace) -> int:
    from splitnet.checkpoint import SplitCheckpoint

    merged = SplitCheckpoint.load(args.inputs[0])
    for path in args.inputs[1:]:
        merged.merge(SplitCheckpoint.load(path))
    merged.meta["merge_command"] = command_line()
    sha = merged.save(args.out)
    print(f"{args.out}: splits {', '.join(merged.splits)}; sha256 {sha}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from splitnet.checkpoint import SplitCheckpoint
    from splitnet.compute import ComputeModel
    from splitnet.pipeline import Action

    ckpt = SplitCheckpoint.load(args.checkpoint)
    compute = ComputeModel(ckpt)
    print(f"{ckpt.path}\n  model {ckpt.model_name}, sha256 {ckpt.sha256}")
    print(f"  unsplit model: {compute.model_macs / 1e6:.2f} M MACs, {compute.model_params:,} parameters")
    for node, point in ckpt.splits.items():
        c = point.bottleneck.config
        kind = ("light encoder on the image, decoder rebuilds the features at " + node if c.is_light
                else "bottleneck on the teacher's features at " + node)
        print(f"  {node}: {kind}; {c.prior}, latent {c.latent_channels} x 1/{2 ** c.downsample} res, widths "
              f"{list(c.widths)}, tail {'fine-tuned' if point.tail_state is not None else 'teacher'}")
        for width in c.widths:
            cost = compute.cost(Action("bottleneck", node, width, c.prior))
            print(f"    w{width:g}: device {cost.device_macs / 1e6:.2f} M MACs ({cost.device_share * 100:.2f} % of "
                  f"the model), {cost.device_params:,} device parameters; server {cost.server_macs / 1e6:.2f} M MACs")
        cmd = ckpt.meta.get("bottlenecks", {}).get(node, {}).get("command")
        if cmd:
            print(f"    trained with: {cmd}")
        if point.object_filter is not None:
            filter_cmd = ckpt.meta.get("filters", {}).get(node, {}).get("command", "")
            print(f"    object filter, threshold {point.object_filter.config.threshold:.3f}"
                  + (f", trained with: {filter_cmd}" if filter_cmd else ""))
    teacher_cmd = ckpt.meta.get("teacher_command") or ckpt.meta.get("teacher", {}).get("command")
    if teacher_cmd:
        print(f"  teacher command: {teacher_cmd}")
    if "merge_command" in ckpt.meta:
        print(f"  merge command: {ckpt.meta['merge_command']}")
    return 0
