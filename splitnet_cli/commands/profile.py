"""``splitnet profile``: measure every action of a checkpoint and write the profile the simulator reads."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from splitnet.errors import SplitnetError
from splitnet_cli.argtypes import asset_path, nonnegative_float, positive_float, positive_int, probability, quality
from splitnet_cli.reports import command_line, write_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    pr = sub.add_parser("profile", help="measure every action's costs and describe the scenario they model")
    pr.add_argument("--checkpoint", type=asset_path, default=None)
    pr.add_argument("--data", type=asset_path, default=None, help="npz images (default: the shipped demo sample)")
    pr.add_argument("--limit", type=positive_int, default=None)
    pr.add_argument("--qualities", type=quality, nargs="+", default=[10, 50, 90], help="WebP/JPEG qualities")
    pr.add_argument("--timing-frames", type=positive_int, default=50, help="frames per timing round")
    pr.add_argument("--timing-rounds", type=positive_int, default=5,
                    help="interleaved timing rounds; each action's ms is the median of its round medians")
    pr.add_argument("--timings-from", default=None,
                    help="take device/server ms from this profile (same machine) instead of timing again")
    pr.add_argument("--device-class", default="measured machine")
    pr.add_argument("--device-speed", type=positive_float, default=1.0, help="device ms = measured ms x this")
    pr.add_argument("--device-model", default=None,
                    help="how the device's times follow from the measured ones, and why (recorded in the scenario)")
    pr.add_argument("--server-speed", type=positive_float, default=1.0, help="server ms = measured ms x this")
    pr.add_argument("--link-class", default="trace as recorded")
    pr.add_argument("--trace-scale", type=positive_float, default=1.0, help="multiply trace throughput by this")
    pr.add_argument("--rtt-ms", type=nonnegative_float, default=40.0)
    pr.add_argument("--jitter-ms", type=nonnegative_float, default=5.0)
    pr.add_argument("--loss", type=probability, default=0.0, help="mean packet loss (Gilbert–Elliott)")
    pr.add_argument("--request-overhead-ms", type=nonnegative_float, default=0.0,
                    help="per call, the RPC path's time beyond the link model and the server's compute "
                         "(python -m benchmarks.rpc_path measures it)")
    pr.add_argument("--compute-w", type=nonnegative_float, default=5.0)
    pr.add_argument("--radio-tx-w", type=nonnegative_float, default=2.5)
    pr.add_argument("--idle-w", type=nonnegative_float, default=1.5)
    pr.add_argument("--json", required=True)
    pr.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from policies.simulation.profile import PowerModel, Profile, Scenario
    from splitnet.checkpoint import DEMO_DATA, SplitCheckpoint
    from splitnet.data import load_npz
    from splitnet.profiling import default_actions, profile_actions, width_order_violations

    ckpt = SplitCheckpoint.load(args.checkpoint)
    data = load_npz(args.data or DEMO_DATA, limit=args.limit)
    measured = profile_actions(ckpt, data, default_actions(ckpt, args.qualities),
                               timing_frames=1 if args.timings_from else args.timing_frames,
                               timing_rounds=1 if args.timings_from else args.timing_rounds)
    if args.timings_from:  # one timing measurement shared by profiles of different image sets
        timed = {a.name: a for a in Profile.load(args.timings_from).actions}
        for row in measured["actions"]:
            if row["name"] not in timed:
                raise SplitnetError(f"{args.timings_from} has no timing for action {row['name']!r}")
            src = timed[row["name"]]
            row.update(device_ms=src.device_ms, server_ms=src.server_ms, device_ms_spread=src.device_ms_spread,
                       server_ms_spread=src.server_ms_spread)
        source_on = json.loads(Path(args.timings_from).read_text()).get("measured_on", {})
        timed_how = {k: source_on[k] for k in ("timing_frames", "timing_rounds") if k in source_on}
        measured["measured_on"] = {**measured["measured_on"], **timed_how, "timings_from": args.timings_from}
        measured["width_order_violations"] = width_order_violations(measured["actions"])
    power = PowerModel(args.compute_w, args.radio_tx_w, args.idle_w)
    scenario = Scenario(args.device_class, args.device_speed, args.server_speed, args.link_class, args.trace_scale,
                        args.rtt_ms, args.jitter_ms, args.loss, power)
    scenario = replace(scenario, request_overhead_ms=args.request_overhead_ms)
    if args.device_model:
        scenario = replace(scenario, device_model=args.device_model)
    profile = Profile.from_dict({**measured, "scenario": {}})
    profile = profile.with_scenario(scenario)
    out = profile.to_dict()
    out.update({"data": measured["data"], "n_images": measured["n_images"], "measured_on": measured["measured_on"],
                "model_macs": measured["model_macs"], "width_order_violations": measured["width_order_violations"],
                "command": command_line()})
    print(f"{'action':<22}{'device ms':>10}{'server ms':>10}{'bytes':>9}{'top-1 %':>9}{'dev MMAC':>10}{'dev %':>8}"
          "   (ms scaled to the scenario)")
    for i, a in enumerate(profile.actions):
        print(f"{a.name:<22}{profile.device_ms(i):>10.2f}{profile.server_ms(i):>10.2f}{a.bytes_mean:>9.1f}"
              f"{a.top1 * 100:>9.2f}{a.device_macs / 1e6:>10.2f}{a.device_share * 100:>8.2f}")
    for problem in measured["width_order_violations"]:
        print(f"warning: {problem}: the machine was noisy, profile again")
    write_json(out, args.json)
    return 0
