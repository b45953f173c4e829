"""Split detection in a perception loop: a camera at a fixed frame rate, an edge server, a shaped link.

Each tick (``--fps``, default 10) submits the newest frame to a
:class:`~device_client.detector.SplitDetector` without waiting and collects the results
that have finished; the detector drops frames rather than letting a queue grow, so the
loop keeps the camera's pace and latency stays bounded. Once a second it prints the
results per second, latency p50/max (ms), bytes per frame, drops and fallbacks; at the
end, a summary (``--json`` writes it). ``--out`` writes annotated PNG frames.

Frames: ``--video FILE`` (needs OpenCV or PyAV), else the shipped demo scenes, looped.
Without ``--server`` the script starts ``splitnet serve`` itself on a free port; with
``--trace`` it puts ``splitnet link`` between the client and the server so the uplink
follows that throughput trace ("seconds Mbit/s" lines, or any format ``splitnet link``
reads). Both child processes are stopped at the end.

    python examples/detection_loop.py --checkpoint runs/det_dev_split.pt --seconds 10 --out /tmp/frames
    python examples/detection_loop.py --trace trace.txt --rtt-ms 40 --fps 10 --json summary.json
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from device_client.detector import SplitDetector  # noqa: E402
from edge_server.process import ServerProcess, spawn_server, wait_serving  # noqa: E402
from examples.perception_loop import demo_frames, format_summary, run_loop, video_frames  # noqa: E402
from splitnet.checkpoint import SHIPPED_DETECTOR, SplitCheckpoint  # noqa: E402


@dataclass
class LinkProcess:
    """A ``splitnet link`` child process shaping the uplink to ``upstream``."""

    proc: subprocess.Popen
    address: str  # where clients connect (HOST:PORT)
    log: Path

    def terminate(self, timeout_s: float = 10.0) -> int:
        """SIGTERM and wait: returns the exit status."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout_s)


def spawn_link(trace: str | Path, upstream: str, workdir: Path, rtt_ms: float = 40.0,
               timeout_s: float = 60.0, scale: float = 1.0, jitter_ms: float = 0.0) -> LinkProcess:
    """Start ``splitnet link`` on a free 127.0.0.1 port in front of ``upstream`` and wait until it listens
    (``scale`` multiplies the trace's throughput; ``jitter_ms``: the RTT's standard deviation)."""
    log = workdir / f"link-{time.monotonic_ns()}.log"
    cmd = [sys.executable, "-m", "splitnet_cli.main", "link", "--listen", "127.0.0.1:0", "--upstream", upstream,
           "--trace", str(trace), "--rtt-ms", str(rtt_ms), "--scale", str(scale), "--jitter-ms", str(jitter_ms)]
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT)
    end = time.monotonic() + timeout_s
    while not (m := re.search(r"listening on (\S+):(\d+) ", log.read_text())):
        if proc.poll() is not None:
            raise RuntimeError(f"splitnet link exited with {proc.returncode}:\n{log.read_text()}")
        if time.monotonic() > end:
            proc.kill()
            raise TimeoutError(f"splitnet link did not start within {timeout_s:.0f} s:\n{log.read_text()}")
        time.sleep(0.05)
    return LinkProcess(proc, f"{m.group(1)}:{m.group(2)}", log)


def write_trace(path: str | Path, segments: Sequence[tuple[float, float]]) -> Path:
    """A "seconds Mbit/s" trace: ``segments`` of (duration s, Mbit/s), one line per second."""
    lines, t = [], 0.0
    for duration_s, mbps in segments:
        for k in range(max(1, round(duration_s))):
            lines.append(f"{t + k:.1f}\t{mbps:g}\n")
        t += max(1, round(duration_s))
    path = Path(path)
    path.write_text("".join(lines))
    return path


@dataclass
class Testbed:
    """Where the client connects, and the child processes this script started (stopped on exit)."""

    address: str
    server: ServerProcess | None = None
    link: LinkProcess | None = None
    exit_codes: dict[str, int] = field(default_factory=dict)


@contextmanager
def testbed(checkpoint: str | Path, server: str | None = None, trace: str | Path | None = None,
            rtt_ms: float = 40.0, workdir: str | Path | None = None) -> Iterator[Testbed]:
    """Start ``splitnet serve`` (unless ``server`` is given) and ``splitnet link`` (when ``trace`` is)."""
    with ExitStack() as stack:
        if workdir is None:
            workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="splitnet-loop-"))
        workdir = Path(workdir)
        bed = Testbed(server or "")
        try:
            if server is None:
                bed.server = spawn_server("--checkpoint", str(checkpoint), workdir=workdir)
                bed.address = bed.server.address
                wait_serving(bed.address)
            if trace is not None:
                bed.link = spawn_link(trace, bed.address, workdir, rtt_ms)
                bed.address = bed.link.address
            yield bed
        finally:
            if bed.link is not None and bed.link.proc.poll() is None:
                bed.link.proc.terminate()  # both shut down at once; the server waits for its in-flight frames
            if bed.server is not None:
                bed.exit_codes["server"] = bed.server.terminate()
            if bed.link is not None:
                bed.exit_codes["link"] = bed.link.terminate()


def _frames(args: argparse.Namespace, ckpt: SplitCheckpoint) -> tuple[Iterator, tuple[str, ...], str]:
    """The frame source, the class names and a description of the source."""
    frames, classes = demo_frames()
    if args.video:
        video = video_frames(args.video, ckpt.spec.input_size)
        if video is not None:
            return video, classes, str(args.video)
        print("neither OpenCV (cv2) nor PyAV (av) is installed: using the demo frames", file=sys.stderr)
    return frames, classes, "demo"


def _wait_connected(det: SplitDetector, timeout_s: float = 10.0) -> None:
    """Let the clients connect first, so the first frames do not fall back while channels open."""
    try:
        for client in det.clients:
            client.wait_until_ready(timeout_s)
    except grpc.FutureTimeoutError:
        print(f"server not reachable after {timeout_s:.0f} s: frames run locally until it is", file=sys.stderr)


def run(args: argparse.Namespace) -> dict:
    """Set up server and link as asked, run the loop, tear everything down; returns the summary."""
    ckpt = SplitCheckpoint.load(args.checkpoint)
    deadline_ms = args.deadline_ms if args.deadline_ms is not None else 2e3 / args.fps
    frames, classes, source = _frames(args, ckpt)
    with testbed(args.checkpoint, args.server, args.trace, args.rtt_ms) as bed:
        print(f"detector {ckpt.model_name} via {bed.address} ({'link ' + str(args.trace) if bed.link else 'direct'}),"
              f" policy {args.policy}, {args.fps:g} FPS, deadline {deadline_ms:.0f} ms, frames: {source}")
        with SplitDetector.connect(bed.address, checkpoint=ckpt, policy=args.policy, deadline_ms=deadline_ms,
                                   max_in_flight=args.max_in_flight, max_pending=args.max_pending) as det:
            _wait_connected(det)
            summary = run_loop(det, frames, fps=args.fps, seconds=args.seconds, out_dir=args.out,
                               save_every=args.save_every, class_names=classes, min_score=args.min_score)
    summary = {"checkpoint": str(args.checkpoint), "policy": args.policy, "source": source,
               "trace": str(args.trace) if args.trace else None, "rtt_ms": args.rtt_ms if args.trace else None,
               "max_in_flight": args.max_in_flight, "max_pending": args.max_pending,
               **summary, "exit_codes": bed.exit_codes}
    print(format_summary(summary))
    if args.out:
        print(f"annotated frames in {args.out}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
        print(f"wrote {args.json}")
    return summary


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=str(SHIPPED_DETECTOR), help="split detector checkpoint")
    ap.add_argument("--server", default=None, help="HOST:PORT of a running server (default: start one)")
    ap.add_argument("--trace", default=None, help="throughput trace: put `splitnet link` in between")
    ap.add_argument("--rtt-ms", type=float, default=40.0, help="the link's round-trip time (with --trace)")
    ap.add_argument("--video", default=None, help="video file (OpenCV or PyAV); default: the demo frames")
    ap.add_argument("--fps", type=float, default=10.0, help="target frame rate (frames/s)")
    ap.add_argument("--seconds", type=float, default=10.0, help="how long to run (s)")
    ap.add_argument("--deadline-ms", type=float, default=None, help="per-frame deadline (default: 2 frame periods)")
    ap.add_argument("--policy", default="layer2/w0.5", help="action, e.g. layer2/w0.5 or local")
    ap.add_argument("--max-in-flight", type=int, default=2, help="frames being processed at once")
    ap.add_argument("--max-pending", type=int, default=1, help="frames waiting (the oldest is dropped)")
    ap.add_argument("--out", default=None, help="directory for annotated PNG frames")
    ap.add_argument("--save-every", type=int, default=1, help="annotate every Nth frame")
    ap.add_argument("--min-score", type=float, default=0.3, help="draw boxes with at least this score")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads of this (device) process")
    ap.add_argument("--json", default=None, help="write the summary here")
    return ap


def main(argv: Sequence[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    if not Path(args.checkpoint).is_file():
        hint = " (the shipped detector is not trained yet; try --checkpoint runs/det_dev_split.pt)" \
            if Path(args.checkpoint) == SHIPPED_DETECTOR else ""
        raise SystemExit(f"checkpoint not found: {args.checkpoint}{hint}")
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return run(args)
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    main()
