"""Public API: launch ``splitnet serve`` from Python as a child process and wait until it serves.

``spawn_server(*serve_args)`` starts ``python -m splitnet_cli.main serve`` (the installed
``splitnet`` command's module, run as a child process: this package imports nothing of
``splitnet_cli``) on a free loopback port and returns once it listens; ``wait_serving``
blocks until its gRPC health service answers SERVING; :class:`ServerProcess` stops it
(``terminate``: SIGTERM and the exit status; ``kill``: SIGKILL) and holds its log.

    server = spawn_server("--checkpoint", "my_split.pt", "--max-batch", "16")
    try:
        wait_serving(server.address)
        ...  # SplitClient(server.address, ...)
    finally:
        server.terminate()

``splitnet demo``, the tests and the benchmarks start their servers this way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


@dataclass
class ServerProcess:
    """A ``splitnet serve`` child process listening on ``host`` (a loopback address)."""

    proc: subprocess.Popen
    port: int
    log: Path
    _tmp: object = field(default=None, repr=False)
    host: str = "127.0.0.1"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def kill(self) -> None:
        """SIGKILL: no grace, as if the machine died."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM and wait: returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def output(self) -> str:
        return self.log.read_text()


def spawn_server(*args: str, port: int = 0, threads: int = 1, workdir: str | Path | None = None,
                 timeout_s: float = 300.0, host: str = "127.0.0.1") -> ServerProcess:
    """Start ``splitnet serve`` with ``args`` on ``host``:``port`` (0: any) and wait until it listens."""
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="splitnet-server-")
        workdir = tmp.name
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    stamp = time.monotonic_ns()
    port_file, log = workdir / f"port-{stamp}", workdir / f"server-{stamp}.log"
    cmd = [sys.executable, "-m", "splitnet_cli.main", "--threads", str(threads), "serve", "--address",
           f"{host}:{port}", "--port-file", str(port_file), *args]
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return ServerProcess(proc, wait_port_file(proc, port_file, timeout_s, log), log, tmp, host)


def wait_port_file(proc: subprocess.Popen, port_file: Path, timeout_s: float = 300.0, log: Path | None = None) -> int:
    """The port a child server writes to ``port_file`` once it listens; RuntimeError if it exits first,
    TimeoutError (after killing it) if it takes longer than ``timeout_s``. ``log``: its output, quoted in both."""
    def output() -> str:
        return f":\n{log.read_text()}" if log is not None else ""

    end = time.monotonic() + timeout_s
    while not port_file.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}{output()}")
        if time.monotonic() > end:
            proc.kill()
            raise TimeoutError(f"server did not start within {timeout_s:.0f} s{output()}")
        time.sleep(0.05)
    return int(port_file.read_text())


def wait_serving(address: str, timeout_s: float = 120.0, service: str = "") -> None:
    """Block until the health service at ``address`` answers SERVING."""
    end = time.monotonic() + timeout_s
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                if stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2).status == \
                        health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > end:
                raise TimeoutError(f"server at {address} not SERVING after {timeout_s:.0f} s")
            time.sleep(0.1)
