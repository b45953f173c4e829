"""Does the live device client behave as ``splitnet simulate`` says it will?

For each evaluation trace and policy, on loopback: ``splitnet serve`` (the shipped checkpoint),
``splitnet link`` playing the trace at the profile's scale, RTT and jitter, and ``splitnet client``
(stream mode, ``--emulate-device``: the device's compute padded to the profile's times, so a
fast machine replays the profile's slow device) sending ``--frames`` validation images at
``--fps`` with the profile's deadline. Beside it, ``splitnet simulate`` runs the same policy,
profile, trace, frame rate, deadline and number of frames. Compared: the deadline-miss rate and
the mean latency.

Each pair runs live ``--repeats`` times (default 2; live runs through the same trace differ from run
to run), and the mean of the live runs is compared. Agreement: each live figure within 20 % of the
simulated one. A miss rate near zero has no meaningful relative error at a few hundred frames, so a
miss-rate difference of at most ``--miss-floor`` (absolute, default 1 pt: about one standard error of a
3 % rate over 600 frames) also counts as agreeing; the report keeps both the relative and absolute differences.

The simulator is given the deployment it is compared with. Its link model covers serialization, RTT and jitter;
the server's speed and the RPC path's own per-call time are figures of the machine, which drift from those the
profile was calibrated with (``benchmarks.rpc_path``) as the machine's load changes. So, before the pairs,
``--calibration-frames`` frames of two actions through a constant ``splitnet link`` measure the RPC path's
per-call ms (``benchmarks.rpc_path.measure_action``), and each pair's live runs give the server's mean speed
(its queue + decode + tail per offloaded frame against the profile's measured ``server_ms``, over all runs of the
pair); ``splitnet simulate --server-speed --request-overhead-ms`` simulates that deployment, with its per-call
spread (``--deployment-spread``: each live offloaded frame's server time over the mean, each calibration call's
RPC path ms; the simulator draws one of each per call, where it would otherwise give every call the same
figures, so answers that cluster just under the deadline cross it as often as live). The policies keep
the shipped profile's figures in both (a live client's policy knows only the profile). The report also keeps
the simulation with the profile's own figures (``sim_profile_figures``), and the verdict is on the deployment.

Lined up: the live link's trace clock starts when the link starts, and the client's camera a few seconds
later (the client's start-up); each run's report gives the trace time of its first frame
(``trace_s_at_first_frame``, from the link's and the camera's monotonic clocks), and the simulation starts
at the mean of those (``simulate --start-s``), its warm-up link probes just before. Not modelled alike (see
the report's ``notes``): the simulator draws images at random from the profile's, the client sends the
first ``--frames`` validation images. Both probe the link three times before the first frame.

    python -m benchmarks.live_agreement [--policies ppo robust_mpc] [--frames 600] [--repeats 2]
        [--json reports/live_agreement.json]
"""

from __future__ import annotations

import json
import re
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import benchmark_arguments, run_splitnet, serving, write_json
from benchmarks.rpc_path import constant_trace, frame_server_ms, measure_action, path_arguments
from examples import detection_loop as example
from policies.agents.recording import read_log
from policies.network.channel_models import Channel, ChannelConfig
from policies.network.trace_sets import split_files
from policies.network.traces import load_trace
from policies.simulation.profile import Profile
from policies.simulation.simulator import WARMUP_LEAD_S

ROOT = Path(__file__).resolve().parents[1]
VAL = ROOT.parent / "shared" / "data" / "cifar10" / "val.npz"
TOLERANCE = 0.20


def _agree(live: float, sim: float, floor: float = 0.0) -> dict:
    """Relative and absolute difference of ``live`` against ``sim``; agreeing within 20 % (or ``floor``)."""
    diff = live - sim
    rel = abs(diff) / sim if sim > 0 else (0.0 if diff == 0 else float("inf"))
    return {"live": live, "sim": sim, "abs_diff": diff, "rel_diff": rel,
            "agree": rel <= TOLERANCE or abs(diff) <= floor}


def _obs_log(report_json: Path) -> Path:
    """The observation log written beside a run's JSON report."""
    return report_json.with_suffix(".obs.jsonl")


def observation_summary(path: Path, link: Channel | None = None, first_frame_s: float = 0.0,
                        fps: float = 10.0) -> dict:
    """What a policy saw over a run (its ``--obs-log``): how often it had no throughput estimate, and the mean
    estimate, RTT and last-frame latency it was shown. With ``link`` (the trace at the run's scale) and the trace
    time of the first frame, also how the estimate compares with the rate the link had when each decision was
    taken: the ratio of their means and their correlation. A diagnostic: the n-th decision is placed at
    ``first_frame_s + n / fps``, so frames the camera dropped (``frames_dropped``) put it behind by as many
    frame intervals."""
    rows = read_log(path)
    known = [r["throughput_mbps"] for r in rows if r["throughput_mbps"] > 0]
    mean = lambda xs: statistics.fmean(xs) if xs else 0.0  # noqa: E731
    out = {"frames": len(rows), "no_throughput_estimate": 1 - len(known) / max(1, len(rows)),
           "throughput_mbps_mean": mean(known), "rtt_ms_mean": mean([r["rtt_ms"] for r in rows]),
           "last_latency_ms_mean": mean([r["last_latency_ms"] for r in rows]),
           "last_fallback_share": mean([float(r["last_fallback"]) for r in rows])}
    if link is not None and len(known) > 2:
        pairs = [(r["throughput_mbps"], link.rate_mbps(first_frame_s + r["frame"] / fps))
                 for r in rows if r["throughput_mbps"] > 0]
        estimate, true = (np.array(x) for x in zip(*pairs))
        out["link_mbps_mean"] = float(true.mean())
        out["estimate_over_link"] = float(estimate.mean() / true.mean())
        out["estimate_link_corr"] = float(np.corrcoef(estimate, true)[0, 1]) if true.std() > 0 else None
    return out


def _live_run(trace: Path, policy: str, server: str, profile: Profile, args, out_json: Path) -> tuple[dict, float]:
    """One live run through a fresh link; returns the client's report and the link's seconds."""
    sc = profile.scenario
    link = example.spawn_link(trace, server, out_json.parent, sc.rtt_ms, timeout_s=600, scale=sc.trace_scale,
                              jitter_ms=sc.jitter_ms)
    t_link = time.perf_counter()
    try:
        run_splitnet("client", "--server", link.address, "--policy", policy, "--emulate-device",
                     "--fps", str(args.fps), "--deadline-ms", str(args.deadline_ms), "--data", str(args.data),
                     "--limit", str(args.frames), "--quiet", "--allow-local", "--json", str(out_json),
                     "--obs-log", str(_obs_log(out_json)),
                     *(["--checkpoint", args.checkpoint] if args.checkpoint else []),
                     threads=args.threads, timeout_s=args.frames / args.fps * 5 + 300)
    finally:
        link.terminate()
    report = json.loads(out_json.read_text())
    m = re.search(r"at monotonic clock ([\d.]+) s", link.log.read_text())
    if m is None or report.get("camera_started_monotonic_s") is None:
        raise RuntimeError("the link's trace clock or the client's camera start is missing from their output")
    # both on CLOCK_MONOTONIC (time.monotonic in the link, time.perf_counter in the client: one clock on Linux)
    report["trace_s_at_first_frame"] = report["camera_started_monotonic_s"] - float(m.group(1))
    return report, time.perf_counter() - t_link


def server_times(reports: list[dict], profile: Profile) -> list[tuple[float, float]]:
    """(live queue + decode + tail ms, the profile's measured ``server_ms`` of its action) of every offloaded
    frame of ``reports``."""
    return [(frame_server_ms(f), profile.actions[profile.index(f["action"])].server_ms)
            for report in reports for f in report["frames_detail"] if f["ran_on"] == "server"]


def server_speed(reports: list[dict], profile: Profile) -> float | None:
    """The live server's speed in the profile's terms: its queue + decode + tail summed over every offloaded
    frame of ``reports`` over the profile's measured ``server_ms`` of the same frames' actions (None: no
    frame was offloaded)."""
    times = server_times(reports, profile)
    measured = sum(m for _, m in times)
    return sum(live for live, _ in times) / measured if measured > 0 else None


def server_time_factors(reports: list[dict], profile: Profile, speed: float) -> list[float]:
    """Each offloaded frame's live server ms (queue + decode + tail) over the profile's measured ms of its
    action at ``speed``: the spread about the deployment's server speed (their mean is about 1)."""
    return [round(live / (measured * speed), 4) for live, measured in server_times(reports, profile)]


def run_pair(trace: Path, policy: str, server: str, profile: Profile, args, work: Path,
             request_overhead_ms: float | None, request_overhead_samples_ms: list[float] | None = None) -> dict:
    """``args.repeats`` live runs (each through a fresh link) and the matching simulations (of the deployment
    measured live, its per-call spread included, and with the profile's figures); the live figures are the mean
    over the runs (each run is in ``live_runs``); returns them, the simulations and their agreement."""
    link = Channel(load_trace(trace), ChannelConfig(scale=profile.scenario.trace_scale))
    runs, live_reports = [], []
    for i in range(args.repeats):
        live_json = work / f"live-{policy}-{trace.name}-{i}.json"
        live, elapsed = _live_run(trace, policy, server, profile, args, live_json)
        live_reports.append(live)
        runs.append({"link_plus_client_s": elapsed, "trace_s_at_first_frame": live["trace_s_at_first_frame"],
                     "observed": observation_summary(_obs_log(live_json), link, live["trace_s_at_first_frame"],
                                                     args.fps),
                     **{k: live[k] for k in ("frames", "frames_answered", "frames_dropped", "fallback_local",
                                             "fallback_reasons", "deadline_missed", "deadline_miss_rate",
                                             "latency_ms", "actions", "chosen_actions", "bytes_mean", "probes")},
                     "stage_ms_mean": live.get("stage_ms_mean")})
    # the simulation starts where the live runs met the trace: its warm-up probes, then the first frame
    start_s = max(0.0, statistics.fmean(r["trace_s_at_first_frame"] for r in runs) - WARMUP_LEAD_S)
    deployment = {"server_speed": server_speed(live_reports, profile), "request_overhead_ms": request_overhead_ms}
    # the deployment's per-call spread: the live frames' server times, the calibration's single calls
    spread: dict[str, list[float]] = {}
    if deployment["server_speed"] is not None:
        spread["server_time_factors"] = server_time_factors(live_reports, profile, deployment["server_speed"])
    if request_overhead_samples_ms:
        spread["request_overhead_samples_ms"] = request_overhead_samples_ms
    spread_json = work / f"spread-{policy}-{trace.name}.json"
    spread_json.write_text(json.dumps(spread))
    deployment["spread"] = {k: {"count": len(v), **{f"p{q}": float(np.percentile(v, q)) for q in (5, 50, 95)}}
                            for k, v in spread.items()}
    sims, sim_obs = {}, {}
    for key, figures in (("sim", deployment), ("sim_profile_figures", {})):
        sim_json = work / f"{key}-{policy}-{trace.name}.json"
        sim_obs[key] = _obs_log(sim_json)
        run_splitnet("simulate", "--policy", policy, "--traces", str(trace), "--fps", str(args.fps),
                     "--start-s", f"{start_s:.3f}", "--deadline-ms", str(args.deadline_ms),
                     "--frames", str(args.frames), "--json", str(sim_json), "--obs-log", str(sim_obs[key]),
                     *(a for k, v in figures.items() if isinstance(v, float)
                       for a in (f"--{k.replace('_', '-')}", f"{v:.4f}")),
                     *(["--deployment-spread", str(spread_json)] if key == "sim" and spread else []),
                     "--plots", str(work / "plots" / key), threads=args.threads, timeout_s=600)
        sims[key] = json.loads(sim_json.read_text())["policies"][policy]
    sim = sims["sim"]
    miss = statistics.fmean(r["deadline_miss_rate"] for r in runs)
    latency = statistics.fmean(r["latency_ms"]["mean"] for r in runs)
    out = {"trace": str(trace), "policy": policy, "repeats": len(runs), "sim_start_s": start_s,
           "live": {"deadline_miss_rate": miss, "latency_ms_mean": latency,
                    "deadline_miss_rate_runs": [r["deadline_miss_rate"] for r in runs],
                    "latency_ms_mean_runs": [r["latency_ms"]["mean"] for r in runs]},
           "live_runs": runs,
           "deployment": deployment,
           **{key: {k: v[k] for k in v if k in ("latency_ms_mean", "deadline_miss_rate", "actions",
                                                 "fallback_rate", "reward_mean")} for key, v in sims.items()},
           "sim_observed": observation_summary(sim_obs["sim"], link, start_s + WARMUP_LEAD_S, args.fps)}
    out["miss_rate"] = _agree(miss, sim["deadline_miss_rate"], args.miss_floor)
    out["latency_mean_ms"] = _agree(latency, sim["latency_ms_mean"])
    out["agree"] = out["miss_rate"]["agree"] and out["latency_mean_ms"]["agree"]
    spread = lambda xs, f: f"{min(xs) * f:.1f}-{max(xs) * f:.1f}"  # noqa: E731
    print(f"{policy:>10} on {trace.name}: miss rate live {miss * 100:.1f} % "
          f"({spread(out['live']['deadline_miss_rate_runs'], 100)}) vs sim {sim['deadline_miss_rate'] * 100:.1f} %, "
          f"mean latency live {latency:.1f} ms ({spread(out['live']['latency_ms_mean_runs'], 1)}) vs sim "
          f"{sim['latency_ms_mean']:.1f} ms -> {'agree' if out['agree'] else 'DISAGREE'} (deployment: server "
          f"speed {_fmt(deployment['server_speed'])}, RPC path {_fmt(request_overhead_ms)} ms; with the profile's "
          f"figures the simulator says {sims['sim_profile_figures']['deadline_miss_rate'] * 100:.1f} %, "
          f"{sims['sim_profile_figures']['latency_ms_mean']:.1f} ms)", flush=True)
    return out


def _fmt(x: float | None) -> str:
    return "the profile's" if x is None else f"{x:.2f}"


def calibrate_request_overhead(server: str, profile: Profile, args, work: Path) -> dict:
    """The RPC path's per-call ms on this machine now: ``args.calibration_frames`` frames of each calibration
    action through a constant link (``benchmarks.rpc_path``), the mean excess over the actions."""
    trace = constant_trace(work / "constant.log", args.mbps, int(args.calibration_frames / args.fps) + 600)
    rows = {action: measure_action(server, profile, action, ("link",), args.calibration_frames, args, work, trace)
            for action in args.calibration_actions}
    return {"actions": rows, "mbps": args.mbps, "rtt_ms": args.rtt_ms, "frames": args.calibration_frames,
            "request_overhead_ms": statistics.fmean(r["link"]["excess_ms"]["mean"] for r in rows.values()),
            "request_overhead_samples_ms": [v for r in rows.values() for v in r["link"]["excess_ms_values"]]}


def main() -> None:
    ap = benchmark_arguments(__doc__, json_path=str(ROOT / "reports" / "live_agreement.json"))
    ap.add_argument("--policies", nargs="+", default=["ppo", "robust_mpc"])
    ap.add_argument("--traces", nargs="+", default=None, help="trace files (default: the first two evaluation traces)")
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--repeats", type=int, default=2, help="live runs per trace and policy (their mean is compared)")
    ap.add_argument("--fps", type=float, default=10.0)
    ap.add_argument("--deadline-ms", type=float, default=100.0)
    ap.add_argument("--data", default=str(VAL))
    ap.add_argument("--miss-floor", type=float, default=0.01, help="absolute miss-rate difference that agrees")
    ap.add_argument("--calibration-frames", type=int, default=150,
                    help="frames per calibration action through a constant link (0: the profile's RPC path figure)")
    ap.add_argument("--calibration-actions", nargs="+", default=["webp/q50", "layer2/w0.25"])
    path_arguments(ap)
    ap.add_argument("--keep", default=None, help="keep each run's client report and observation logs in this folder")
    args = ap.parse_args()
    profile = Profile.load()
    traces = [Path(t) for t in args.traces] if args.traces else split_files("eval")[:2]
    pairs = []
    with tempfile.TemporaryDirectory(prefix="splitnet-agree-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        with serving(checkpoint=args.checkpoint, workdir=tmp) as server:
            calibration = None
            if args.calibration_frames > 0:
                calibration = calibrate_request_overhead(server.address, profile, args, work)
                print(f"RPC path per call through the link now: {calibration['request_overhead_ms']:.2f} ms "
                      f"(the profile's: {profile.scenario.request_overhead_ms:.2f} ms)", flush=True)
            overhead = calibration["request_overhead_ms"] if calibration else None
            samples = calibration["request_overhead_samples_ms"] if calibration else None
            for trace in traces:
                for policy in args.policies:
                    pairs.append(run_pair(trace, policy, server.address, profile, args, work, overhead, samples))
    ok = all(p["agree"] for p in pairs)
    print(f"live within {TOLERANCE:.0%} of the simulator on every trace and policy: {'yes' if ok else 'NO'}")
    write_json("live_agreement", {"profile": {"checkpoint_sha256": profile.checkpoint_sha256,
                                              "device_class": profile.scenario.device_class,
                                              "trace_scale": profile.scenario.trace_scale,
                                              "server_speed": profile.scenario.server_speed,
                                              "request_overhead_ms": profile.scenario.request_overhead_ms,
                                              "rtt_ms": profile.scenario.rtt_ms,
                                              "jitter_ms": profile.scenario.jitter_ms}, "fps": args.fps,
                                  "deadline_ms": args.deadline_ms, "frames": args.frames, "repeats": args.repeats,
                                  "tolerance": TOLERANCE,
                                  "miss_floor": args.miss_floor, "calibration": calibration, "pairs": pairs,
                                  "ok": ok,
                                  "notes": ["sim simulates the deployment measured here (server speed from each "
                                            "pair's live runs, RPC path from the calibration, each with its "
                                            "per-call spread: a live frame's server-time factor and a "
                                            "calibration call's RPC path ms drawn per call); "
                                            "sim_profile_figures uses the profile's figures; the policies use the "
                                            "profile's in both",
                                            "the simulation starts at the trace time of the live runs' first "
                                            "frames (their mean; sim_start_s is where its warm-up begins)",
                                            "the simulator draws images at random from the profile's; the client "
                                            "sends the first --frames validation images"]}, args.json)


if __name__ == "__main__":
    main()
