"""Device time of every action at batch 1 against running the whole model on the device, in one run.

For each action the device's work (the teacher's head, if any, then the encoder and the
entropy coder: what ``DeviceSide.encode`` does) and the server's (decode + tail) are timed
on single frames, interleaved round by round with the local model so a noisy machine slows
both alike: ``--rounds`` rounds of ``--frames`` frames each; a round's figure is the median
over its frames and the reported figure the median of the rounds (with min and max over
rounds). ``device_to_local`` is the device's median time over the local model's, per round,
then the median over rounds. MACs come from :mod:`splitnet.compute`.

    python -m benchmarks.device_time [--checkpoint C] [--rounds 5] [--frames 50] [--json OUT]
"""

from __future__ import annotations

import statistics

import torch

from benchmarks.common import benchmark_arguments, setup, summary, write_json
from splitnet.checkpoint import DEMO_DATA
from splitnet.compute import ComputeModel
from splitnet.data import load_npz
from splitnet.pipeline import Action, DeviceSide, ServerSide
from splitnet.profiling import time_actions


def main() -> None:
    ap = benchmark_arguments(__doc__)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--actions", nargs="*", default=None, help="action names (default: every learned one + webp/q75)")
    args = ap.parse_args()
    ckpt = setup(args)
    device, server, compute = DeviceSide(ckpt), ServerSide(ckpt), ComputeModel(ckpt)
    frames = load_npz(DEMO_DATA, limit=args.frames).images
    if args.actions:
        actions = [Action.parse(a) for a in args.actions]
    else:
        actions = [a for a in device.actions(feature_codecs=(), image_qualities=(75,)) if a.kind != "local"]
    device.warm_up()
    server.warm_up()
    with torch.no_grad():  # local first in every round, then each action, interleaved
        timed = time_actions(device, server, frames, [Action("local"), *actions], args.rounds)
    local_rounds = timed["local"].device_rounds_ms
    per_round = {a.name: [{"device_ms": d, "server_ms": s, "device_to_local": d / lo}
                          for d, s, lo in zip(timed[a.name].device_rounds_ms, timed[a.name].server_rounds_ms,
                                              local_rounds)] for a in actions}
    rows = []
    print(f"local model: {statistics.median(local_rounds):.2f} ms per frame (median of {args.rounds} rounds of "
          f"{len(frames)} frames), {compute.model_macs / 1e6:.1f} M MACs")
    print(f"{'action':<20}{'device ms':>10}{'range':>14}{'dev/local %':>12}{'server ms':>10}{'dev MMAC':>10}"
          f"{'dev %':>7}")
    for action in actions:
        rounds = per_round[action.name]
        cost = compute.cost(action)
        row = {"action": action.name, **cost.to_dict(),
               "device_ms": summary([r["device_ms"] for r in rounds]),
               "server_ms": summary([r["server_ms"] for r in rounds]),
               "device_to_local": summary([r["device_to_local"] for r in rounds])}
        if action.kind == "bottleneck":
            row["encoder"] = ckpt.split(action.split).bottleneck.config.encoder
        rows.append(row)
        d = row["device_ms"]
        print(f"{action.name:<20}{d['median']:>10.3f}{d['min']:>7.2f}-{d['max']:<6.2f}"
              f"{row['device_to_local']['median'] * 100:>12.1f}{row['server_ms']['median']:>10.3f}"
              f"{cost.device_macs / 1e6:>10.2f}{cost.device_share * 100:>7.2f}")
    write_json("device_time", {"checkpoint_sha256": ckpt.sha256, "threads": args.threads, "rounds": args.rounds,
                               "frames_per_round": len(frames), "model_macs": compute.model_macs,
                               "local_ms": summary(local_rounds), "actions": rows,
                               "frames_source": DEMO_DATA.name}, args.json)


if __name__ == "__main__":
    main()
