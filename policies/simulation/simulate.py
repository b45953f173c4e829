"""Running policies over traces: the ``splitnet simulate`` report and its plots."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from policies.common.policy import FixedPolicy, Policy
from policies.network.traces import Trace
from policies.simulation.profile import Profile
from policies.simulation.simulator import FrameOutcome, OffloadSimulator, RewardWeights


@dataclass
class Run:
    """One policy on one trace."""

    trace: str
    outcomes: list[FrameOutcome] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    mbps: list[float] = field(default_factory=list)  # true throughput when each frame started


def run_policy(policy: Policy, profile: Profile, trace: Trace, fps: float = 10.0, deadline_ms: float = 100.0,
               frames: int | None = None, weights: RewardWeights | None = None, seed: int = 0,
               start_s: float = 0.0, warmup_probes: int = 3) -> Run:
    """``frames`` frames (default: the whole trace) along ``trace`` from ``start_s``: ``warmup_probes`` link probes
    first, as the device client's, the first frame ``WARMUP_LEAD_S`` later (``OffloadSimulator.warm_up``)."""
    sim = OffloadSimulator(profile, trace, fps, deadline_ms, weights, seed)
    sim.reset(start_s, seed)
    sim.warm_up(warmup_probes)
    n = frames if frames is not None else max(1, int(trace.duration_s * fps))
    names = profile.names
    wants_lookahead = getattr(policy, "name", "") == "oracle"
    run = Run(trace.name)
    end_frame = sim.frame + n
    while sim.frame < end_frame:
        obs = sim.observation(with_lookahead=wants_lookahead)
        name = policy.act(obs)
        run.mbps.append(sim.true_mbps(sim.decision_s))
        run.outcomes.append(sim.step(names.index(name)))
        run.actions.append(name)
    return run


def summarize(runs: Sequence[Run], profile: Profile | None = None) -> dict:
    """The per-policy fields of the ``splitnet simulate`` report (with the device's mean MACs per
    frame and share of the model's MACs when the profile records them)."""
    outs = [o for r in runs for o in r.outcomes]
    lat = np.asarray([o.latency_ms for o in outs])
    counts = Counter(a for r in runs for a in r.actions)
    dropped = sum(o.dropped_after for o in outs)
    arrived = len(outs) + dropped
    compute = {}
    if profile is not None and all(a.device_macs is not None for a in profile.actions):
        by_name = {a.name: a for a in profile.actions}
        compute = {key: float(sum(getattr(by_name[a], key) * c for a, c in counts.items()) / len(outs))
                   for key in ("device_macs", "server_macs", "device_share")}
        compute = {f"{k}_mean": v for k, v in compute.items()}
    return {
        "frames": arrived,
        "frames_processed": len(outs),
        "drop_rate": dropped / arrived,
        "latency_ms_mean": float(lat.mean()),
        "latency_ms_p95": float(np.percentile(lat, 95)),
        "deadline_miss_rate": (sum(o.missed for o in outs) + dropped) / arrived,
        "fallback_rate": float(np.mean([o.fallback for o in outs])),
        "top1": float(np.mean([o.correct for o in outs])),
        "energy_j_mean": float(np.mean([o.energy_j for o in outs])),
        "reward_mean": float(np.mean([o.reward for o in outs])),
        "bytes_mean": float(np.mean([o.payload_bytes for o in outs])),
        "actions": {a: c / len(outs) for a, c in counts.most_common()},
        **compute,
    }


def static_best(profile: Profile, traces: Sequence[Trace], **kw: object) -> tuple[str, dict[str, dict]]:
    """The single fixed action with the best mean reward over ``traces`` (in hindsight)."""
    scores = {}
    for name in profile.names:
        runs = [run_policy(FixedPolicy(name), profile, t, **kw) for t in traces]
        scores[name] = summarize(runs, profile)
    best = max(scores, key=lambda n: scores[n]["reward_mean"])
    return best, scores


def simulate(profile: Profile, traces: Sequence[Trace], policies: dict[str, Policy], fps: float = 10.0,
             deadline_ms: float = 100.0, frames: int | None = None, weights: RewardWeights | None = None,
             seed: int = 0, start_s: float = 0.0) -> tuple[dict, dict[str, list[Run]]]:
    """Every policy on every trace (same seeds, same frames, each run from trace time ``start_s``); returns the
    report and the runs."""
    kw = dict(fps=fps, deadline_ms=deadline_ms, frames=frames, weights=weights, seed=seed, start_s=start_s)
    runs: dict[str, list[Run]] = {}
    report_policies: dict[str, dict] = {}
    for name, policy in policies.items():
        if name == "static_best":
            best, _ = static_best(profile, traces, **kw)
            policy = FixedPolicy(best)
            policy.name = "static_best"
        runs[name] = [run_policy(policy, profile, t, **kw) for t in traces]
        report_policies[name] = summarize(runs[name], profile)
        if name == "static_best":
            report_policies[name]["action"] = policy.action
    w = weights or RewardWeights()
    sc = profile.scenario
    report = {
        "traces": [t.source or t.name for t in traces],
        "deadline_ms": deadline_ms,
        "fps": fps,
        "frames_per_trace": frames,
        "seed": seed,
        "start_s": start_s,
        "reward_weights": w.__dict__,
        "scenario": {"device_class": sc.device_class, "device_speed": sc.device_speed, "link_class": sc.link_class,
                     "trace_scale": sc.trace_scale, "rtt_ms": sc.rtt_ms, "loss": sc.loss},
        "policies": report_policies,
    }
    return report, runs


def format_report(report: dict) -> str:
    """A plain-text table of a simulate report; ``dev %`` is the device's mean share of the model's MACs."""
    lines = [f"{len(report['traces'])} traces, deadline {report['deadline_ms']:g} ms, {report['fps']:g} fps",
             f"{'policy':<22}{'lat mean':>9}{'lat p95':>9}{'miss %':>8}{'top-1 %':>8}{'energy J':>9}"
             f"{'reward':>8}{'bytes':>8}{'dev %':>7}"]
    for name, p in report["policies"].items():
        share = f"{p['device_share_mean'] * 100:>7.1f}" if "device_share_mean" in p else f"{'-':>7}"
        lines.append(f"{name:<22}{p['latency_ms_mean']:>9.1f}{p['latency_ms_p95']:>9.1f}"
                     f"{p['deadline_miss_rate'] * 100:>8.2f}{p['top1'] * 100:>8.2f}{p['energy_j_mean']:>9.3f}"
                     f"{p['reward_mean']:>8.3f}{p['bytes_mean']:>8.1f}{share}")
    return "\n".join(lines)


def plot_runs(report: dict, runs: dict[str, list[Run]], out_prefix: str | Path, trace_index: int = 0) -> list[Path]:
    """Latency CDF per policy, and the chosen action over time on one trace."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_prefix = Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, rs in runs.items():
        lat = np.sort([o.latency_ms for r in rs for o in r.outcomes])
        ax.plot(lat, np.arange(1, len(lat) + 1) / len(lat), label=name)
    ax.axvline(report["deadline_ms"], color="k", linestyle="--", linewidth=0.8, label="deadline")
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("fraction of frames")
    ax.set_title("latency CDF per policy")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(out_prefix.with_name(out_prefix.name + "_latency_cdf.png"))
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    shown = [n for n in ("oracle", "ppo", "dqn", "greedy", "static_best") if n in runs] or list(runs)[:3]
    names = sorted({a for n in shown for a in runs[n][trace_index].actions})
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True, gridspec_kw={"height_ratios": [1, 2]})
    first = runs[shown[0]][trace_index]
    t = np.asarray([o.start_s for o in first.outcomes])
    ax1.plot(t, first.mbps, color="tab:gray")
    ax1.set_ylabel("Mbit/s (true)")
    ax1.set_yscale("log")
    ax1.set_title(f"trace {first.trace}")
    for k, n in enumerate(shown):
        run = runs[n][trace_index]
        ts = [o.start_s for o in run.outcomes]
        ax2.scatter(ts, [names.index(a) + 0.15 * (k - len(shown) / 2) for a in run.actions], s=2, label=n)
    ax2.set_yticks(range(len(names)), names, fontsize=7)
    ax2.set_xlabel("trace time (s)")
    ax2.legend(fontsize=7, markerscale=4)
    fig.tight_layout()
    paths.append(out_prefix.with_name(out_prefix.name + "_actions.png"))
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)
    return paths
