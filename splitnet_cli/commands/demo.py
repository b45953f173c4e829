"""``splitnet demo``: the shipped model end to end on this machine.

1. The rate–accuracy table of the shipped checkpoint on the shipped demo sample (in process).
2. ``splitnet serve`` started as a separate process on a free local port; once its
   health service says SERVING, the device client streams the demo sample to it,
   then the server is stopped with SIGTERM and must exit cleanly.
3. The same for the shipped split detector on the shipped demo scenes: boxes back over
   gRPC, mAP of what came back, and the frames the object filter kept off the link.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from splitnet_cli.argtypes import positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("demo", help="the shipped model on the shipped demo sample, in process and over gRPC")
    d.add_argument("--limit", type=positive_int, default=None)
    d.add_argument("--policy", default="layer2/w0.5",
                   help="action the classification demo client uses (default: the layer2 light encoder at half width)")
    d.add_argument("--detection-policy", default="layer2/w0.5", help="action the detection demo client uses")
    d.add_argument("--skip-eval", action="store_true", help="skip the in-process rate–accuracy table")
    d.add_argument("--skip-detection", action="store_true", help="skip the split-detection part")
    d.add_argument("--json", default="out/demo_client.json")
    d.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Shipped checkpoint and demo sample: rate–accuracy table, then server + client over gRPC."""
    return run_demo(args.policy, args.limit, args.json, not args.skip_eval, not args.skip_detection,
                    args.detection_policy)


def run_detection_demo(policy: str, limit: int | None) -> int:
    """The shipped detector over gRPC on the shipped demo scenes; 0 when no frame was lost."""
    import torch
    from tqdm import tqdm

    from device_client import SplitClient
    from device_client.report import client_report, detection_scores, format_report
    from edge_server.process import spawn_server, wait_serving
    from splitnet.checkpoint import DETECTION_DEMO_DATA, SHIPPED_DETECTOR, SplitCheckpoint
    from splitnet.detection.synth import DetectionSet

    torch.set_num_threads(1)
    ckpt = SplitCheckpoint.load(SHIPPED_DETECTOR)
    data = DetectionSet.load(DETECTION_DEMO_DATA)
    if limit:
        data = data.subset(0, min(limit, len(data)))
    print(f"\n== split detection: {ckpt.model_name} ({ckpt.sha256[:12]}…), {len(data)} demo scenes ==")
    server = spawn_server("--checkpoint", str(SHIPPED_DETECTOR))
    try:
        wait_serving(server.address)
        print(f"server pid {server.proc.pid} SERVING at {server.address}")
        with SplitClient(server.address, checkpoint=ckpt, policy=policy) as client:
            results = list(tqdm(client.stream(iter(data.images)), total=len(data), desc=f"scenes ({policy})",
                                unit="frame"))
        report = client_report(results, None, len(data))
        report.update(detection_scores(results, [data.targets(i) for i in range(len(data))]))
        print(format_report(report))
    finally:
        code = server.terminate()
        print(f"server stopped with SIGTERM (exit code {code})")
    return 0 if code == 0 and report["frames_lost"] == 0 else 1


def run_demo(policy: str, limit: int | None, json_path: str | None, eval_first: bool,
             detection: bool = True, detection_policy: str = "layer2/w0.5") -> int:
    import torch
    from tqdm import tqdm

    from device_client import SplitClient
    from device_client.report import client_report, format_report
    from edge_server.process import spawn_server, wait_serving
    from splitnet.checkpoint import DEMO_DATA, SplitCheckpoint
    from splitnet.data import load_npz
    from splitnet.evaluation import EvalOptions, evaluate, format_table

    torch.set_num_threads(1)  # the server runs beside us on the same cores

    ckpt = SplitCheckpoint.load()
    data = load_npz(DEMO_DATA, limit=limit)
    print(f"splitnet demo: {ckpt.model_name}, checkpoint {ckpt.sha256[:12]}…, {len(data)} demo images\n")
    if eval_first:
        report = evaluate(ckpt, data, EvalOptions(jpeg_qualities=(50, 90), webp_qualities=(50, 90), png=False,
                                                  feature_codecs=("int8+zstd",), timing_frames=20))
        print("== rate–accuracy, in process ==")
        print(format_table(report), "\n")

    print("== edge server and device client, two processes over gRPC ==")
    server = spawn_server()
    try:
        wait_serving(server.address)
        print(f"server pid {server.proc.pid} SERVING at {server.address}")
        results = []
        with SplitClient(server.address, checkpoint=ckpt, policy=policy) as client:
            for r in tqdm(client.stream(iter(data.images)), total=len(data), desc=f"frames ({policy})", unit="frame"):
                results.append(r)
        report = client_report(results, data.labels, len(data))
        report.update({"server": server.address, "policy": policy, "mode": "stream", "data": data.path})
        print(format_report(report))
        if json_path:
            Path(json_path).parent.mkdir(parents=True, exist_ok=True)
            Path(json_path).write_text(json.dumps(report, indent=2) + "\n")
            print(f"wrote {json_path}")
    finally:
        code = server.terminate()
        print(f"server stopped with SIGTERM (exit code {code})")
    status = 0 if code == 0 and report["frames_lost"] == 0 else 1
    if detection:
        status |= run_detection_demo(detection_policy, limit)
    return status
