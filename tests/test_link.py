"""``splitnet link`` as a real process shaping real TCP traffic."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from device_client import SplitClient
from tests.servers import ROOT, start_server

pytestmark = pytest.mark.slow


def _start_link(trace: Path, upstream: str, *extra: str) -> tuple[subprocess.Popen, int]:
    cmd = [sys.executable, "-m", "splitnet_cli.main", "link", "--listen", "127.0.0.1:0", "--upstream", upstream,
           "--trace", str(trace), *extra]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = proc.stdout.readline()
    m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
    assert m, line
    return proc, int(m.group(1))


def _sink() -> tuple[socket.socket, dict]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    stats = {"bytes": 0, "last": 0.0}

    def run() -> None:
        conn, _ = srv.accept()
        while data := conn.recv(65536):
            stats["bytes"] += len(data)
            stats["last"] = time.monotonic()
        conn.close()

    threading.Thread(target=run, daemon=True).start()
    return srv, stats


def test_one_megabit_trace_gives_about_one_megabit(tmp_path: Path) -> None:
    trace = tmp_path / "one_mbps.log"
    trace.write_text("".join(f"{t}.0\t1.0\n" for t in range(60)))
    sink, stats = _sink()
    proc, port = _start_link(trace, f"127.0.0.1:{sink.getsockname()[1]}", "--rtt-ms", "20")
    try:
        payload = b"x" * 250_000
        with socket.create_connection(("127.0.0.1", port)) as conn:
            t0 = time.monotonic()
            conn.sendall(payload)
            conn.shutdown(socket.SHUT_WR)
            while stats["bytes"] < len(payload) and time.monotonic() - t0 < 30:
                time.sleep(0.01)
        elapsed = stats["last"] - t0
        mbps = len(payload) * 8 / elapsed / 1e6
        assert stats["bytes"] == len(payload)
        assert 0.8 < mbps < 1.05, mbps  # payload rate; the headers of each packet take ~3 % on top
    finally:
        proc.terminate()
        proc.wait(10)


def test_grpc_through_the_link(tiny_checkpoint, tmp_path: Path) -> None:
    trace = tmp_path / "fast.log"
    trace.write_text("0.0\t20.0\n1.0\t20.0\n")
    server = start_server(tmp_path, tiny_checkpoint.path)
    proc, port = _start_link(trace, server.address, "--rtt-ms", "30")
    try:
        frames = np.random.default_rng(0).integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
        with SplitClient(f"127.0.0.1:{port}", checkpoint=tiny_checkpoint, rpc_timeout_ms=5000) as client:
            client.wait_until_ready(30)
            results = [client.infer(f) for f in frames]
        assert all(r.offloaded for r in results)
        assert min(r.network_ms for r in results) >= 29  # the proxy's RTT is felt
    finally:
        proc.terminate()
        proc.wait(10)
        server.kill()


def test_the_link_plays_the_rtt_jitter_per_packet() -> None:
    """Without jitter every packet waits the RTT less the half the answer takes back; with 5 ms of jitter the
    waits spread with that standard deviation (1,000 draws: within 10 %) around the same mean (within 0.5 ms)."""
    from policies.network.link import LinkOptions, ShapedLink
    from policies.network.traces import Trace

    trace = Trace("flat", np.arange(0.0, 10.0), np.full(10, 1.0))
    steady = ShapedLink(trace, LinkOptions(rtt_ms=40.0))
    assert {steady.uplink_delay_s() for _ in range(20)} == {0.020}
    jittery = ShapedLink(trace, LinkOptions(rtt_ms=40.0, jitter_ms=5.0))
    waits_ms = np.array([jittery.uplink_delay_s() * 1e3 for _ in range(1000)])
    assert abs(waits_ms.mean() - 20.0) < 0.5 and abs(waits_ms.std() - 5.0) < 0.5
