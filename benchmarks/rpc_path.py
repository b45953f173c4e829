"""The RPC path's own time per call: what a live round trip takes beyond the simulator's link model and the
server's compute.

One ``splitnet serve`` (the shipped checkpoint); for each action, ``splitnet client`` (stream mode,
``--emulate-device`` with the shipped profile, ``--fps``, the profile's deadline) sends ``--frames``
validation images

* directly to the server: each offloaded frame's network time (its round trip less the server's queue,
  decode and tail, as the client measures it) is the RPC stack's own time on loopback (gRPC and protobuf on
  both ends, the servicer);
* through ``splitnet link`` playing a constant trace (``--mbps``, ``--rtt-ms``, no jitter): the network time
  less what the simulator's link model gives the frame (serialization of its wire bytes, payload plus the
  profile's ``overhead_bytes``, at the constant rate, plus the RTT) is the stack's time plus the link
  emulator's forwarding, as the live agreement benchmark meets it.

Both on this machine, with client, link and server sharing its cores. The report also gives the server's
queue + decode + tail per frame as measured live against the profile's ``server_ms`` (timed back to back:
frames 100 ms apart find the server's caches cold). A profile's scenario takes both figures
(``splitnet profile --request-overhead-ms X --server-speed Y``) so that the simulator charges each call what the
live path costs: ``request_overhead_ms``, the mean through-link excess over the actions, and
``server_slowdown``, the mean ratio of the live server time to the profile's over the actions and both modes.
The run the shipped profile was calibrated from is ``reports/rpc_path.json``; ``reports/rpc_path/run-*.json``
measure the path again (``scripts/run_reports.sh``), and the README gives both.

    python -m benchmarks.rpc_path [--actions webp/q50 layer2/w0.25] [--frames 300] [--json reports/rpc_path/run-1.json]
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

from benchmarks.common import benchmark_arguments, run_splitnet, serving, summary, write_json
from examples import detection_loop as example
from policies.network.channel_models import HEADER_BYTES, MSS_BYTES
from policies.simulation.profile import Profile

ROOT = Path(__file__).resolve().parents[1]
VAL = ROOT.parent / "shared" / "data" / "cifar10" / "val.npz"


def _client(address: str, action: str, args, frames: int, out_json: Path) -> dict:
    run_splitnet("client", "--server", address, "--policy", action, "--emulate-device", "--fps", str(args.fps),
                 "--deadline-ms", str(args.deadline_ms), "--data", str(args.data), "--limit", str(frames),
                 "--quiet", "--allow-local", "--json", str(out_json),
                 *(["--checkpoint", args.checkpoint] if args.checkpoint else []),
                 threads=args.threads, timeout_s=frames / args.fps * 5 + 300)
    return json.loads(out_json.read_text())


def frame_server_ms(frame: dict) -> float:
    """One offloaded frame's server time as the client's report gives it: queue + decode + tail (ms)."""
    stages = frame["stages_ms"]
    return stages["queue"] + stages["decode"] + stages["tail"]


def link_model_ms(wire_bytes: int, mbps: float, rtt_ms: float) -> float:
    """The simulator's time for a request of ``wire_bytes`` on a constant link: serialization (with packet
    headers) plus the RTT (ms)."""
    packets = -(-wire_bytes // MSS_BYTES)
    return 8.0 * (wire_bytes + packets * HEADER_BYTES) / (mbps * 1e3) + rtt_ms


def excess(report: dict, overhead_bytes: int, mbps: float | None, rtt_ms: float) -> list[float]:
    """Per offloaded frame: network ms less the link model's ms (``mbps`` None: no link, the whole network ms)."""
    out = []
    for f in report["frames_detail"]:
        if f["ran_on"] != "server":
            continue
        model = 0.0 if mbps is None else link_model_ms(f["payload_bytes"] + overhead_bytes, mbps, rtt_ms)
        out.append(f["stages_ms"]["network"] - model)
    return out


def constant_trace(path: Path, mbps: float, seconds: int) -> Path:
    """A trace file of ``seconds`` one-second rows at ``mbps`` (Mbit/s)."""
    path.write_text("".join(f"{t}.0\t{mbps}\n" for t in range(seconds)))
    return path


def measure_action(server: str, profile: Profile, action: str, modes: tuple[str, ...], frames: int, args,
                   work: Path, trace: Path) -> dict:
    """``frames`` frames of ``action`` sent in each of ``modes`` (``direct`` to ``server``, ``link`` through
    ``splitnet link`` playing ``trace``, a :func:`constant_trace` at ``args.mbps``, with ``args.rtt_ms``); per mode
    the network ms beyond the link model and the live server ms (queue + decode + tail) of each offloaded frame,
    summarized."""
    a = profile.actions[profile.index(action)]
    row: dict = {"overhead_bytes": a.overhead_bytes, "profile_server_ms": a.server_ms}
    for mode in modes:
        link = None
        address = server
        if mode == "link":
            link = example.spawn_link(trace, server, work, args.rtt_ms, timeout_s=120)
            address = link.address
        try:
            report = _client(address, action, args, frames, work / f"{action.replace('/', '_')}-{mode}.json")
        finally:
            if link is not None:
                link.terminate()
        values = excess(report, a.overhead_bytes, args.mbps if mode == "link" else None, args.rtt_ms)
        server_ms = [frame_server_ms(f) for f in report["frames_detail"] if f["ran_on"] == "server"]
        if not values:
            raise RuntimeError(f"no frame of {action} was answered by the server ({mode})")
        row[mode] = {"excess_ms": summary(values), "excess_ms_values": [round(v, 3) for v in values],
                     "server_ms": summary(server_ms),
                     "client_queue_ms_mean": report.get("stage_ms_mean", {}).get("client_queue_ms"),
                     "frames_answered": report["frames_answered"], "frames": report["frames"]}
        print(f"{action:>14} {mode:>6}: network beyond the link model: mean "
              f"{row[mode]['excess_ms']['mean']:.2f} ms, median {row[mode]['excess_ms']['median']:.2f} ms; "
              f"server {row[mode]['server_ms']['mean']:.2f} ms (profile {a.server_ms:.2f}); "
              f"{report['frames_answered']}/{report['frames']} answered", flush=True)
    return row


def path_arguments(ap) -> None:
    """The constant link's options (shared with benchmarks.live_agreement's calibration)."""
    ap.add_argument("--mbps", type=float, default=0.1, help="the constant link's throughput (Mbit/s)")
    ap.add_argument("--rtt-ms", type=float, default=20.0)


def main() -> None:
    ap = benchmark_arguments(__doc__)
    ap.add_argument("--actions", nargs="+", default=["webp/q50", "layer2/w0.25"])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--fps", type=float, default=10.0)
    ap.add_argument("--deadline-ms", type=float, default=100.0)
    path_arguments(ap)
    ap.add_argument("--data", default=str(VAL))
    args = ap.parse_args()
    profile = Profile.load()
    rows = {}
    with tempfile.TemporaryDirectory(prefix="splitnet-rpc-path-") as tmp:
        trace = constant_trace(Path(tmp) / "constant.log", args.mbps, int(args.frames / args.fps) + 600)
        with serving(checkpoint=args.checkpoint, workdir=tmp) as server:
            for action in args.actions:
                rows[action] = measure_action(server.address, profile, action, ("direct", "link"), args.frames,
                                              args, Path(tmp), trace)
    overhead = statistics.fmean(r["link"]["excess_ms"]["mean"] for r in rows.values())
    stack = statistics.fmean(r["direct"]["excess_ms"]["mean"] for r in rows.values())
    slowdown = statistics.fmean(r[mode]["server_ms"]["mean"] / r["profile_server_ms"]
                                for r in rows.values() for mode in ("direct", "link"))
    print(f"request_overhead_ms (mean through the link over the actions): {overhead:.2f} ms "
          f"(of which the RPC stack alone, direct: {stack:.2f} ms); server_slowdown (live server ms / the "
          f"profile's): {slowdown:.2f}")
    write_json("rpc_path", {"actions": rows, "fps": args.fps, "deadline_ms": args.deadline_ms,
                            "frames": args.frames, "mbps": args.mbps, "rtt_ms": args.rtt_ms,
                            "profile_checkpoint_sha256": profile.checkpoint_sha256,
                            "request_overhead_ms": overhead, "stack_only_ms": stack,
                            "server_slowdown": slowdown}, args.json)


if __name__ == "__main__":
    main()
