"""Switching the slimmable bottleneck's width versus reloading the model from its checkpoint.

Measured side by side in one run: ``set_width`` on a loaded bottleneck, against
``SplitCheckpoint.load`` of the checkpoint file (what a device without slimmable
layers would do to change its bitrate), and against rebuilding only the one
bottleneck from the checkpoint's state dict.

    python benchmarks/width_switch.py [--checkpoint C] [--json OUT]
"""

from __future__ import annotations

import itertools

from benchmarks.common import benchmark_arguments, setup, summary, time_ms, write_json
from splitnet.bottleneck import BottleneckConfig, SlimmableBottleneck
from splitnet.checkpoint import SplitCheckpoint
from splitnet.models import read_checkpoint


def main() -> None:
    ap = benchmark_arguments(__doc__)
    ap.add_argument("--split", default=None, help="split node (default: the first light encoder, else the first)")
    args = ap.parse_args()
    ckpt = setup(args)
    light = [n for n, p in ckpt.splits.items() if p.bottleneck.config.is_light]
    node = args.split or (light + list(ckpt.splits))[0]
    point = ckpt.split(node)
    b = point.bottleneck
    cycle = itertools.cycle(b.widths)
    switch = summary(time_ms(lambda: b.set_width(next(cycle)), 5000, warmup=50))
    reload_all = summary(time_ms(lambda: SplitCheckpoint.load(ckpt.path), 10, warmup=1))
    raw = read_checkpoint(ckpt.path)["splits"][node]

    def rebuild() -> None:
        nb = SlimmableBottleneck(BottleneckConfig.from_dict(raw["config"]))
        nb.load_state_dict(raw["bottleneck"])

    rebuild_one = summary(time_ms(rebuild, 30, warmup=2))
    result = {
        "split": node,
        "set_width_ms": switch,
        "reload_checkpoint_ms": reload_all,
        "rebuild_bottleneck_ms": rebuild_one,
        "speedup_vs_reload": reload_all["median"] / switch["median"],
        "speedup_vs_rebuild_bottleneck": rebuild_one["median"] / switch["median"],
    }
    print(f"set_width median {switch['median'] * 1e3:.1f} us (p95 {switch['p95'] * 1e3:.1f} us)")
    print(f"reload checkpoint median {reload_all['median']:.1f} ms -> {result['speedup_vs_reload']:.0f}x slower")
    print(f"rebuild one bottleneck median {rebuild_one['median']:.2f} ms -> "
          f"{result['speedup_vs_rebuild_bottleneck']:.0f}x slower")
    write_json("width_switch", {"checkpoint_sha256": ckpt.sha256, **result}, args.json)


if __name__ == "__main__":
    main()
