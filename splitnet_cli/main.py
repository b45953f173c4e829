"""``splitnet`` with subcommands. Each subcommand's body lives in its own package;
this module only parses arguments, joins the packages and prints."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from splitnet.errors import SplitnetError
from splitnet_cli.argtypes import (
    asset_path,
    fraction,
    host_port,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
    probability,
    quality,
    server_list,
)


def _write_json(obj: dict, path: str | None) -> None:
    """Write a report with its provenance (command, date, machine, commit) when ``path`` is given."""
    if path:
        from splitnet.provenance import provenance

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps({**provenance(_command_line()), **obj}, indent=2) + "\n")
        print(f"wrote {path}")


def _command_line() -> str:
    return "splitnet " + " ".join(shlex.quote(a) for a in sys.argv[1:])


# ------------------------------------------------------------------ models
def cmd_models(args: argparse.Namespace) -> int:
    from splitnet import create_model, list_models, model_spec
    from splitnet.models.registry import registered_split_points
    from splitnet.models.tv_detection import DEFAULT_INPUT_SIZE, DETECTOR_SPLITS

    registered = list_models()
    if args.model and args.model not in registered and args.model not in DETECTOR_SPLITS:
        model_spec(args.model)  # raises UnknownModelError, listing the registered models
    names = [n for n in registered if not args.model or n == args.model]
    for name in names:
        spec = model_spec(name)
        what = "detector, " if spec.is_detector else ""
        line = f"{name:<22} input {spec.input_size[0]}x{spec.input_size[1]}, {what}{spec.num_classes} classes"
        if args.split_points:
            points = registered_split_points(name, create_model(name), depth=args.depth)
            line += "\n    split points: " + ", ".join(points)
        print(line)
    unregistered = {n: nodes for n, nodes in DETECTOR_SPLITS.items() if n not in registered}
    if not args.model and unregistered:
        print("torchvision detectors (in-process only: splitnet.models.tv_detection.split_detector):")
    for name, nodes in unregistered.items():
        if not args.model or args.model == name:
            h, w = DEFAULT_INPUT_SIZE
            print(f"{name:<38} input {h}x{w}, recommended splits {', '.join(nodes)}")
    return 0


# ------------------------------------------------------------------- train
SHARED_TRAIN = "../shared/data/cifar10/train.npz"


def _training_data(path: str | None) -> str:
    """``--data``, or the repository's CIFAR-10 training split when run from a checkout."""
    if path:
        return path
    if Path(SHARED_TRAIN).is_file():
        return SHARED_TRAIN
    raise SplitnetError(f"give --data (an npz or an ImageFolder directory); the default {SHARED_TRAIN} "
                        "exists only beside a repository checkout")


def cmd_train_teacher(args: argparse.Namespace) -> int:
    from splitnet.training.teacher import TeacherConfig, train_teacher

    args.data = _training_data(args.data)

    cfg = TeacherConfig(model=args.model, data=args.data, init_weights=args.init_weights, epochs=args.epochs,
                        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                        warmup_epochs=args.warmup_epochs, label_smoothing=args.label_smoothing,
                        holdout=args.holdout, seed=args.seed, limit=args.limit)
    summary = train_teacher(cfg, args.out, args.work_dir, command=_command_line())
    print(f"teacher written to {args.out}; holdout top-1 {summary['holdout_top1']:.4f}")
    return 0


def cmd_train_bottleneck(args: argparse.Namespace) -> int:
    from splitnet.training.bottleneck import BottleneckTrainConfig, train_bottleneck

    args.data = _training_data(args.data)

    cfg = BottleneckTrainConfig(
        teacher=args.teacher, weights=args.weights, split=args.split, data=args.data, encoder=args.encoder,
        latent_channels=args.latent_channels, hidden_channels=args.hidden_channels,
        decoder_channels=args.decoder_channels, downsample=args.downsample, widths_per_step=args.widths_per_step,
        prior=args.prior, widths=tuple(args.widths), stage1_lmbda=args.stage1_lmbda, lmbda=args.lmbda,
        width_rate_scale=tuple(args.width_rate_scale or ()), epochs=args.epochs,
        finetune_epochs=args.finetune_epochs, finetune_encoder=not args.freeze_encoder,
        batch_size=args.batch_size, lr=args.lr, finetune_lr=args.finetune_lr, tail_lr_scale=args.tail_lr_scale,
        kd_temperature=args.kd_temperature, ce_weight=args.ce_weight, holdout=args.holdout,
        seed=args.seed, limit=args.limit, detection_images=args.detection_images, out_relu=args.out_relu)
    result = train_bottleneck(cfg, args.out, args.work_dir, command=_command_line())
    print(f"bottleneck at {args.split} added to {args.out} (sha256 {result['sha256']})")
    for row in result["holdout"]:
        score = (f"top-1 {row['top1']:.4f}" if "top1" in row else f"mAP@0.5 {row['map_50']:.4f}" if "map_50" in row
                 else f"feature MSE {row['feature_mse']:.4g}")
        print(f"  w{row['width']:g}: holdout {score} at {row['bytes_mean']:.1f} bytes")
    return 0


def cmd_train_detector(args: argparse.Namespace) -> int:
    from splitnet.detection.train import DetectorConfig, train_detector

    cfg = DetectorConfig(source=args.data, n_images=args.images, size=args.size, epochs=args.epochs,
                         batch_size=args.batch_size, lr=args.lr, width=args.width, seed=args.seed)
    summary = train_detector(cfg, args.out, command=_command_line())
    print(f"detector written to {args.out}; last epoch loss {summary['history'][-1]['loss']:.4f}")
    return 0


def cmd_train_filter(args: argparse.Namespace) -> int:
    from splitnet.checkpoint import SplitCheckpoint
    from splitnet.data import load_npz
    from splitnet.detection.filter import train_object_filter
    from splitnet.detection.synth import make_detection_set

    ckpt = SplitCheckpoint.load(args.checkpoint)
    if not ckpt.spec.is_detector:
        raise SplitnetError(f"{args.checkpoint} holds {ckpt.model_name}, not a detector")
    head = ckpt.teacher_split(args.split)[0]
    ckpt.split(args.split)  # the split must have a bottleneck: the filter rides with it
    size = ckpt.spec.input_size[0]
    objects = load_npz(args.data)
    train = make_detection_set(objects, args.scenes, size=size, seed=args.seed)
    held = make_detection_set(objects, args.holdout, size=size, seed=args.seed + 1)
    filt, rep = train_object_filter(head, train, held, epochs=args.epochs,
                                    max_object_frames_dropped=args.max_dropped, seed=args.seed)
    ckpt.splits[args.split].object_filter = filt
    ckpt.meta.setdefault("filters", {})[args.split] = {"command": _command_line(), "threshold": filt.config.threshold}
    sha = ckpt.save(args.out or args.checkpoint)
    print(f"object filter at {args.split} (threshold {filt.config.threshold:.3f}) written to "
          f"{args.out or args.checkpoint} (sha256 {sha})")
    print(f"  holdout: drops {rep.frames_filtered}/{rep.frames} frames ({rep.empty_frames_filtered}/"
          f"{rep.empty_frames} empty), misses {rep.objects_missed}/{rep.objects} objects")
    return 0


def cmd_data_detection(args: argparse.Namespace) -> int:
    from splitnet.data import load_npz
    from splitnet.detection.synth import make_detection_set

    data = make_detection_set(load_npz(args.objects), args.scenes, size=args.size, seed=args.seed)
    data.save(args.out)
    print(f"wrote {args.out}: {len(data)} scenes, {len(data.boxes)} objects, "
          f"{int((~data.has_objects()).sum())} empty")
    return 0


def cmd_checkpoint_merge(args: argparse.Namespace) -> int:
    from splitnet.checkpoint import SplitCheckpoint

    merged = SplitCheckpoint.load(args.inputs[0])
    for path in args.inputs[1:]:
        merged.merge(SplitCheckpoint.load(path))
    merged.meta["merge_command"] = _command_line()
    sha = merged.save(args.out)
    print(f"{args.out}: splits {', '.join(merged.splits)}; sha256 {sha}")
    return 0


def cmd_checkpoint_info(args: argparse.Namespace) -> int:
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


# -------------------------------------------------------------------- eval
def _load_checkpoint(args: argparse.Namespace):
    from splitnet.checkpoint import SplitCheckpoint

    if args.model or args.weights:
        if not (args.model and args.weights):
            raise SplitnetError("--model and --weights go together")
        return SplitCheckpoint.from_teacher(args.model, args.weights)
    return SplitCheckpoint.load(args.checkpoint)


def _eval_detector(ckpt, args: argparse.Namespace) -> int:
    import numpy as np

    from splitnet.data import load_npz
    from splitnet.detection.evaluation import DetectionEvalOptions, evaluate_detection, format_detection_table
    from splitnet.detection.synth import DetectionSet, make_detection_set

    if not args.data:
        raise SplitnetError("detectors need --data: a detection set (splitnet data detection) or object images")
    with np.load(args.data, allow_pickle=False) as z:
        is_detection_set = "boxes" in z.files
    if is_detection_set:
        data = DetectionSet.load(args.data)
    else:  # object images: build the validation scenes from them (seeded)
        data = make_detection_set(load_npz(args.data), args.scenes, size=ckpt.spec.input_size[0], seed=1)
    if args.limit:
        data = data.subset(0, min(args.limit, len(data)))
    opts = DetectionEvalOptions(jpeg_qualities=args.qualities, webp_qualities=args.qualities,
                                batch_size=min(args.batch_size, 100))
    if args.device_budget is not None:
        opts.device_budget = args.device_budget
    report = evaluate_detection(ckpt, data, opts, data_path=args.data)
    print(format_detection_table(report))
    _write_json(report, args.json)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from splitnet.checkpoint import DEMO_DATA
    from splitnet.data import load_npz
    from splitnet.evaluation import EvalOptions, evaluate, format_table, plot_rate_accuracy

    ckpt = _load_checkpoint(args)
    if ckpt.spec.is_detector:
        return _eval_detector(ckpt, args)
    data = load_npz(args.data or DEMO_DATA, limit=args.limit)
    opts = EvalOptions(jpeg_qualities=args.qualities, webp_qualities=args.qualities, png=not args.no_png,
                       feature_codecs=tuple(args.feature_codecs), timing_frames=args.timing_frames,
                       batch_size=args.batch_size)
    if args.device_budget is not None:
        opts.device_budget = args.device_budget
    report = evaluate(ckpt, data, opts)
    print(format_table(report))
    _write_json(report, args.json)
    plot = args.plot or (str(Path(args.json).with_suffix(".png")) if args.json else None)
    if plot:
        plot_rate_accuracy(report, plot)
        print(f"wrote {plot}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Shipped checkpoint and demo sample: rate–accuracy table, then server + client over gRPC."""
    from splitnet_cli.demo import run_demo

    return run_demo(args.policy, args.limit, args.json, not args.skip_eval, not args.skip_detection,
                    args.detection_policy)


# ------------------------------------------------------------ runtime
def cmd_serve(args: argparse.Namespace) -> int:
    import logging

    from edge_server import ServerOptions, serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    token = args.token
    if args.token_file:
        token = Path(args.token_file).read_text().strip()
    if args.engine == "ray":
        from edge_server.ray_cli import serve_ray

        return serve_ray(args, token)
    opts = ServerOptions(address=args.address, checkpoint=args.checkpoint, max_batch=args.max_batch,
                         max_wait_ms=args.max_wait_ms, max_queue=args.max_queue,
                         max_message_bytes=args.max_message_bytes, tls_cert=args.tls_cert, tls_key=args.tls_key,
                         client_ca=args.client_ca, token=token, torch_threads=args.threads, grace_s=args.grace_s,
                         insecure_token_over_plaintext=args.insecure_token_over_plaintext,
                         default_budget_s=args.default_budget_s, stream_idle_timeout_s=args.stream_idle_timeout_s,
                         max_streams_per_connection=args.max_streams_per_connection,
                         max_connection_idle_s=args.max_connection_idle_s,
                         max_connection_age_s=args.max_connection_age_s,
                         max_connection_age_grace_s=args.max_connection_age_grace_s,
                         min_client_ping_interval_s=args.min_client_ping_interval_s,
                         metrics_port=args.metrics_port, metrics_address=args.metrics_address)
    return serve(opts, port_file=args.port_file, on_ready=lambda msg: print(msg, flush=True))


def _paced(frames, fps: float):
    """A camera at ``fps``: each frame is handed over no earlier than its tick, stamped with the tick
    (a client that falls behind sees the frame's latency grow from that tick)."""
    import time

    from device_client.client import TimedFrame

    start = time.perf_counter()
    for i, frame in enumerate(frames):
        tick = start + i / fps
        delay = tick - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        yield TimedFrame(frame, tick)


def cmd_client(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from device_client import SplitClient, TlsOptions
    from device_client.report import client_report, detection_scores, format_report, frame_record
    from splitnet.checkpoint import DEMO_DATA, DETECTION_DEMO_DATA, SplitCheckpoint
    from splitnet.detection.synth import DetectionSet
    from splitnet.inputs import FrameSource, load_inputs

    ckpt = SplitCheckpoint.load(args.checkpoint)
    detection: DetectionSet | None = None
    path = args.data or (DETECTION_DEMO_DATA if ckpt.spec.is_detector else DEMO_DATA)
    is_detection_set = False
    if ckpt.spec.is_detector and str(path).endswith(".npz") and Path(path).is_file():
        with np.load(path, allow_pickle=False) as z:
            is_detection_set = "boxes" in z.files
    if is_detection_set:
        detection = DetectionSet.load(path)
        if args.limit:
            detection = detection.subset(0, min(args.limit, len(detection)))
        data = FrameSource(detection.images, None, detection.classes, str(path), len(detection))
    else:
        data = load_inputs(path, limit=args.limit)
    token = args.token
    if args.token_file:
        token = Path(args.token_file).read_text().strip()
    tls = TlsOptions(args.tls_ca, args.tls_cert, args.tls_key, args.tls_server_name) if (
        args.tls_ca or args.tls_cert or args.tls) else None
    from policies.agents.factory import make_policy
    from policies.simulation.profile import Profile

    needs_profile = args.policy in ("edge", "greedy") or args.policy.startswith("fixed:")
    policy = make_policy(args.policy, Profile.load(args.profile) if needs_profile else None, live=True)
    results = []
    with SplitClient(args.server, checkpoint=ckpt, policy=policy, deadline_ms=args.deadline_ms,
                     tls=tls, token=token, max_in_flight=args.max_in_flight, default_budget_ms=args.budget_ms,
                     calibration=not args.no_calibration,
                     emulate=Profile.load(args.profile) if args.emulate_device else None,
                     insecure_token_over_plaintext=args.insecure_token_over_plaintext) as client:
        if args.wait_ready:
            client.wait_until_ready(args.wait_ready)
        frames = iter(data.frames)
        if args.fps:
            frames = _paced(frames, args.fps)
        run = (client.stream(frames, device_batch=args.device_batch) if args.mode == "stream"
               else (client.infer(f) for f in frames))
        # A configuration error (ServerConfigError) ends the run: one line, non-zero exit (main()).
        for r in tqdm(run, total=data.count, desc="frames", unit="frame", disable=args.quiet):
            results.append(r)
        breaker_events = [{"t_s": e.t, "action": e.action, "what": e.what} for e in client.breaker.events]
        calibrated = dict(client.calibration.device_ms) if client.calibration else None
    n_frames = data.count if data.count is not None else len(results)
    report = client_report(results, data.labels, n_frames)
    if detection is not None:
        report.update(detection_scores(results, [detection.targets(i) for i in range(len(detection))]))
    report.update({"server": args.server, "policy": args.policy, "mode": args.mode, "data": data.path,
                   "deadline_ms": args.deadline_ms, "fps": args.fps, "command": _command_line(),
                   "calibrated_device_ms": calibrated, "breaker_events": breaker_events,
                   "frames_detail": [frame_record(r) for r in results]})
    print(format_report(report))
    _write_json(report, args.json)
    if report["frames_lost"]:
        return 1
    if report["frames_answered"] == 0 and results and not args.allow_local and any(
            r.chosen != "local" for r in results):
        reasons = ", ".join(f"{k} {v}" for k, v in report["fallback_reasons"].items()) or "none"
        print(f"splitnet: error: no frame was answered by the server (local fallbacks: {reasons}); "
              "pass --allow-local if running on the device is fine", file=sys.stderr)
        return 3
    return 0


# ---------------------------------------------------------------- policies
def _traces(spec: str):
    from policies.network.trace_sets import load_split
    from policies.network.traces import find_traces

    if spec in ("train", "eval"):
        return load_split(spec)
    traces, skipped = find_traces(spec)
    for path, why in skipped:
        print(f"note: skipped {path}: {why}", file=sys.stderr)
    if not traces:
        raise SplitnetError(f"no traces found in {spec}")
    return traces


def cmd_profile(args: argparse.Namespace) -> int:
    from policies.simulation.profile import PowerModel, Profile, Scenario
    from splitnet.checkpoint import DEMO_DATA, SplitCheckpoint
    from splitnet.data import load_npz
    from splitnet.profiling import default_actions, profile_actions

    ckpt = SplitCheckpoint.load(args.checkpoint)
    data = load_npz(args.data or DEMO_DATA, limit=args.limit)
    measured = profile_actions(ckpt, data, default_actions(ckpt, args.qualities),
                               timing_frames=1 if args.timings_from else args.timing_frames)
    if args.timings_from:  # one timing measurement shared by profiles of different image sets
        timed = {a.name: a for a in Profile.load(args.timings_from).actions}
        for row in measured["actions"]:
            if row["name"] not in timed:
                raise SplitnetError(f"{args.timings_from} has no timing for action {row['name']!r}")
            row["device_ms"], row["server_ms"] = timed[row["name"]].device_ms, timed[row["name"]].server_ms
    power = PowerModel(args.compute_w, args.radio_tx_w, args.idle_w)
    scenario = Scenario(args.device_class, args.device_speed, args.server_speed, args.link_class, args.trace_scale,
                        args.rtt_ms, args.jitter_ms, args.loss, power)
    profile = Profile.from_dict({**measured, "scenario": {}})
    profile = profile.with_scenario(scenario)
    out = profile.to_dict()
    out.update({"data": measured["data"], "n_images": measured["n_images"], "measured_on": measured["measured_on"],
                "model_macs": measured["model_macs"], "command": _command_line()})
    print(f"{'action':<22}{'device ms':>10}{'server ms':>10}{'bytes':>9}{'top-1 %':>9}{'dev MMAC':>10}{'dev %':>8}"
          "   (ms scaled to the scenario)")
    for i, a in enumerate(profile.actions):
        print(f"{a.name:<22}{profile.device_ms(i):>10.2f}{profile.server_ms(i):>10.2f}{a.bytes_mean:>9.1f}"
              f"{a.top1 * 100:>9.2f}{a.device_macs / 1e6:>10.2f}{a.device_share * 100:>8.2f}")
    _write_json(out, args.json)
    return 0


def _policies(names: Sequence[str], profile) -> dict:
    from policies.agents.factory import make_policy

    out = {}
    for name in names:
        key = name if not name.endswith(".zip") else Path(name).stem
        out[key] = None if name == "static_best" else make_policy(name, profile)
    return out


def cmd_link(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from policies.network.link import LinkOptions, run_link
    from policies.network.traces import load_trace

    trace = load_trace(args.trace)
    opts = LinkOptions(args.listen, args.upstream, args.rtt_ms, args.loss, args.scale, args.start_s, args.seed)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_link(trace, opts, lambda msg: print(msg, flush=True), stop)

    asyncio.run(main())
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from policies.simulation.profile import Profile
    from policies.simulation.simulate import format_report, plot_runs, simulate

    profile = Profile.load(args.profile)
    traces = _traces(args.traces)
    policies = _policies(args.policy, profile)
    report, runs = simulate(profile, traces, policies, fps=args.fps, deadline_ms=args.deadline_ms,
                            frames=args.frames, seed=args.seed)
    report["profile"] = profile.source
    print(format_report(report))
    _write_json(report, args.json)
    if args.json or args.plots:
        prefix = args.plots or str(Path(args.json).with_suffix(""))
        for path in plot_runs(report, runs, prefix):
            print(f"wrote {path}")
    return 0


def cmd_train_policy(args: argparse.Namespace) -> int:
    from policies.agents.rl import train_policy
    from policies.simulation.profile import Profile

    profile = Profile.load(args.profile)
    out = train_policy(profile, _traces(args.traces), args.algo, args.steps, args.out, seed=args.seed,
                       fps=args.fps, deadline_ms=args.deadline_ms)
    print(f"policy written to {out}")
    return 0


# ------------------------------------------------------------------ parser
class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``splitnet serve: error: argument --max-batch: must be ... (see --help)``."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from splitnet import __version__
    from splitnet.evaluation import DEFAULT_QUALITIES

    parser = _Parser(prog="splitnet", description="Split computing for edge devices.")
    parser.add_argument("--version", action="version", version=f"splitnet {__version__}")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="import this module first (it registers your models with splitnet.register_model); "
                             "repeatable")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list registered models (and their split points)")
    p.add_argument("model", nargs="?", help="one model name")
    p.add_argument("--split-points", action="store_true", help="also list valid split points")
    p.add_argument("--depth", type=positive_int, default=2, help="deepest node-name level listed")
    p.set_defaults(func=cmd_models)

    train = sub.add_parser("train", help="train a teacher or a bottleneck").add_subparsers(dest="what", required=True)
    t = train.add_parser("teacher", help="train or fine-tune a CIFAR teacher on an npz training set")
    t.add_argument("--model", default="resnet56_cifar")
    t.add_argument("--data", type=asset_path, default=None,
                    help="npz or ImageFolder directory (default: the repository's CIFAR-10 "
                                                 "copy in ../shared, when run from a checkout)")
    t.add_argument("--init-weights", default=None, help="fine-tune from these weights (default: from scratch)")
    t.add_argument("--epochs", type=positive_int, default=30)
    t.add_argument("--batch-size", type=positive_int, default=128)
    t.add_argument("--lr", type=positive_float, default=0.1)
    t.add_argument("--weight-decay", type=nonnegative_float, default=5e-4)
    t.add_argument("--warmup-epochs", type=nonnegative_float, default=0.0)
    t.add_argument("--label-smoothing", type=probability, default=0.0)
    t.add_argument("--holdout", type=nonnegative_int, default=1000, help="training images held out to monitor progress")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--limit", type=positive_int, default=None, help="use only the first N training images")
    t.add_argument("--out", required=True)
    t.add_argument("--work-dir", default=None, help="resumable state (default: beside --out)")
    t.set_defaults(func=cmd_train_teacher)

    b = train.add_parser("bottleneck", help="train a slimmable bottleneck at a split point by distillation")
    b.add_argument("--teacher", default="resnet56_cifar", help="registered model name of the teacher")
    b.add_argument("--weights", required=True, help="teacher weights (teacher file, third-party, or checkpoint)")
    b.add_argument("--split", default="layer2", help="split node name, e.g. layer1")
    b.add_argument("--data", type=asset_path, default=None,
                    help="npz or ImageFolder directory (default: the repository's CIFAR-10 "
                                                 "copy in ../shared, when run from a checkout)")
    b.add_argument("--encoder", choices=("features", "light"), default="features",
                   help="features: encoder on the teacher's features at --split (the device runs the teacher's "
                        "head); light: encoder on the image (strided convolutions + GDN, a few percent of the "
                        "model's MACs) whose decoder rebuilds the features at --split on the server")
    b.add_argument("--out-relu", action=argparse.BooleanOptionalAction, default=None,
                   help="end the decoder in a ReLU (default: when the teacher's features at --split are >= 0; "
                        "MobileNet's are not)")
    b.add_argument("--latent-channels", type=positive_int, default=32)
    b.add_argument("--hidden-channels", type=positive_int, default=64, help="encoder channels (slimmed with the width)")
    b.add_argument("--decoder-channels", type=nonnegative_int, default=0,
                   help="light encoder: the server-side decoder's channels, every width (0: --hidden-channels)")
    b.add_argument("--widths-per-step", type=int, choices=(0, 1), default=0,
                   help="0: train every width in every step; 1: the widest and one random other width on "
                        "alternate steps (cheaper per epoch)")
    b.add_argument("--downsample", type=nonnegative_int, default=1, help="stride-2 stages in the encoder")
    b.add_argument("--prior", choices=("factorized", "hyperprior"), default="factorized")
    b.add_argument("--widths", type=fraction, nargs="+", default=[0.25, 0.5, 0.75, 1.0])
    b.add_argument("--stage1-lmbda", type=nonnegative_float, default=1e-3, help="stage-1 rate weight per bit per image")
    b.add_argument("--lmbda", type=nonnegative_float, default=2e-3, help="stage-2 rate weight per bit per image")
    b.add_argument("--width-rate-scale", type=positive_float, nargs="+", default=None,
                   help="per-width factors on the rate weight (one per width)")
    b.add_argument("--epochs", type=nonnegative_int, default=3, help="stage 1 (feature distillation) epochs")
    b.add_argument("--finetune-epochs", type=nonnegative_int, default=12,
                   help="stage 2 (KD fine-tuning) epochs; 0 skips (required for torchvision detectors: stage 1 only)")
    b.add_argument("--freeze-encoder", action="store_true", help="stage 2 trains only the decoder and tail")
    b.add_argument("--batch-size", type=positive_int, default=128)
    b.add_argument("--lr", type=positive_float, default=2e-3)
    b.add_argument("--finetune-lr", type=positive_float, default=5e-4)
    b.add_argument("--tail-lr-scale", type=positive_float, default=1.0,
                   help="stage 2: the pretrained tail learns at --finetune-lr times this (e.g. 0.1 when the tail "
                        "is most of the model)")
    b.add_argument("--kd-temperature", type=positive_float, default=1.0)
    b.add_argument("--ce-weight", type=nonnegative_float, default=0.5)
    b.add_argument("--holdout", type=nonnegative_int, default=1000)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--limit", type=positive_int, default=None)
    b.add_argument("--detection-images", type=positive_int, default=12000,
                   help="detectors: synthetic training scenes built from --data")
    b.add_argument("--out", required=True, help="split checkpoint to create or add this split to")
    b.add_argument("--work-dir", default=None)
    b.set_defaults(func=cmd_train_bottleneck)

    td = train.add_parser("detector", help="train the small detector on synthetic scenes of CIFAR objects")
    td.add_argument("--data", type=asset_path, default="../shared/data/cifar10/train.npz",
                    help="object images (training split)")
    td.add_argument("--images", type=positive_int, default=12000, help="synthetic training scenes")
    td.add_argument("--size", type=positive_int, default=128, help="scene size, pixels")
    td.add_argument("--epochs", type=positive_int, default=24)
    td.add_argument("--batch-size", type=positive_int, default=64)
    td.add_argument("--lr", type=positive_float, default=2e-3)
    td.add_argument("--width", type=positive_int, default=32, help="channels of the first stage")
    td.add_argument("--seed", type=int, default=0)
    td.add_argument("--out", required=True)
    td.set_defaults(func=cmd_train_detector)

    tf = train.add_parser("filter", help="train a detector checkpoint's object filter (no object: send nothing)")
    tf.add_argument("--checkpoint", type=asset_path, required=True, help="split checkpoint of a detector")
    tf.add_argument("--split", default="layer2")
    tf.add_argument("--data", type=asset_path, default="../shared/data/cifar10/train.npz",
                    help="object images (training split)")
    tf.add_argument("--scenes", type=positive_int, default=6000)
    tf.add_argument("--holdout", type=nonnegative_int, default=1000, help="scenes to set the threshold on")
    tf.add_argument("--epochs", type=positive_int, default=4)
    tf.add_argument("--max-dropped", type=probability, default=0.01,
                    help="largest share of frames with objects the filter may drop (sets the threshold)")
    tf.add_argument("--seed", type=int, default=2000)
    tf.add_argument("--out", default=None, help="write here (default: update --checkpoint)")
    tf.set_defaults(func=cmd_train_filter)

    dt = sub.add_parser("data", help="build data sets").add_subparsers(dest="what", required=True)
    dd = dt.add_parser("detection", help="synthetic detection scenes: CIFAR objects pasted on clutter")
    dd.add_argument("--objects", type=asset_path, required=True,
                    help="npz of object images (use val.npz for validation scenes)")
    dd.add_argument("--scenes", type=positive_int, default=1000)
    dd.add_argument("--size", type=positive_int, default=128)
    dd.add_argument("--seed", type=int, default=1)
    dd.add_argument("--out", required=True)
    dd.set_defaults(func=cmd_data_detection)

    ck = sub.add_parser("checkpoint", help="inspect or merge split checkpoints").add_subparsers(
        dest="action", required=True)
    m = ck.add_parser("merge", help="combine split points trained separately on the same teacher")
    m.add_argument("inputs", nargs="+", help="split checkpoints; later ones win on a shared split")
    m.add_argument("--out", required=True)
    m.set_defaults(func=cmd_checkpoint_merge)
    i = ck.add_parser("info", help="what a split checkpoint holds and how it was made")
    i.add_argument("checkpoint", nargs="?", default=None, type=asset_path, help="default: the shipped one")
    i.set_defaults(func=cmd_checkpoint_info)

    pr = sub.add_parser("profile", help="measure every action's costs and describe the scenario they model")
    pr.add_argument("--checkpoint", type=asset_path, default=None)
    pr.add_argument("--data", type=asset_path, default=None, help="npz images (default: the shipped demo sample)")
    pr.add_argument("--limit", type=positive_int, default=None)
    pr.add_argument("--qualities", type=quality, nargs="+", default=[10, 50, 90], help="WebP/JPEG qualities")
    pr.add_argument("--timing-frames", type=positive_int, default=50)
    pr.add_argument("--timings-from", default=None,
                    help="take device/server ms from this profile (same machine) instead of timing again")
    pr.add_argument("--device-class", default="measured machine")
    pr.add_argument("--device-speed", type=positive_float, default=1.0, help="device ms = measured ms x this")
    pr.add_argument("--server-speed", type=positive_float, default=1.0, help="server ms = measured ms x this")
    pr.add_argument("--link-class", default="trace as recorded")
    pr.add_argument("--trace-scale", type=positive_float, default=1.0, help="multiply trace throughput by this")
    pr.add_argument("--rtt-ms", type=nonnegative_float, default=40.0)
    pr.add_argument("--jitter-ms", type=nonnegative_float, default=5.0)
    pr.add_argument("--loss", type=probability, default=0.0, help="mean packet loss (Gilbert–Elliott)")
    pr.add_argument("--compute-w", type=nonnegative_float, default=5.0)
    pr.add_argument("--radio-tx-w", type=nonnegative_float, default=2.5)
    pr.add_argument("--idle-w", type=nonnegative_float, default=1.5)
    pr.add_argument("--json", required=True)
    pr.set_defaults(func=cmd_profile)

    lk = sub.add_parser("link", help="TCP proxy that shapes traffic to a throughput trace")
    lk.add_argument("--listen", type=host_port, default="127.0.0.1:0", help="HOST:PORT to accept clients on")
    lk.add_argument("--upstream", type=host_port, required=True, help="HOST:PORT of the real server")
    lk.add_argument("--trace", required=True, help="trace file (any supported format)")
    lk.add_argument("--rtt-ms", type=nonnegative_float, default=40.0)
    lk.add_argument("--loss", type=probability, default=0.0, help="mean packet loss, seen as retransmission stalls")
    lk.add_argument("--scale", type=positive_float, default=1.0, help="multiply the trace's throughput by this")
    lk.add_argument("--start-s", type=nonnegative_float, default=0.0, help="trace time to start at")
    lk.add_argument("--seed", type=int, default=0)
    lk.set_defaults(func=cmd_link)

    sm = sub.add_parser("simulate", help="run policies over throughput traces")
    sm.add_argument("--profile", default=None, help="profile JSON (default: the shipped one)")
    sm.add_argument("--traces", required=True, help="trace file or directory (recursive), or train/eval")
    sm.add_argument("--deadline-ms", type=positive_float, default=100.0)
    sm.add_argument("--fps", type=positive_float, default=10.0)
    sm.add_argument("--frames", type=positive_int, default=None, help="frames per trace (default: the whole trace)")
    sm.add_argument("--policy", nargs="+", required=True,
                    help="local, edge, fixed:<split>:<width>, greedy, oracle, static_best, ppo, dqn, or a policy file")
    sm.add_argument("--seed", type=int, default=0)
    sm.add_argument("--json", default=None)
    sm.add_argument("--plots", default=None, help="path prefix of the plots (default: beside --json)")
    sm.set_defaults(func=cmd_simulate)

    tp = train.add_parser("policy", help="train a PPO or DQN offloading policy on traces")
    tp.add_argument("--profile", default=None)
    tp.add_argument("--traces", default="train", help="trace file or directory, or train (the training split)")
    tp.add_argument("--algo", choices=("ppo", "dqn"), default="ppo")
    tp.add_argument("--steps", type=positive_int, default=200_000)
    tp.add_argument("--fps", type=positive_float, default=10.0)
    tp.add_argument("--deadline-ms", type=positive_float, default=100.0)
    tp.add_argument("--seed", type=int, default=0)
    tp.add_argument("--out", required=True)
    tp.set_defaults(func=cmd_train_policy)

    e = sub.add_parser("eval", help="rate–accuracy evaluation on an npz data set")
    e.add_argument("--checkpoint", type=asset_path, default=None, help="split checkpoint (default: the shipped one)")
    e.add_argument("--model", default=None, help="evaluate a bare model instead (with --weights)")
    e.add_argument("--weights", default=None)
    e.add_argument("--data", type=asset_path, default=None, help="npz data set (default: the shipped demo sample)")
    e.add_argument("--limit", type=positive_int, default=None, help="first N images only")
    e.add_argument("--scenes", type=positive_int, default=1000,
                   help="detectors given object images: how many validation scenes to build (seed 1)")
    e.add_argument("--qualities", type=quality, nargs="+", default=list(DEFAULT_QUALITIES),
                   help="JPEG and WebP qualities")
    e.add_argument("--no-png", action="store_true")
    e.add_argument("--feature-codecs", nargs="*", default=["int8+zstd", "int4+zstd"],
                   choices=("fp32", "fp16", "int8+zstd", "int4+zstd"), help="raw-feature codecs at each split")
    e.add_argument("--device-budget", type=fraction, default=None,
                   help="the verdict considers only configurations whose device share of the model's MACs is at "
                        "most this fraction (default 0.10 for classifiers, 0.15 for detectors); the report also "
                        "lists the frontier at 5, 10, 20 and 100 %%")
    e.add_argument("--timing-frames", type=positive_int, default=50)
    e.add_argument("--batch-size", type=positive_int, default=250)
    e.add_argument("--json", default=None, help="write the report here")
    e.add_argument("--plot", default=None, help="rate–accuracy PNG (default: beside --json)")
    e.set_defaults(func=cmd_eval)

    s = sub.add_parser("serve", help="run the edge server (decoders + tails) over gRPC")
    s.add_argument("--address", type=host_port, default="127.0.0.1:50051",
                   help="HOST:PORT to listen on (port 0: any free port)")
    s.add_argument("--checkpoint", type=asset_path, default=None, help="split checkpoint (default: the shipped one)")
    s.add_argument("--max-batch", type=positive_int, default=32, help="largest micro-batch for the tail")
    s.add_argument("--max-wait-ms", type=nonnegative_float, default=0.0,
                   help="longest wait to fill a micro-batch (0: batch only what is already queued)")
    s.add_argument("--max-queue", type=positive_int, default=512, help="queued frames before RESOURCE_EXHAUSTED")
    s.add_argument("--workers", type=positive_int, default=None,
                   help="no effect (the asyncio server holds no thread per call); kept so old command lines run")
    s.add_argument("--max-message-bytes", type=positive_int, default=4 * 1024 * 1024)
    s.add_argument("--tls-cert", default=None, help="PEM server certificate (enables TLS)")
    s.add_argument("--tls-key", default=None, help="PEM server private key")
    s.add_argument("--client-ca", default=None, help="PEM CA for client certificates (mutual TLS)")
    s.add_argument("--token", default=None, help="require this bearer token (needs TLS)")
    s.add_argument("--token-file", default=None, help="read the bearer token from a file")
    s.add_argument("--insecure-token-over-plaintext", action="store_true",
                   help="accept --token without TLS: anyone on the network path can read it")
    s.add_argument("--port-file", default=None, help="write the bound port here once listening")
    s.add_argument("--grace-s", type=nonnegative_float, default=5.0, help="seconds in-flight frames get at shutdown")
    s.add_argument("--default-budget-s", type=nonnegative_float, default=30.0,
                   help="time budget of a frame whose call has no deadline and no budget_ms")
    s.add_argument("--stream-idle-timeout-s", type=nonnegative_float, default=30.0,
                   help="end a stream that sent no frame for this long with DEADLINE_EXCEEDED (0: never)")
    s.add_argument("--max-streams-per-connection", type=positive_int, default=100,
                   help="concurrent calls one client connection may have open (HTTP/2 max concurrent streams)")
    s.add_argument("--max-connection-idle-s", type=nonnegative_float, default=300.0,
                   help="close a connection that had no call for this long (0: never)")
    s.add_argument("--max-connection-age-s", type=nonnegative_float, default=1800.0,
                   help="ask a client to reconnect after this long, so names are re-resolved (0: never)")
    s.add_argument("--max-connection-age-grace-s", type=nonnegative_float, default=30.0,
                   help="calls still open at the connection's maximum age get this long to finish")
    s.add_argument("--min-client-ping-interval-s", type=nonnegative_float, default=10.0,
                   help="keepalive enforcement: a client pinging more often is disconnected (GOAWAY)")
    s.add_argument("--metrics-port", type=nonnegative_int, default=None,
                   help="serve Prometheus metrics on http://HOST:PORT/metrics (0 or absent: off)")
    s.add_argument("--metrics-address", default=None, help="host for the metrics endpoint (default: --address's)")
    s.add_argument("--engine", choices=("embedded", "ray"), default="embedded",
                   help="embedded: this process serves; ray: deploy on Ray Serve (pip install 'splitnet[ray]')")
    from splitnet_cli.ray_options import add_ray_arguments

    add_ray_arguments(s)
    s.set_defaults(func=cmd_serve)

    c = sub.add_parser("client", help="run the device client on frames (npz, image folder, video) against a server")
    c.add_argument("--server", required=True, type=server_list,
                   help="HOST:PORT (resolved by gRPC; every address of the name is used, round robin), a gRPC "
                        "target such as dns:///edge.example:50051, or several IP:PORT separated by commas")
    c.add_argument("--data", type=asset_path, default=None,
                   help="npz (labels optional), image folder (class sub-folders give labels), image or video file; "
                        "frames of any size (default: the shipped demo sample)")
    c.add_argument("--limit", type=positive_int, default=None)
    c.add_argument("--checkpoint", type=asset_path, default=None, help="split checkpoint (default: the shipped one)")
    c.add_argument("--policy", default="layer2/w0.5",
                   help="an action for every frame (local, layer1/w0.5, layer2/int8+zstd, webp/q75, ...), or a "
                        "policy: edge, fixed:<split>:<width>, greedy, ppo, dqn, or a policy file")
    c.add_argument("--profile", default=None, help="profile for greedy/edge (default: the shipped one)")
    c.add_argument("--deadline-ms", type=positive_float, default=None,
                   help="per-frame deadline from the frame's arrival (> 0; omit for none: the default budget "
                        "bounds the wait); late answers count as misses")
    c.add_argument("--mode", choices=("stream", "unary"), default="stream")
    c.add_argument("--max-in-flight", type=positive_int, default=8)
    c.add_argument("--device-batch", type=positive_int, default=1,
                   help="stream mode: run head and encoder on groups of this many frames (throughput over latency)")
    c.add_argument("--tls", action="store_true", help="use TLS with the system's root certificates")
    c.add_argument("--tls-ca", default=None, help="PEM CA that signed the server certificate")
    c.add_argument("--tls-cert", default=None, help="PEM client certificate (mutual TLS)")
    c.add_argument("--tls-key", default=None, help="PEM client key (mutual TLS)")
    c.add_argument("--tls-server-name", default=None, help="name to check in the server certificate")
    c.add_argument("--token", default=None, help="bearer token (sent only over TLS)")
    c.add_argument("--token-file", default=None)
    c.add_argument("--insecure-token-over-plaintext", action="store_true",
                   help="send --token without TLS: anyone on the network path can read it")
    c.add_argument("--wait-ready", type=nonnegative_float, default=0.0, help="seconds to wait for the server first")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.add_argument("--fps", type=positive_float, default=None,
                   help="paced camera: hand over one frame every 1/FPS s (latency counts from each tick)")
    c.add_argument("--budget-ms", type=positive_float, default=None,
                   help="without --deadline-ms, the longest a frame may take from its arrival (default 2000); "
                        "the wait for the server ends in time for a local fallback")
    c.add_argument("--no-calibration", action="store_true",
                   help="do not time the actions on this device at start (greedy/edge then use the profile's)")
    c.add_argument("--emulate-device", action="store_true",
                   help="pretend to be the profile's device: pad device compute to its times (a fast machine "
                        "replaying a slow device); policies then use the profile's times")
    c.add_argument("--allow-local", action="store_true",
                   help="exit 0 even when no frame was answered by the server")
    c.add_argument("--json", default=None)
    c.set_defaults(func=cmd_client)

    d = sub.add_parser("demo", help="the shipped model on the shipped demo sample, in process and over gRPC")
    d.add_argument("--limit", type=positive_int, default=None)
    d.add_argument("--policy", default="relu/w0.5",
                   help="action the classification demo client uses (default: the light encoder at half width)")
    d.add_argument("--detection-policy", default="layer2/w0.5", help="action the detection demo client uses")
    d.add_argument("--skip-eval", action="store_true", help="skip the in-process rate–accuracy table")
    d.add_argument("--skip-detection", action="store_true", help="skip the split-detection part")
    d.add_argument("--json", default="out/demo_client.json")
    d.set_defaults(func=cmd_demo)
    return parser


def import_user_modules(args: argparse.Namespace) -> None:
    """Import ``--import`` modules (and installed ``splitnet.models`` entry points) before the command."""
    if getattr(args, "imports", None):
        from splitnet.models import load_plugins

        load_plugins(args.imports)


def _error_line(exc: BaseException) -> str:
    """One line for an expected failure: the message, or the exception type when there is none."""
    import grpc

    if isinstance(exc, grpc.FutureTimeoutError):
        return "the server did not become ready in time (is it running, and is the address right?)"
    if isinstance(exc, grpc.RpcError):
        code = exc.code() if hasattr(exc, "code") else None
        details = exc.details() if hasattr(exc, "details") else str(exc)
        return f"RPC failed: {getattr(code, 'name', code)}: {details}"
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        return f"{exc.strerror}: {exc.filename}"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, (SplitnetError, OSError, ValueError)) else f"{type(exc).__name__}: {text}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand. Every failure ends in one line on stderr and a non-zero exit status
    (2: bad input or state, 70: an unexpected internal error, 130: interrupted); ``--debug``
    re-raises so the traceback shows."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "json", None):  # a report will be written: name the code it comes from now
        from splitnet.provenance import remember_start

        remember_start()
    if not args.debug:  # gRPC's C core would print its own copy of a bind error before ours
        import os

        os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    try:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        import_user_modules(args)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the one top-level handler: one line, no traceback
        if args.debug:
            raise
        import grpc

        # RuntimeError: gRPC's "failed to bind", torch's size mismatches on user weights
        expected = (SplitnetError, OSError, ValueError, RuntimeError, grpc.RpcError, grpc.FutureTimeoutError)
        line = _error_line(exc)
        if isinstance(exc, expected):
            print(f"splitnet: error: {line}", file=sys.stderr)
            return 2
        print(f"splitnet: internal error: {line} (run with --debug for the traceback)", file=sys.stderr)
        return 70


if __name__ == "__main__":
    sys.exit(main())
