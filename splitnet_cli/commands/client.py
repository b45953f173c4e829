"""``splitnet client``: the device client on frames (npz, image folder, image, video) against edge servers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from splitnet_cli.argtypes import (
    asset_path,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
    server_list,
)
from splitnet_cli.options import add_token_arguments, read_token
from splitnet_cli.reports import command_line, write_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("client", help="run the device client on frames (npz, image folder, video) against a server")
    c.add_argument("--server", required=True, type=server_list,
                   help="HOST:PORT (resolved by gRPC; every address of the name is used, round robin), a gRPC "
                        "target such as dns:///edge.example:50051, or several IP:PORT separated by commas")
    c.add_argument("--data", type=asset_path, default=None,
                   help="npz (labels optional), image folder (class sub-folders give labels), image or video file; "
                        "frames of any size (default: the shipped demo sample)")
    c.add_argument("--limit", type=positive_int, default=None)
    c.add_argument("--checkpoint", type=asset_path, default=None, help="split checkpoint (default: the shipped one)")
    c.add_argument("--obs-log", default=None,
                   help="write what the policy saw and chose for each frame (JSON lines), to compare with simulate")
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
    add_token_arguments(c, "client")
    c.add_argument("--wait-ready", type=nonnegative_float, default=0.0, help="seconds to wait for the server first")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.add_argument("--fps", type=positive_float, default=None,
                   help="a live camera at FPS frames/s: the device takes the newest frame when it is free, frames "
                        "overtaken meanwhile are dropped and count as deadline misses (latency counts from each "
                        "frame's tick)")
    c.add_argument("--every-frame", action="store_true",
                   help="with --fps: hand over every frame, none dropped (a buffered recording; a device that falls "
                        "behind sees latency grow)")
    c.add_argument("--budget-ms", type=positive_float, default=None,
                   help="without --deadline-ms, the longest a frame may take from its arrival (default 2000); "
                        "the wait for the server ends in time for a local fallback (a device whose local run "
                        "cannot make the deadline waits up to this budget)")
    c.add_argument("--link-probes", type=nonnegative_int, default=3,
                   help="probe the link this many times before the first frame, so the policy starts with an "
                        "estimate (0: none)")
    c.add_argument("--no-calibration", action="store_true",
                   help="do not time the actions on this device at start (greedy/edge then use the profile's)")
    c.add_argument("--emulate-device", action="store_true",
                   help="pretend to be the profile's device: pad device compute to its times (a fast machine "
                        "replaying a slow device); policies then use the profile's times")
    c.add_argument("--allow-local", action="store_true",
                   help="exit 0 even when no frame was answered by the server")
    c.add_argument("--json", default=None)
    c.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from device_client import SplitClient, TlsOptions
    from device_client.camera import LiveCamera, paced
    from device_client.report import client_report, detection_scores, format_report, frame_record
    from splitnet.checkpoint import DEMO_DATA, DETECTION_DEMO_DATA, SplitCheckpoint
    from splitnet.detection.synth import DetectionSet
    from splitnet.inputs import FrameSource, load_inputs

    if args.every_frame and not args.fps:
        raise ValueError("--every-frame paces a camera: give --fps too")
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
    token = read_token(args)
    tls = TlsOptions(args.tls_ca, args.tls_cert, args.tls_key, args.tls_server_name) if (
        args.tls_ca or args.tls_cert or args.tls) else None
    from policies.agents.factory import BASELINES, make_policy
    from policies.simulation.profile import Profile

    needs_profile = args.policy in BASELINES or args.policy.startswith("fixed:")  # greedy, robust_mpc, ...
    policy = make_policy(args.policy, Profile.load(args.profile) if needs_profile else None, live=True)
    if args.obs_log:
        from policies.agents.recording import RecordingPolicy

        policy = RecordingPolicy(policy, args.obs_log)
    results = []
    with SplitClient(args.server, checkpoint=ckpt, policy=policy, deadline_ms=args.deadline_ms,
                     tls=tls, token=token, max_in_flight=args.max_in_flight, default_budget_ms=args.budget_ms,
                     calibration=not args.no_calibration,
                     emulate=Profile.load(args.profile) if args.emulate_device else None,
                     insecure_token_over_plaintext=args.insecure_token_over_plaintext) as client:
        if args.wait_ready:
            client.wait_until_ready(args.wait_ready)
        if args.link_probes:
            client.measure_link(args.link_probes)
        frames = iter(data.frames)
        camera = None
        if args.fps and args.every_frame:
            frames = paced(frames, args.fps)
        elif args.fps:
            frames = camera = LiveCamera(frames, args.fps)
        answers = (client.stream(frames, device_batch=args.device_batch) if args.mode == "stream"
               else (client.infer(f) for f in frames))
        # A configuration error (ServerConfigError) ends the run: one line, non-zero exit (main()).
        for r in tqdm(answers, total=data.count, desc="frames", unit="frame", disable=args.quiet):
            results.append(r)
        breaker_events = [{"t_s": e.t, "action": e.action, "what": e.what} for e in client.breaker.events]
        calibrated = dict(client.calibration.device_ms) if client.calibration else None
    if args.obs_log:
        policy.close()
    dropped = len(camera.dropped) if camera else 0
    n_frames = data.count if data.count is not None else len(results) + dropped
    taken = camera.taken if camera else range(len(results))
    report = client_report(results, data.labels, n_frames, taken=taken, dropped=dropped)
    if detection is not None:
        report.update(detection_scores(results, [detection.targets(i) for i in range(len(detection))]))
    report.update({"server": args.server, "policy": args.policy, "mode": args.mode, "data": data.path,
                   "deadline_ms": args.deadline_ms, "fps": args.fps, "command": command_line(),
                   "calibrated_device_ms": calibrated, "breaker_events": breaker_events,
                   "camera": "live" if camera else "every frame" if args.fps else None,
                   "camera_started_monotonic_s": camera.started_at if camera else None,
                   "frames_detail": [{"frame": i, **frame_record(r)} for i, r in zip(taken, results)]})
    print(format_report(report))
    write_json(report, args.json)
    if report["frames_lost"]:
        return 1
    if report["frames_answered"] == 0 and results and not args.allow_local and any(
            r.chosen != "local" for r in results):
        reasons = ", ".join(f"{k} {v}" for k, v in report["fallback_reasons"].items()) or "none"
        print(f"splitnet: error: no frame was answered by the server (local fallbacks: {reasons}); "
              "pass --allow-local if running on the device is fine", file=sys.stderr)
        return 3
    return 0
