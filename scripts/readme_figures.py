"""Write the README's generated tables from the JSON reports committed under ``reports/``.

Each generated block sits between ``<!-- generated: NAME -->`` and ``<!-- end: NAME -->`` in
README.md and is rebuilt from one report; nothing in it is typed by hand.

    python scripts/readme_figures.py          # rewrite the blocks
    python scripts/readme_figures.py --check  # exit 1 if README.md differs from the reports (a test runs this)
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports"
README = ROOT / "README.md"


def _load(name: str) -> dict:
    """A committed report, with ``_file`` (its name under reports/) for the provenance line."""
    return {**json.loads((REPORTS / name).read_text()), "_file": name}


def _provenance(report: dict) -> str:
    commit = report.get("commit", "")[:10] or "unknown"
    return (f"<sub>`reports/{report['_file']}`: `{report.get('command', '')}` on {report.get('date', '')[:10]}, "
            f"commit {commit}, {report.get('machine', {}).get('cpu_count', '?')} CPU cores.</sub>")


def _name(c: dict) -> str:
    if c["kind"] in ("bottleneck", "bottleneck+filter"):
        what = "light encoder" if c.get("encoder") == "light" else "teacher head + bottleneck"
        what += " + object filter" if c["kind"] == "bottleneck+filter" else ""
        return f"`{c['split']}/w{c['width']:g}` ({what})"
    if c["kind"] == "features":
        return f"`{c['split']}/{c['codec']}` (teacher head + raw features)"
    if c["kind"] == "input":
        label = {"jpeg": "JPEG", "webp": "WebP", "png": "PNG"}.get(c["codec"], c["codec"])
        return label + (f" q{c['quality']}" if c.get("quality") is not None else "")
    return {"local": "local (whole model on the device)", "local_label": "local + class id sent (1 byte)"}[c["kind"]]


def _verdict_line(summary: dict, score: str) -> str:
    b, i, ratio = summary.get("smallest_bottleneck"), summary.get("smallest_image"), \
        summary.get("image_to_bottleneck_bytes_ratio")
    budget = f"device ≤ {summary['device_budget'] * 100:g} % of the model's MACs"
    image = f"{_name(i)}: {i[score] * 100:.2f} at {i['bytes_mean']:.1f} B" if i else "none"
    if not b:
        return f"| {budget} | none | {image} | – |"
    return (f"| {budget} | {_name(b)}: {b[score] * 100:.2f} at {b['bytes_mean']:.1f} B "
            f"({b['device_share'] * 100:.1f} % on the device) | {image} | "
            + (f"**{ratio:.1f}×** |" if ratio else "– |"))


def _headline(report: dict, score: str, tolerance: str) -> str:
    """The verdict at the report's own device budget, as one sentence."""
    s = report["summary"]
    b, i, ratio = s["smallest_bottleneck"], s["smallest_image"], s["image_to_bottleneck_bytes_ratio"]
    budget = f"with the device doing at most {s['device_budget'] * 100:g} % of the model's MACs"
    if not b:
        return f"**Headline: {budget}, no learned configuration is within {tolerance} yet.**"
    if not i:
        return f"**Headline: {budget}, {_name(b)} is within {tolerance} at {b['bytes_mean']:.1f} B.**"
    return (f"**Headline: {budget}, {_name(b)} is within {tolerance} at {b['bytes_mean']:.1f} B, "
            f"{ratio:.1f}× fewer bytes than {_name(i)} ({i['bytes_mean']:.1f} B).**")


def _rate_table(report: dict, score: str, score_title: str, keep: Callable[[dict], bool]) -> list[str]:
    rows = [f"| configuration | {score_title} | bytes/frame | device MACs (M) | device share | server MACs (M) |",
            "|---|---:|---:|---:|---:|---:|"]
    for c in report["configs"]:
        if keep(c):
            rows.append(f"| {_name(c)} | {c[score] * 100:.2f} | {c['bytes_mean']:.1f} | {c['device_macs'] / 1e6:.2f} | "
                        f"{c['device_share'] * 100:.2f} % | {c['server_macs'] / 1e6:.2f} |")
    return rows


def _frontier(report: dict, score: str, tolerance: str) -> list[str]:
    rows = [f"| device budget | smallest learned configuration within {tolerance} | smallest JPEG/WebP within "
            f"{tolerance} | fewer bytes |", "|---|---|---|---:|"]
    return rows + [_verdict_line(s, score) for s in report["frontier"]]


def _image_rows_near_floor(report: dict, score: str, floor: float) -> set[int]:
    """Per image codec, the smallest setting at or above the floor and the largest below it."""
    keep: set[int] = set()
    for codec in ("jpeg", "webp", "png"):
        rows = sorted((c for c in report["configs"] if c["kind"] == "input" and c["codec"] == codec),
                      key=lambda c: c["bytes_mean"])
        above = [c for c in rows if c[score] >= floor]
        below = [c for c in rows if c[score] < floor]
        keep |= {id(c) for c in (above[:1] + below[-1:])}
    return keep


def _eval_block(file: str, score: str, score_title: str, intro: Callable[[dict], str], headline: str, verdicts: str,
                tolerance: str, kinds: tuple[str, ...], feature_codec: str | None = None) -> str:
    """An eval report's block: intro, headline verdict, rate table (learned rows, the image settings around
    the accuracy floor, one raw-feature codec), the frontier of verdicts and the report's provenance."""
    report = _load(file)
    near = _image_rows_near_floor(report, score, report["summary"]["accuracy_floor"])

    def keep(c: dict) -> bool:
        return c["kind"] in kinds or id(c) in near or (c["kind"] == "features" and c["codec"] == feature_codec)

    lines = [intro(report), "", _headline(report, score, headline), ""]
    lines += _rate_table(report, score, score_title, keep)
    lines += ["", verdicts, ""] + _frontier(report, score, tolerance)
    return "\n".join(lines + ["", _provenance(report)])


def classifier_block() -> str:
    return _eval_block(
        "eval_resnet56_cifar.json", "top1", "top-1 %",
        lambda r: f"ResNet-56 on the {r['n_images']:,} validation images: teacher **{r['teacher_top1'] * 100:.2f} %** "
                  f"top-1, {r['model_macs'] / 1e6:.1f} M MACs per image.",
        "1 pt of the teacher", "Verdicts (smallest configuration within 1 pt of the teacher's top-1, by device "
        "budget):", "1 pt", ("local", "local_label", "bottleneck"), "int8+zstd")


def detector_block() -> str:
    return _eval_block(
        "eval_tinydet_synth.json", "map_50", "mAP@0.5",
        lambda r: f"`tinydet_synth` on {r['n_images']:,} validation scenes: unsplit "
                  f"**{r['teacher_map_50'] * 100:.2f}** mAP@0.5, {r['model_macs'] / 1e6:.1f} M MACs a frame.",
        "2 mAP@0.5 points of the unsplit detector",
        "Verdicts (smallest configuration within 2 mAP@0.5 points of the unsplit detector):", "2 pts",
        ("local", "local_label", "bottleneck", "bottleneck+filter"))


def device_time_block() -> str:
    report = _load("device_time.json")
    local = report["local_ms"]
    lines = [f"Local model: {local['median']:.2f} ms per frame at batch 1 "
             f"(rounds {local['min']:.2f}–{local['max']:.2f}).",
             "", "| action | device ms (head + encode) | rounds min–max | "
             "of local time (median of the rounds' ratios) | device share of MACs |",
             "|---|---:|---:|---:|---:|"]
    for a in report["actions"]:
        d = a["device_ms"]
        lines.append(f"| `{a['action']}`{' (light)' if a.get('encoder') == 'light' else ''} | {d['median']:.3f} | "
                     f"{d['min']:.3f}–{d['max']:.3f} | {a['device_to_local']['median'] * 100:.1f} % | "
                     f"{a['device_share'] * 100:.2f} % |")
    return "\n".join(lines + ["", _provenance(report)])


def light_speed_block() -> str:
    coder, switch = _measured("coder_speed"), _measured("width_switch")

    def rows_of(run: dict) -> dict:
        return {(r["split"], r["width"]): r for r in run["rows"] if r.get("encoder") == "light" and r["batch"] == 1}

    per_run = [rows_of(run) for run in coder]
    lines = [f"Batch 1, ms per frame, {_of_runs(coder)}:", "",
             "| light encoder | encode ms | decode ms | encode + decode ms | bytes |", "|---|---:|---:|---:|---:|"]
    for key, first in per_run[0].items():
        rows = [run[key] for run in per_run if key in run]
        lines.append(f"| `{key[0]}/w{key[1]:g}` | " + " | ".join(
            _span([r[f] for r in rows], ".3f") for f in
            ("encode_ms_per_frame", "decode_ms_per_frame", "encode_decode_ms_per_frame"))
            + f" | {first['bytes_mean']:.1f} |")
    lines += ["", f"Switching the width of `{switch[0]['split']}` (`set_width`), {_of_runs(switch)}: median "
              f"{_spread([r['set_width_ms']['median'] * 1e3 for r in switch], '.1f')} µs (p95 "
              f"{_spread([r['set_width_ms']['p95'] * 1e3 for r in switch], '.1f')} µs); reloading the checkpoint "
              f"instead: {_spread([r['reload_checkpoint_ms']['median'] for r in switch], '.0f')} ms.", "",
              _sources(coder), _sources(switch)]
    return "\n".join(lines)


_SCENARIOS = {
    "local_paced": "local only, 10 FPS (reference latency)",
    "local_unpaced": "local only, unpaced (reference time)",
    "slow_greedy": "0.2 Mbit/s, `greedy` (self-calibrated)",
    "slow_fixed": "0.2 Mbit/s, fixed offloading action",
    "recovery": "0.2 Mbit/s, then 5 Mbit/s, fixed action",
    "near_dead": "0.001 Mbit/s, no deadline, fixed action",
    "loopback_calibrated": "loopback, `greedy` self-calibrated",
    "loopback_profile": "loopback, `greedy` on the profile's device",
}


def control_loop_block() -> str:
    runs = _measured("control_loop")
    report, n = runs[0], len(runs)
    lines = [f"RTT {report['rtt_ms']:g} ms, deadline {report['deadline_ms']:g} ms where given, 300 demo frames, "
             f"fixed action `{report['action']}`"
             + (f", recovery with `{report['recovery_action']}`" if report.get("recovery_action") else "")
             + f"; {_of_runs(runs)}. Every frame gets a result (one the server does not answer in time runs on the "
             "device), so the figure that matters is how many the server answered.", "",
             "| scenario | mean ms | p95 ms | max ms | run s | deadline missed | answered by the server | "
             "actions |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    names = dict(_SCENARIOS)
    if "recovery_rtt_ms" in report:
        names["recovery"] = (f"{report['recovery_slow_mbps']:g} Mbit/s, then 5 Mbit/s, "
                             f"RTT {report['recovery_rtt_ms']:g} ms, fixed action")
    for name in report["scenarios"]:
        rows = [run["scenarios"][name] for run in runs if name in run["scenarios"]]
        action_names = sorted({a for r in rows for a in r["actions"]},  # most frames first, then by name
                              key=lambda a: (-statistics.median(r["actions"].get(a, 0) for r in rows),
                                             -sum(r["actions"].get(a, 0) for r in rows), a))
        actions = ", ".join(f"`{a}` {_span([r['actions'].get(a, 0) for r in rows], '.0f')}" for a in action_names)
        base, _, run = name.partition("_")
        label = f"{names['recovery']} (run {run})" if base == "recovery" and run.isdigit() else names.get(name, name)
        lines.append(f"| {label} | " + " | ".join(_span([get(r) for r in rows], fmt) for get, fmt in (
            (lambda r: r["latency_ms"]["mean"], ".1f"), (lambda r: r["latency_ms"]["p95"], ".1f"),
            (lambda r: r["latency_ms"]["max"], ".1f"), (lambda r: r["elapsed_s"], ".1f"),
            (lambda r: r["deadline_missed"], ".0f"), (lambda r: r["offloaded"], ".0f")))
            + f"/{rows[0]['results']} | {actions} |")
    checks = [run["checks"] for run in runs]

    def met(key: str) -> str:
        ok = [c[key] for c in checks]
        if n == 1:
            return "met" if all(ok) else "NOT met"
        return f"met in {sum(ok)} of {n} runs" + ("" if all(ok) else ", so NOT met")

    claims = []
    for name in ("slow_greedy", "slow_fixed"):
        if f"{name}_mean_over_local" in checks[0]:
            claims.append(f"{_SCENARIOS[name]}: mean latency "
                          f"{_spread([c[f'{name}_mean_over_local'] for c in checks], '.2f')}× local-only "
                          f"(target ≤ 1.3×, {met(f'{name}_ok')})")
    if "recovery_s" in checks[0]:
        tries = [t for c in checks for t in (c.get("recovery_runs") or [c])]
        back = [t["recovery_s"] for t in tries if t["recovery_s"] is not None]
        held = [t["recovered_offloaded_share"] for t in tries if t.get("recovered_offloaded_share") is not None]
        ok = sum(bool(t["recovery_ok"]) for t in tries)
        each = "; ".join((f"run {i}: " if n > 1 else "") + ", ".join(
            f"{t['recovery_s']:.2f}" if t["recovery_s"] is not None else "never"
            for t in (c.get("recovery_runs") or [c])) for i, c in enumerate(checks, 1))
        claims.append("after the rise the client offloads in time again, and keeps doing so (≥ 80 % of the next "
                      "second's frames answered remotely in time): "
                      + (f"median {statistics.median(back):.2f} s later" if back else "never")
                      + f" (each recovery, s: {each}); within 2 s in {ok} of "
                      f"{len(tries)} (target ≤ 2 s in every one, " + ("met" if ok == len(tries) else "NOT met") + ")"
                      + (f"; from then on a median {statistics.median(held):.0%} of the frames are answered remotely "
                         f"in time (least {min(held):.0%})" if held else ""))
    if "near_dead_time_over_local" in checks[0]:
        claims.append(f"near-dead link: 300 frames in "
                      f"{_spread([c['near_dead_time_over_local'] for c in checks], '.2f')}× local-only's time, "
                      f"slowest frame {_spread([c['near_dead_max_latency_ms'] for c in checks], '.0f')} ms "
                      f"(targets ≤ 1.2× and within the default budget, {met('near_dead_ok')})")
    return "\n".join(lines + [""] + [f"- {c}" for c in claims] + ["", _sources(runs)])


_RATE_VERDICT = {True: "sustained", False: "not sustained", None: "a slower link: no rate target, latency bound only"}


def detection_loop_block() -> str:
    """The perception loop of ``examples/detection_loop.py`` through ``splitnet link``, one line per trace."""
    runs = _measured("detection_loop")
    first, n = runs[0], len(runs)
    deadline = first["deadline_ms"]
    lines = [f"`python -m benchmarks.detection_loop` (the perception loop of `examples/detection_loop.py`: "
             f"`SplitDetector`, `{first['policy']}`, a {first['fps']:g} FPS camera, deadline {deadline:g} ms, "
             f"through `splitnet link` with RTT {first['rtt_ms']:g} ms, {first['seconds']:g} s per trace; "
             f"{_of_runs(runs)}):", ""]

    def times(flags: list[bool]) -> str:
        return f"in {sum(flags)} of {n} runs" if n > 1 else ""

    for i, s0 in enumerate(first["scenarios"]):
        rows = [run["scenarios"][i] for run in runs]
        sustained = [r["check"].get("rate_sustained") for r in rows]
        verdict = (_RATE_VERDICT[None] if sustained[0] is None else
                   f"sustained {times(sustained)}" if n > 1 else _RATE_VERDICT[sustained[0]])
        kept = [r["check"]["latency_bounded"] for r in rows]
        kept_text = (f"kept {times(kept)}" if n > 1 else "kept" if kept[0] else "NOT kept")

        def over(get: Callable[[dict], float], fmt: str, rows: list[dict] = rows) -> str:
            return _span([get(r) for r in rows], fmt)

        lines.append(
            f"- {s0['scenario']} Mbit/s: **{over(lambda r: r['result_fps'], '.2f')} results/s** ({verdict}), "
            f"latency p50 {over(lambda r: r['latency_ms']['p50'], '.0f')} ms, "
            f"p95 {over(lambda r: r['latency_ms']['p95'], '.0f')} ms, "
            f"max {over(lambda r: r['latency_ms']['max'], '.0f')} ms "
            f"(bound {s0['check']['latency_bound_ms']:.0f} ms: {kept_text}); "
            f"{over(lambda r: r['frames_submitted'], '.0f')} frames: "
            f"{over(lambda r: r['offloaded'], '.0f')} answered by the server, "
            f"{over(lambda r: r['fallbacks'], '.0f')} ran locally, {over(lambda r: r['dropped'], '.0f')} "
            f"dropped as stale, {over(lambda r: r['filtered'], '.0f')} kept off the link by the filter, "
            f"{max(r['unaccounted'] for r in rows)} unaccounted{' in any run' if n > 1 else ''}; "
            f"{over(lambda r: r['bytes_per_sent_frame'], '.0f')} B per sent frame")
    return "\n".join(lines + ["", _sources(runs)])


def _q(values: list[float], twentieth: int) -> float:
    """The ``twentieth``/20 quantile of ``values`` (1: 5th percentile, 19: 95th)."""
    return statistics.quantiles(values, n=20, method="inclusive")[twentieth - 1]


def _spread_sentence(report: dict) -> str:
    """How the deployment's per-call spread was simulated, when the report's simulations drew one."""
    spreads = [p["deployment"].get("spread") for p in report["pairs"]]
    if not all(spreads):
        return ""
    rpc = report["calibration"]["request_overhead_samples_ms"] if report.get("calibration") else []
    rpc_text = (f" and the RPC path of one of the calibration's {len(rpc)} calls "
                f"(5th–95th percentile {_q(rpc, 1):.1f}–{_q(rpc, 19):.1f} ms)") if rpc else ""
    factors = [s["server_time_factors"] for s in spreads if "server_time_factors" in s]
    low, high = min(f["p5"] for f in factors), max(f["p95"] for f in factors)
    return (f", each with its spread: every simulated call draws the server time of one of the pair's live "
            f"frames (over their mean: 5th–95th percentile {low:.2f}–{high:.2f}× across pairs){rpc_text}, where "
            "the simulator otherwise gives every call the same figures")


def live_agreement_block() -> str:
    """Live client through ``splitnet link`` against ``splitnet simulate``, per trace and policy."""
    report = _load("live_agreement.json")
    lines = [f"{report['frames']} frames at {report['fps']:g} FPS, deadline {report['deadline_ms']:g} ms, the shipped "
             f"profile's device emulated (`--emulate-device`) and link (traces at "
             f"{report['profile']['trace_scale']:g}× their throughput, RTT {report['profile']['rtt_ms']:g} ms"
             + (f", jitter {report['profile']['jitter_ms']:g} ms" if "jitter_ms" in report["profile"] else "")
             + "). "
             f"Agreement: within "
             f"{report['tolerance']:.0%} (miss rates also within {report['miss_floor'] * 100:g} pt).", "",
             f"Live figures are the mean of {report.get('repeats', 1)} runs per pair (their range in brackets).", ""]
    calibration = report.get("calibration")
    if calibration is not None:
        lines += [f"The simulator is given the deployment measured here: each pair's server speed (the live "
                  f"server's queue + decode + tail over the profile's measured server ms; the profile says "
                  f"{report['profile']['server_speed']:.2f}) and the RPC path's per-call time, "
                  f"{calibration['request_overhead_ms']:.2f} ms through a constant link just before (the profile "
                  f"says {report['profile']['request_overhead_ms']:.2f} ms)" + _spread_sentence(report)
                  + ". The policies use the profile's figures, live and simulated. The column \"sim with the "
                  "profile's figures\" is the simulation without the deployment's figures.", ""]
    with_estimate = all("estimate_over_link" in p.get("sim_observed", {}) for p in report["pairs"])
    lines += ["| trace | policy | miss rate live / sim | mean latency ms live / sim | live: answered by the server, "
              "fallbacks, dropped by the camera (per run) | agree | server speed | sim with the profile's figures: "
              "miss, latency ms |" + (" throughput estimate / link rate, live runs / sim |" if with_estimate else ""),
              "|---|---|---:|---:|---:|---|---:|---:|" + ("---:|" if with_estimate else "")]
    for p in report["pairs"]:
        miss, lat = p["miss_rate"], p["latency_mean_ms"]
        runs = p.get("live_runs", [p["live"]])
        miss_runs = [r["deadline_miss_rate"] * 100 for r in runs]
        lat_runs = [r["latency_ms"]["mean"] for r in runs]
        answered = ", ".join(f"{r['frames_answered']}/{r['frames']} {r['fallback_local']} {r['frames_dropped']}"
                             for r in runs)
        lines.append(f"| {Path(p['trace']).name[:24]} | `{p['policy']}` | {miss['live'] * 100:.1f} % "
                     f"({min(miss_runs):.1f}–{max(miss_runs):.1f}) / {miss['sim'] * 100:.1f} % | {lat['live']:.1f} "
                     f"({min(lat_runs):.1f}–{max(lat_runs):.1f}) / {lat['sim']:.1f} | {answered} | "
                     f"{'yes' if p['agree'] else '**no**'} | "
                     + (f"{p['deployment']['server_speed']:.2f} | "
                        if (p.get("deployment") or {}).get("server_speed") is not None else "— | ")
                     + (f"{p['sim_profile_figures']['deadline_miss_rate'] * 100:.1f} %, "
                        f"{p['sim_profile_figures']['latency_ms_mean']:.1f} |"
                        if "sim_profile_figures" in p else "— |")
                     + (" " + ", ".join(f"{r['observed']['estimate_over_link']:.2f}" for r in runs)
                        + f" / {p['sim_observed']['estimate_over_link']:.2f} |" if with_estimate else ""))
    apart = []
    for p in report["pairs"]:
        if not p["agree"]:
            off = [f"{what} {p[key]['live'] * scale:.1f}{unit} live against {p[key]['sim'] * scale:.1f}{unit}"
                   for key, what, scale, unit in (("miss_rate", "misses", 100, " %"),
                                                  ("latency_mean_ms", "mean latency", 1, " ms"))
                   if not p[key]["agree"]]
            apart.append(f"{Path(p['trace']).name[:24]} `{p['policy']}` ({'; '.join(off)})")
    lat_gaps = [abs(p["latency_mean_ms"]["live"] / p["latency_mean_ms"]["sim"] - 1) * 100 for p in report["pairs"]]
    lines += ["", f"Within the tolerance: **{len(report['pairs']) - len(apart)} of {len(report['pairs'])} pairs**"
              + (f"; not: {', '.join(apart)}." if apart else ".")
              + f" Mean latency, live against simulated: within {max(lat_gaps):.1f} % in every pair."]
    return "\n".join(lines + ["", _provenance(report)])


def rpc_path_block() -> str:
    """The RPC path's time per call beyond the link model, and the live server's time against the profile's: the
    run the shipped profile was calibrated from (``reports/rpc_path.json``) and the runs that measured it again."""
    calibration, runs = _load("rpc_path.json"), _measured("rpc_path")
    first = runs[0]
    scenario = json.loads((ROOT / "policies" / "assets" / "profile.json").read_text())["scenario"]
    lines = [f"{first['frames']} frames per run at {first['fps']:g} FPS, through `splitnet link` on a constant "
             f"{first['mbps']:g} Mbit/s (RTT {first['rtt_ms']:g} ms, no jitter) and directly; {_of_runs(runs)}:", "",
             "| action | beyond the link model, direct: mean ms | through the link: mean ms | "
             "server ms live | server ms in the profile |", "|---|---:|---:|---:|---:|"]
    for name, row in first["actions"].items():
        rows = [run["actions"][name] for run in runs if name in run["actions"]]
        server = [(r["direct"]["server_ms"]["mean"] + r["link"]["server_ms"]["mean"]) / 2 for r in rows]
        lines.append(f"| `{name}` | {_span([r['direct']['excess_ms']['mean'] for r in rows], '.2f')} | "
                     f"{_span([r['link']['excess_ms']['mean'] for r in rows], '.2f')} | "
                     f"{_span(server, '.2f')} | "
                     f"{row['profile_server_ms']:.2f} |")
    lines += ["", f"The shipped profile's scenario charges each call **{scenario['request_overhead_ms']:g} ms** "
                  f"(`request_overhead_ms`) and runs the server at **{scenario['server_speed']:.2f}×** its profiled "
                  f"time (`server_speed`): the calibration run, `reports/rpc_path.json` "
                  f"({calibration['request_overhead_ms']:.2f} ms, of which the RPC stack alone "
                  f"{calibration['stack_only_ms']:.2f} ms; {calibration['server_slowdown']:.2f}×)."]
    if len(runs) > 1:
        lines[-1] += (f" Measured again: {_spread([r['request_overhead_ms'] for r in runs], '.2f')} ms per call "
                      f"(stack alone {_spread([r['stack_only_ms'] for r in runs], '.2f')} ms), server "
                      f"{_spread([r['server_slowdown'] for r in runs], '.2f')}×.")
    return "\n".join(lines + ["", _provenance(calibration)] + ([_runs_provenance(runs)] if len(runs) > 1 else []))


def _action_cost(report: dict) -> str:
    """The report's frame action with its device and server MACs and the device's share of the model."""
    cost = report["action_compute"]
    return (f"`{report['policy']}`: {cost['device_macs'] / 1e6:.2f} M MACs on the device, "
            f"{cost['device_share'] * 100:.1f} % of the model; {cost['server_macs'] / 1e6:.1f} M on the server")


def grpc_overhead_block() -> str:
    report = _load("grpc_overhead.json")
    s = report["summary_ms"]
    names = [k[: -len("_overhead_ms")] for k in s if k.endswith("_overhead_ms")]
    label = {"direct": "`splitnet serve` (embedded)", "ray": "`splitnet serve --engine ray` (1 replica)",
             "stream": "`splitnet serve` (embedded), one open `InferStream`"}
    lines = [f"Same `InferRequest` ({report['request_bytes']} bytes, {_action_cost(report)}), "
             f"{report['rounds']} rounds of {report['calls_per_round']} interleaved calls; "
             f"bare `grpcio` echo round trip: median {s['echo_ms']['median']:.3f} ms; the machine's 1-minute load "
             f"average at the run: {report.get('host_load_1min', float('nan')):.2f}.", "",
             "| server | Infer round trip ms | server decode + tail ms | overhead ms (median of rounds) | "
             "rounds min–max | target ≤ " + f"{report['target_ms']:g} ms |", "|---|---:|---:|---:|---:|---|"]
    for n in names:
        o = s[f"{n}_overhead_ms"]
        lines.append(f"| {label.get(n, n)} | {s[f'{n}_rtt_ms']['median']:.3f} | {s[f'{n}_compute_ms']['median']:.3f} | "
                     f"{o['median']:.3f} | {o['min']:.3f}–{o['max']:.3f} | "
                     f"{'met' if report['target_met'][n] else 'NOT met'} |")
    transport = {"direct": "grpc.aio, protobuf, the client's conversions, and everything's slower start after the "
                           "model's compute: the ladder below",
                 "ray": "Ray Serve's gRPC proxy and its hop to the replica, protobuf, the client's conversions",
                 "stream": "as for `Infer`, less a call's headers and trailers, plus the client's hand-off to its "
                           "stream's sending thread"}
    parts = [f"{label.get(n, n)}: {b['server_own_p50']:.3f} ms in the server's `own` stage (payload checks, top-k, "
             f"hand-offs, building the response; median over the run's frames) and {b['transport_beyond_echo']:.3f} ms "
             f"beyond the echo outside it ({transport.get(n, 'the rest')})"
             for n, b in report.get("breakdown_ms", {}).items()]
    if parts:
        lines += ["", "Where the overhead goes — " + "; ".join(parts) + "."]
    if "stream_minus_direct_ms" in s:
        d = s["stream_minus_direct_ms"]
        lines += ["", f"A frame on an open stream costs {d['median']:+.3f} ms against a unary `Infer` on the embedded "
                      f"server (compute removed; rounds {d['min']:+.3f}–{d['max']:+.3f})."]
    if "ray_minus_direct_ms" in s:
        d = s["ray_minus_direct_ms"]
        lines += ["", f"The Ray Serve path costs {d['median']:.3f} ms more per frame than the embedded server "
                      f"(compute removed; rounds {d['min']:.3f}–{d['max']:.3f})."]
    return "\n".join(lines + ["", _provenance(report)])


LADDER_CODE_STEPS = ("DecodeTail_minus_Tail", "Answer_minus_DecodeTail", "Infer_minus_Answer")


def overhead_ladder_block() -> str:
    report = _load("overhead_ladder.json")
    s, steps, what = report["series_ms"], report["steps_ms"], report["what_each_step_adds"]
    names = list(s)
    lines = [f"Same `InferRequest` ({_action_cost(report)}), "
             f"{report['rounds']} rounds of {report['calls_per_round']} "
             "calls per method in a shuffled order; each call's round trip minus the compute the server reports:", "",
             "| method | round trip minus compute, ms | step over the row above, ms (rounds min–max) | "
             "what the step adds |", "|---|---:|---:|---|"]
    for prev, n in zip([None, *names], names):
        step = steps.get(f"{n}_minus_{prev}")
        lines.append(f"| `{n}` | {s[n]['median']:.3f} | "
                     + (f"{step['median']:+.3f} ({step['min']:+.3f}–{step['max']:+.3f}) | {what[f'{n}_minus_{prev}']} |"
                        if step else "— | the bare `grpcio` echo (another process) |"))
    code = sum(steps[k]["median"] for k in LADDER_CODE_STEPS)
    warm = report["warm_code_ms"]["median"]
    names = ", ".join(f"`{k.split('_minus_')[0]}`" for k in LADDER_CODE_STEPS)
    lines += ["", f"The steps that add splitnet's code ({names}) sum to {code:.3f} ms; the same code in a hot loop, "
                  "in process with no model between (parse, payload checks, top-k, the response, stats), takes "
                  f"{warm:.4f} ms per frame: {code / warm:.0f}×."]
    return "\n".join(lines + ["", _provenance(report)])


def _runs(name: str) -> list[dict]:
    """Every run of a benchmark measured several times (``reports/<name>/run-*.json``)."""
    files = sorted((REPORTS / name).glob("run-*.json"))
    if not files:
        raise FileNotFoundError(f"no runs under reports/{name}/ (scripts/run_reports.sh measures them)")
    return [{**json.loads(f.read_text()), "_file": f"{name}/{f.name}"} for f in files]


def _span(values: list[float], fmt: str, count: bool = False) -> str:
    """``median (min–max)`` of one figure over repeated runs (``count``: with the number of runs, for text whose
    table header does not say it)."""
    ordered = sorted(values)
    mid = format(statistics.median(ordered), fmt)
    if len(ordered) == 1:
        return mid
    return f"{mid} ({format(ordered[0], fmt)}–{format(ordered[-1], fmt)}{f', {len(ordered)} runs' if count else ''})"


def _spread(values: list[float], fmt: str) -> str:
    """``median (min–max, n runs)`` of one figure over repeated runs."""
    return _span(values, fmt, count=True)


def _measured(name: str) -> list[dict]:
    """Every run of a benchmark: ``reports/<name>/run-*.json`` when it was measured several times, else the one
    report ``reports/<name>.json``."""
    return _runs(name) if (REPORTS / name).is_dir() else [_load(f"{name}.json")]


def _sources(runs: list[dict]) -> str:
    """The provenance line of a benchmark's runs (one report or a folder of runs)."""
    return _runs_provenance(runs) if "/" in runs[0]["_file"] else _provenance(runs[0])


def _of_runs(runs: list[dict]) -> str:
    return "one run" if len(runs) == 1 else f"median of {len(runs)} runs (min–max)"


def benchmarks_block() -> str:
    switch, sim = _measured("width_switch"), _measured("sim_speed")
    over, batch, load = _runs("runtime_overhead"), _runs("batching_gain"), _runs("load_test")
    rows = [
        ("width switch", "python -m benchmarks.width_switch",
         f"`set_width` median {_spread([r['set_width_ms']['median'] * 1e3 for r in switch], '.0f')} µs; reloading "
         f"the checkpoint {_spread([r['reload_checkpoint_ms']['median'] for r in switch], '.0f')} ms "
         f"({_spread([r['speedup_vs_reload'] for r in switch], ',.0f')}× slower), rebuilding one bottleneck "
         f"{_spread([r['rebuild_bottleneck_ms']['median'] for r in switch], '.1f')} ms "
         f"({_spread([r['speedup_vs_rebuild_bottleneck'] for r in switch], ',.0f')}×)"),
        ("runtime overhead", "python -m benchmarks.runtime_overhead",
         f"`{over[0]['policy']}`, unary end-to-end minus in-process compute, median ms: "
         f"{_spread([r['overhead_ms_median'] for r in over], '.2f')}; unary latency "
         f"{_spread([r['unary_latency_ms']['median'] for r in over], '.2f')} ms"),
        ("streaming gain", "same runs",
         f"stream against unary frames/s: {_spread([r['stream_over_unary'] for r in over], '.2f')}×; with head and "
         f"encoder over device batches of {over[0]['device_batch']}: "
         f"{_spread([r['stream_device_batch_over_unary'] for r in over], '.2f')}×"),
        ("micro-batching", "python -m benchmarks.batching_gain",
         f"{batch[0]['streams']} streams × {batch[0]['frames_per_stream']} frames of `{batch[0]['policy']}`: answered "
         f"OK at max batch 32 against batch 1: {_spread([r['gain'] for r in batch], '.2f')}× "
         f"({_spread([r['max_batch_32']['ok_fps'] for r in batch], '.0f')} against "
         f"{_spread([r['max_batch_1']['ok_fps'] for r in batch], '.0f')} frames/s); refused by the bounded queue "
         f"(RESOURCE_EXHAUSTED) at batch 32: {_spread([r['max_batch_32']['errors'] for r in batch], '.0f')}"),
        ("load", "python -m benchmarks.load_test",
         f"{load[0]['clients']} clients × {load[0]['frames_per_client']} frames: answered by the server "
         f"{_spread([r['offloaded'] / r['frames'] * 100 for r in load], '.1f')} % of frames (the rest ran "
         f"locally), {_spread([r['throughput_fps'] for r in load], '.0f')} frames/s, p99 "
         f"{_spread([r['latency_ms']['p99'] / 1e3 for r in load], '.2f')} s"),
        ("simulator", "python -m benchmarks.sim_speed",
         f"one {sim[0]['frames']:,}-frame episode: {_spread([r['env_random_actions_s'] for r in sim], '.2f')} s "
         f"(random actions), {_spread([r['simulate_oracle_s'] for r in sim], '.2f')} s (oracle)"),
    ]
    lines = ["| benchmark | command | result |", "|---|---|---|"]
    lines += [f"| {a} | {f'`{b}`' if b.startswith('python') else b} | {c} |" for a, b, c in rows]
    stages_here = [r["stage_ms_median"]["in_process"] for r in over]
    stages_there = [r["stage_ms_median"]["runtime"] for r in over]
    names = [k for k in stages_here[0] if k in stages_there[0]]
    lines += ["", "Where the unary frame's time goes (runtime overhead runs, median ms in process → in the runtime): "
              + ", ".join(f"{n[:-3]} {_spread([h[n] for h in stages_here], '.2f')} → "
                          f"{_spread([t[n] for t in stages_there], '.2f')}" for n in names)
              + f"; network {_spread([t['network_ms'] for t in stages_there], '.2f')}."]
    lines += ["", _sources(switch), _sources(sim)] + [_runs_provenance(r) for r in (over, batch, load)]
    return "\n".join(lines)


def _runs_provenance(runs: list[dict]) -> str:
    """One line for the repeated runs of one benchmark."""
    folder = runs[0]["_file"].split("/")[0]
    commits = sorted({(r.get("commit", "")[:10] or "unknown") for r in runs})
    dates = sorted({r.get("date", "")[:10] for r in runs})
    command = runs[0].get("command", "").split(" --json")[0]
    return (f"<sub>`reports/{folder}/run-*.json`: {len(runs)} runs of `{command}` on {', '.join(dates)}, "
            f"commit {', '.join(commits)}, {runs[0].get('machine', {}).get('cpu_count', '?')} CPU cores.</sub>")


_POLICY_LABELS = {"edge": "edge (offload the image)", "oracle": "oracle (bound)"}


def _median_kbps(split: str, scale: float) -> float:
    """The time-weighted median throughput (kbit/s) of a trace split at ``scale`` × its recorded throughput."""
    from policies.network.trace_sets import load_split
    from policies.network.traces import median_mbps

    return median_mbps(load_split(split)) * scale * 1e3


def policies_block() -> str:
    report = _load("simulate_eval.json")
    train = _load("simulate_train_oracle.json")
    sc = report["scenario"]
    pol = report["policies"]
    profile = json.loads((ROOT / "policies" / "assets" / "profile.json").read_text())  # the shipped profile
    local_ms = profile["actions"][0]["device_ms"] * profile["scenario"]["device_speed"]
    lines = [f"{len(report['traces'])} evaluation traces, deadline {report['deadline_ms']:g} ms, "
             f"{report['fps']:g} frames/s; device class: {sc['device_class']} (modelled: this machine's measured "
             f"times × {sc['device_speed']:g}; local inference {local_ms:.0f} ms per frame, "
             f"`policies/assets/profile.json`); link class: {sc['link_class']} (the recorded traces × "
             f"{sc['trace_scale']:g}, RTT {sc['rtt_ms']:g} ms; time-weighted median throughput at that scale "
             f"{_median_kbps('train', sc['trace_scale']):.1f} kbit/s on the training traces, "
             f"{_median_kbps('eval', sc['trace_scale']):.1f} on the evaluation traces). Energy is modelled "
             "(constant powers per state).",
             "", "| policy | latency mean ms | p95 ms | deadline miss % | top-1 % | energy J (modelled) | reward | "
             "device share of MACs |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, p in pol.items():
        label = _POLICY_LABELS.get(name, name)
        if name == "static_best" and p.get("action"):
            label = f"static_best (= `{p['action']}`)"
        share = f"{p['device_share_mean'] * 100:.1f} %" if "device_share_mean" in p else "–"
        lines.append(f"| {label} | {p['latency_ms_mean']:.1f} | {p['latency_ms_p95']:.1f} | "
                     f"{p['deadline_miss_rate'] * 100:.2f} | {p['top1'] * 100:.2f} | {p['energy_j_mean']:.3f} | "
                     f"{p['reward_mean']:.3f} | {share} |")
    oracle = pol.get("oracle")
    met = lambda ok: "met" if ok else "**NOT met**"  # noqa: E731
    for name in ("ppo", "dqn"):
        if oracle and name in pol:
            p = pol[name]
            ratio = p["latency_ms_mean"] / oracle["latency_ms_mean"]
            heuristics = [o for o in ("greedy", "robust_mpc") if o in pol]
            others = " and ".join(f"{o} {pol[o]['reward_mean']:.3f}" for o in heuristics + ["static_best"] if o in pol)
            miss, sb_miss = p["deadline_miss_rate"], pol["static_best"]["deadline_miss_rate"]
            lines += ["", f"- `{name}`: mean latency {ratio:.3f}× the oracle's (target ≤ 1.10: {met(ratio <= 1.10)}); "
                      f"reward {p['reward_mean']:.3f} against {others} (better than both heuristics: "
                      f"{met(all(p['reward_mean'] > pol[o]['reward_mean'] for o in heuristics))}); deadline misses "
                      f"{miss * 100:.2f} % against static_best's {sb_miss * 100:.2f} % (target ≤ 0.5×: "
                      f"{met(miss <= 0.5 * sb_miss)}; the oracle itself misses "
                      f"{oracle['deadline_miss_rate'] * 100:.2f} %)."]
    shares = train["policies"]["oracle"]["actions"]
    learned = sum(v for a, v in shares.items() if "/w" in a)
    lines += ["", "On the training traces the oracle takes " + ", ".join(
        f"`{a}` for {v * 100:.0f} %" for a, v in list(shares.items())[:5]) + " of frames: "
        f"{sum(v >= 0.10 for v in shares.values())} actions for at least 10 % each, learned splits for "
        f"{learned * 100:.0f} % (target ≥ 50 %: {met(learned >= 0.5)}).",
        "", _provenance(report), _provenance(train)]
    return "\n".join(line for i, line in enumerate(lines) if not (line == "" and i > 0 and lines[i - 1] == ""))


BLOCKS: dict[str, Callable[[], str]] = {
    "benchmarks": benchmarks_block,
    "policies": policies_block,
    "control-loop": control_loop_block,
    "grpc-overhead": grpc_overhead_block,
    "overhead-ladder": overhead_ladder_block,
    "detection-loop": detection_loop_block,
    "live-agreement": live_agreement_block,
    "rpc-path": rpc_path_block,
    "light-speed": light_speed_block,
    "eval-classifier": classifier_block,
    "eval-detector": detector_block,
    "device-time": device_time_block,
}


def render(text: str) -> str:
    """``text`` with every generated block rebuilt from its report; a block whose markers are gone is an error."""
    for name, build in BLOCKS.items():
        pattern = re.compile(rf"(<!-- generated: {name} -->\n)(?:.*?\n)?(<!-- end: {name} -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"README.md has no generated block {name!r} (its <!-- generated/end --> markers)")
        text = pattern.sub(lambda m, build=build: m.group(1) + build() + "\n" + m.group(2), text)
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="exit 1 if README.md is not what the reports give")
    args = ap.parse_args()
    current = README.read_text()
    fresh = render(current)
    if args.check:
        if fresh != current:
            print("README.md differs from the reports under reports/: run python scripts/readme_figures.py",
                  file=sys.stderr)
            return 1
        return 0
    README.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
