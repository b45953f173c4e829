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
             "", "| action | device ms (head + encode) | rounds min–max | of local time | device share of MACs |",
             "|---|---:|---:|---:|---:|"]
    for a in report["actions"]:
        d = a["device_ms"]
        lines.append(f"| `{a['action']}`{' (light)' if a.get('encoder') == 'light' else ''} | {d['median']:.3f} | "
                     f"{d['min']:.3f}–{d['max']:.3f} | {a['device_to_local']['median'] * 100:.1f} % | "
                     f"{a['device_share'] * 100:.2f} % |")
    return "\n".join(lines + ["", _provenance(report)])


def light_speed_block() -> str:
    coder = _load("coder_speed.json")
    switch = _load("width_switch.json")
    rows = [r for r in coder["rows"] if r.get("encoder") == "light" and r["batch"] == 1]
    lines = ["| light encoder, batch 1 | encode ms | decode ms | encode + decode ms | bytes |",
             "|---|---:|---:|---:|---:|"]
    lines += [f"| `{r['split']}/w{r['width']:g}` | {r['encode_ms_per_frame']:.3f} | {r['decode_ms_per_frame']:.3f} | "
              f"{r['encode_decode_ms_per_frame']:.3f} | {r['bytes_mean']:.1f} |" for r in rows]
    s = switch["set_width_ms"]
    lines += ["", f"Switching the width of `{switch['split']}` (`set_width`): median {s['median'] * 1e3:.1f} µs "
              f"(p95 {s['p95'] * 1e3:.1f} µs); reloading the checkpoint instead: "
              f"{switch['reload_checkpoint_ms']['median']:.0f} ms.", "", _provenance(coder), _provenance(switch)]
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
    report = _load("control_loop.json")
    sc, checks = report["scenarios"], report["checks"]
    lines = [f"RTT {report['rtt_ms']:g} ms, deadline {report['deadline_ms']:g} ms where given, 300 demo frames, "
             f"fixed action `{report['action']}`"
             + (f", recovery with `{report['recovery_action']}`" if report.get("recovery_action") else "")
             + ". Every frame gets a result (one the server does not answer in time runs on the device), so the "
             "figure that matters is how many the server answered.", "",
             "| scenario | mean ms | p95 ms | max ms | run s | deadline missed | answered by the server | "
             "actions |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    names = dict(_SCENARIOS)
    if "recovery_rtt_ms" in report:
        names["recovery"] = (f"{report['recovery_slow_mbps']:g} Mbit/s, then 5 Mbit/s, "
                             f"RTT {report['recovery_rtt_ms']:g} ms, fixed action")
    for name, r in sc.items():
        lat = r["latency_ms"]
        actions = ", ".join(f"`{a}` {n}" for a, n in sorted(r["actions"].items(), key=lambda kv: -kv[1]))
        base, _, run = name.partition("_")
        label = f"{names['recovery']} (run {run})" if base == "recovery" and run.isdigit() else names.get(name, name)
        lines.append(f"| {label} | {lat['mean']:.1f} | {lat['p95']:.1f} | {lat['max']:.1f} | "
                     f"{r['elapsed_s']:.1f} | {r['deadline_missed']} | {r['offloaded']}/{r['results']} | "
                     f"{actions} |")
    claims = []
    for name in ("slow_greedy", "slow_fixed"):
        if f"{name}_mean_over_local" in checks:
            claims.append(f"{_SCENARIOS[name]}: mean latency {checks[f'{name}_mean_over_local']:.2f}× local-only "
                          f"(target ≤ 1.3×, {'met' if checks[f'{name}_ok'] else 'NOT met'})")
    if "recovery_s" in checks:
        back = checks["recovery_s"]
        held = checks.get("recovered_offloaded_share")
        runs = checks.get("recovery_runs")
        each = (" (runs: " + ", ".join(f"{c['recovery_s']:.2f} s" if c["recovery_s"] is not None else "never"
                                       for c in runs) + f"; within 2 s in {checks['recovery_ok_runs']} of {len(runs)})"
                if runs else "")
        claims.append("after the rise the client offloads in time again, and keeps doing so (≥ 80 % of the next "
                      "second's frames answered remotely in time), "
                      + (f"{back:.2f} s later" if back is not None else "never")
                      + (" (median)" if runs and len(runs) > 1 else "") + each
                      + f" (target ≤ 2 s in every run, {'met' if checks['recovery_ok'] else 'NOT met'})"
                      + (f"; from then on {held:.0%} of the frames are answered remotely in time"
                         + (" (median)" if runs and len(runs) > 1 else "")
                         if held is not None and back is not None else ""))
    if "near_dead_time_over_local" in checks:
        claims.append(f"near-dead link: 300 frames in {checks['near_dead_time_over_local']:.2f}× local-only's time, "
                      f"slowest frame {checks['near_dead_max_latency_ms']:.0f} ms "
                      f"(targets ≤ 1.2× and within the default budget, "
                      f"{'met' if checks['near_dead_ok'] else 'NOT met'})")
    return "\n".join(lines + [""] + [f"- {c}" for c in claims] + ["", _provenance(report)])


_RATE_VERDICT = {True: "sustained", False: "not sustained", None: "a slower link: no rate target, latency bound only"}


def detection_loop_block() -> str:
    """The perception loop of ``examples/detection_loop.py`` through ``splitnet link``, one line per trace."""
    report = _load("detection_loop.json")
    deadline = report["deadline_ms"]
    lines = [f"`python -m benchmarks.detection_loop` (the perception loop of `examples/detection_loop.py`: "
             f"`SplitDetector`, `{report['policy']}`, a {report['fps']:g} FPS camera, deadline {deadline:g} ms, "
             f"through `splitnet link` with RTT {report['rtt_ms']:g} ms, {report['seconds']:g} s per trace):", ""]
    for s in report["scenarios"]:
        lat, check = s["latency_ms"], s["check"]
        verdict = _RATE_VERDICT[check.get("rate_sustained")]
        lines.append(
            f"- {s['scenario']} Mbit/s: **{s['result_fps']:.2f} results/s** ({verdict}), latency p50 "
            f"{lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms, max {lat['max']:.0f} ms "
            f"(bound {check['latency_bound_ms']:.0f} ms: {'kept' if check['latency_bounded'] else 'NOT kept'}); "
            f"{s['frames_submitted']} frames: {s['offloaded']} answered by the server, {s['fallbacks']} ran locally, "
            f"{s['dropped']} dropped as stale, {s['filtered']} kept off the link by the filter, "
            f"{s['unaccounted']} unaccounted; {s['bytes_per_sent_frame']:.0f} B per sent frame")
    return "\n".join(lines + ["", _provenance(report)])


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
                  f"says {report['profile']['request_overhead_ms']:.2f} ms). The policies use the profile's "
                  f"figures, live and simulated. The column \"sim with the profile's figures\" is the simulation "
                  f"without the deployment's figures.", ""]
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
    return "\n".join(lines + ["", _provenance(report)])


def rpc_path_block() -> str:
    """The RPC path's time per call beyond the link model, and the live server's time against the profile's."""
    report = _load("rpc_path.json")
    lines = [f"{report['frames']} frames per run at {report['fps']:g} FPS, through `splitnet link` on a constant "
             f"{report['mbps']:g} Mbit/s (RTT {report['rtt_ms']:g} ms, no jitter) and directly:", "",
             "| action | beyond the link model, direct: mean (median) ms | through the link: mean (median) ms | "
             "server ms live / profile |", "|---|---:|---:|---:|"]
    for name, row in report["actions"].items():
        d, k = row["direct"]["excess_ms"], row["link"]["excess_ms"]
        live_server = (row["direct"]["server_ms"]["mean"] + row["link"]["server_ms"]["mean"]) / 2
        lines.append(f"| `{name}` | {d['mean']:.2f} ({d['median']:.2f}) | {k['mean']:.2f} ({k['median']:.2f}) | "
                     f"{live_server:.2f} / {row['profile_server_ms']:.2f} |")
    lines += ["", f"The shipped profile's scenario charges each call **{report['request_overhead_ms']:.1f} ms** "
                  f"(`request_overhead_ms`; the RPC stack alone, without the link emulator: "
                  f"{report['stack_only_ms']:.1f} ms) and runs the server at **{report['server_slowdown']:.2f}×** "
                  "its profiled time (`server_speed`)."]
    return "\n".join(lines + ["", _provenance(report)])


def grpc_overhead_block() -> str:
    report = _load("grpc_overhead.json")
    s = report["summary_ms"]
    names = [k[: -len("_overhead_ms")] for k in s if k.endswith("_overhead_ms")]
    label = {"direct": "`splitnet serve` (embedded)", "ray": "`splitnet serve --engine ray` (1 replica)"}
    lines = [f"Same `InferRequest` ({report['request_bytes']} bytes, `{report['policy']}`), "
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
    if "ray_minus_direct_ms" in s:
        d = s["ray_minus_direct_ms"]
        lines += ["", f"The Ray Serve path costs {d['median']:.3f} ms more per frame than the embedded server "
                      f"(compute removed; rounds {d['min']:.3f}–{d['max']:.3f})."]
    return "\n".join(lines + ["", _provenance(report)])


def _runs(name: str) -> list[dict]:
    """Every run of a benchmark measured several times (``reports/<name>/run-*.json``)."""
    files = sorted((REPORTS / name).glob("run-*.json"))
    if not files:
        raise FileNotFoundError(f"no runs under reports/{name}/ (scripts/run_reports.sh measures them)")
    return [{**json.loads(f.read_text()), "_file": f"{name}/{f.name}"} for f in files]


def _spread(values: list[float], fmt: str) -> str:
    """``median (min–max, n runs)`` of one figure over repeated runs."""
    ordered = sorted(values)
    mid = statistics.median(ordered)
    if len(ordered) == 1:
        return format(mid, fmt)
    return f"{format(mid, fmt)} ({format(ordered[0], fmt)}–{format(ordered[-1], fmt)}, {len(ordered)} runs)"


def benchmarks_block() -> str:
    switch = _load("width_switch.json")
    sim = _load("sim_speed.json")
    over, batch, load = _runs("runtime_overhead"), _runs("batching_gain"), _runs("load_test")
    s = switch["set_width_ms"]
    rows = [
        ("width switch", "python -m benchmarks.width_switch",
         f"`set_width` median {s['median'] * 1e3:.0f} µs; reloading the checkpoint "
         f"{switch['reload_checkpoint_ms']['median']:.0f} ms ({switch['speedup_vs_reload']:,.0f}× slower), rebuilding "
         f"one bottleneck {switch['rebuild_bottleneck_ms']['median']:.1f} ms "
         f"({switch['speedup_vs_rebuild_bottleneck']:,.0f}×)"),
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
         f"one {sim['frames']:,}-frame episode: {sim['env_random_actions_s']:.2f} s (random actions), "
         f"{sim['simulate_oracle_s']:.2f} s (oracle)"),
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
    lines += ["", _provenance(switch), _provenance(sim)] + [_runs_provenance(r) for r in (over, batch, load)]
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
