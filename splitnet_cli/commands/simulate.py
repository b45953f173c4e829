"""``splitnet simulate``: run offloading policies over throughput traces; report and plots."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from splitnet.errors import DataError
from splitnet_cli.argtypes import nonnegative_float, positive_float, positive_int
from splitnet_cli.options import add_scenario_arguments, load_traces
from splitnet_cli.reports import write_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    sm = sub.add_parser("simulate", help="run policies over throughput traces")
    add_scenario_arguments(sm)
    sm.add_argument("--frames", type=positive_int, default=None, help="frames per trace (default: the whole trace)")
    sm.add_argument("--policy", nargs="+", required=True,
                    help="local, edge, fixed:<split>:<width>, greedy, robust_mpc, oracle, static_best, ppo, dqn, "
                         "or a policy file")
    sm.add_argument("--start-s", type=nonnegative_float, default=0.0,
                    help="trace time (s) at which each run starts (its warm-up link probes, then the first frame), "
                         "e.g. to line up with a live run through splitnet link")
    sm.add_argument("--server-speed", type=positive_float, default=None,
                    help="the simulated deployment's server: its ms = the profile's measured ms x this (default: the "
                         "profile's); the policies keep the profile's figures, as a live client does")
    sm.add_argument("--request-overhead-ms", type=nonnegative_float, default=None,
                    help="the simulated deployment's RPC path, ms per call beyond link and server (default: the "
                         "profile's; benchmarks.rpc_path measures it); the policies keep the profile's")
    sm.add_argument("--deployment-spread", default=None, metavar="JSON",
                    help="the simulated deployment's per-call spread, measured: a JSON file with "
                         "server_time_factors (factors on each offloaded frame's server ms, mean about 1) and/or "
                         "request_overhead_samples_ms (single calls' RPC path ms); one of each is drawn per call "
                         "(default: every call takes the same figures)")
    sm.add_argument("--obs-log", default=None,
                    help="write what each policy saw and chose per frame (JSON lines; with several policies, "
                         "one file each: <stem>-<policy><suffix>)")
    sm.add_argument("--json", default=None)
    sm.add_argument("--plots", default=None, help="path prefix of the plots (default: beside --json)")
    sm.set_defaults(func=run)


def _policies(names: Sequence[str], profile) -> dict:
    """The policies by report name (a policy file by its stem); ``static_best`` is picked by the simulation."""
    from policies.agents.factory import make_policy

    out = {}
    for name in names:
        key = name if not name.endswith(".zip") else Path(name).stem
        out[key] = None if name == "static_best" else make_policy(name, profile)
    return out


def _deployment_spread(path: str | None) -> dict[str, list[float]]:
    """``--deployment-spread``'s lists by name (none given: empty)."""
    if path is None:
        return {}
    from policies.simulation.profile import DEPLOYMENT_SPREAD_FIELDS

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"--deployment-spread {path}: {exc}") from exc
    unknown = sorted(set(data) - set(DEPLOYMENT_SPREAD_FIELDS)) if isinstance(data, dict) else None
    if unknown is None or unknown:
        fields = " and/or ".join(DEPLOYMENT_SPREAD_FIELDS)
        raise DataError(f"--deployment-spread {path}: expected an object with {fields}"
                        + (f", not {', '.join(unknown)}" if unknown else ""))
    for k, v in data.items():  # the values themselves are checked by Scenario (finite, >= 0)
        if not isinstance(v, list) or not v:
            raise DataError(f"--deployment-spread {path}: {k} must be a non-empty list of numbers >= 0")
    return data


def run(args: argparse.Namespace) -> int:
    from policies.simulation.profile import Profile
    from policies.simulation.simulate import format_report, plot_runs, simulate

    profile = Profile.load(args.profile)
    traces = load_traces(args.traces)
    policies = _policies(args.policy, profile)
    spread = _deployment_spread(args.deployment_spread)
    try:
        world = profile.with_deployment(server_speed=args.server_speed, request_overhead_ms=args.request_overhead_ms,
                                        **spread)
    except (TypeError, ValueError) as exc:  # a spread value that is not a finite number >= 0
        raise DataError(f"--deployment-spread {args.deployment_spread}: {exc}") from exc
    if args.obs_log:
        from policies.agents.recording import RecordingPolicy

        log = Path(args.obs_log)
        policies = {k: p if p is None else RecordingPolicy(
            p, log if len(policies) == 1 else log.with_name(f"{log.stem}-{k.replace(':', '_')}{log.suffix}"))
            for k, p in policies.items()}
    report, runs = simulate(world, traces, policies, fps=args.fps, deadline_ms=args.deadline_ms,
                            frames=args.frames, seed=args.seed, start_s=args.start_s)
    for p in policies.values():
        if hasattr(p, "close"):  # observation logs
            p.close()
    report["profile"] = profile.source
    report["deployment"] = {"server_speed": world.scenario.server_speed,
                            "request_overhead_ms": world.scenario.request_overhead_ms,
                            **{f"{k}_count": len(getattr(world.scenario, k)) for k in spread},
                            "differs_from_profile": world is not profile}
    print(format_report(report))
    write_json(report, args.json)
    if args.json or args.plots:
        prefix = args.plots or str(Path(args.json).with_suffix(""))
        for path in plot_runs(report, runs, prefix):
            print(f"wrote {path}")
    return 0
