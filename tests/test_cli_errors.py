"""Every CLI command given impossible or broken input: one line on stderr, a non-zero exit, no traceback.

Parse-time checks run in process through ``main`` (argparse exits with status 2); the
failures that happen while a command runs (port in use, missing files, a server that
never becomes ready) run as real ``splitnet`` processes.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from splitnet_cli.main import main

ROOT = Path(__file__).resolve().parents[1]

PARSE_ERRORS = [
    (["serve", "--max-batch", "0"], "--max-batch"),
    (["serve", "--address", "garbage"], "--address"),
    (["serve", "--address", "127.0.0.1:70000"], "--address"),
    (["link", "--upstream", "127.0.0.1:1", "--trace", "t.txt", "--loss", "2"], "--loss"),
    (["link", "--upstream", "127.0.0.1:1", "--trace", "t.txt", "--scale", "0"], "--scale"),
    (["link", "--upstream", "127.0.0.1:1", "--trace", "t.txt", "--rtt-ms", "-10"], "--rtt-ms"),
    (["simulate", "--traces", "eval", "--policy", "local", "--fps", "0"], "--fps"),
    (["simulate", "--traces", "eval", "--policy", "local", "--fps", "-10"], "--fps"),
    (["simulate", "--traces", "eval", "--policy", "local", "--deadline-ms", "-5"], "--deadline-ms"),
    (["client", "--server", "127.0.0.1:1", "--deadline-ms", "-5"], "--deadline-ms"),
    (["client", "--server", "127.0.0.1:1", "--deadline-ms", "0"], "--deadline-ms"),
    (["client", "--server", "127.0.0.1:1", "--fps", "-10"], "--fps"),
    (["client", "--server", "127.0.0.1:1", "--link-probes", "-1"], "--link-probes"),
    (["link", "--upstream", "127.0.0.1:1", "--trace", "t.txt", "--jitter-ms", "-1"], "--jitter-ms"),
    (["simulate", "--traces", "eval", "--policy", "local", "--start-s", "-1"], "--start-s"),
    (["simulate", "--traces", "eval", "--policy", "local", "--server-speed", "0"], "--server-speed"),
    (["simulate", "--traces", "eval", "--policy", "local", "--request-overhead-ms", "-1"], "--request-overhead-ms"),
    (["client", "--server", "127.0.0.1:1", "--limit", "-1"], "--limit"),
    (["client", "--server", "nonsense"], "--server"),
    (["eval", "--limit", "-1"], "--limit"),
    (["eval", "--qualities", "0"], "--qualities"),
    (["profile", "--json", "p.json", "--rtt-ms", "-10"], "--rtt-ms"),
    (["profile", "--json", "p.json", "--loss", "1.5"], "--loss"),
    (["train", "teacher", "--out", "t.pt", "--epochs", "0"], "--epochs"),
    (["train", "bottleneck", "--weights", "w.pt", "--out", "b.pt", "--widths", "0", "1.5"], "--widths"),
    (["train", "policy", "--out", "p.zip", "--steps", "-1"], "--steps"),
    (["data", "detection", "--objects", "o.npz", "--out", "d.npz", "--scenes", "0"], "--scenes"),
    (["models", "--depth", "0"], "--depth"),
    (["--threads", "0", "models"], "--threads"),
]


def _one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{text}"
    assert "Traceback" not in text
    return lines[0]


@pytest.mark.parametrize(("argv", "option"), PARSE_ERRORS, ids=[" ".join(a) for a, _ in PARSE_ERRORS])
def test_impossible_numbers_rejected_at_parse_time(argv: list[str], option: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    line = _one_line(capsys.readouterr().err)
    assert "error" in line and option in line


def test_unknown_policy_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "trace.txt"
    trace.write_text("".join(f"{t} 1.0\n" for t in range(20)))
    code = main(["simulate", "--traces", str(trace), "--policy", "foo", "--frames", "5"])
    assert code == 2
    line = _one_line(capsys.readouterr().err)
    assert "unknown policy 'foo'" in line and "robust_mpc" in line and "layer2/w0.5" in line  # what it could be


def test_training_a_policy_on_the_evaluation_traces_is_refused(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "policy", "--traces", "eval", "--steps", "1", "--out", str(tmp_path / "p.zip")]) == 2
    assert "held out" in _one_line(capsys.readouterr().err)
    assert not (tmp_path / "p.zip").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a CUDA GPU")
def test_training_on_a_gpu_the_machine_lacks_is_refused_before_the_data(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "bottleneck", "--teacher", "resnet20_cifar", "--weights", str(tmp_path / "none.pt"),
            "--split", "layer1", "--out", str(tmp_path / "out.pt")]
    assert main([*argv, "--device", "cuda"]) == 2
    assert "'cuda' asked for, but this machine has no CUDA GPU" in _one_line(capsys.readouterr().err)
    assert main([*argv, "--device", "tpu"]) == 2
    assert "unknown training device 'tpu'" in _one_line(capsys.readouterr().err)
    assert main(["train", "teacher", "--data", str(tmp_path / "none.npz"), "--device", "cuda:1",
                 "--out", str(tmp_path / "out.pt")]) == 2
    assert "'cuda:1' asked for" in _one_line(capsys.readouterr().err)
    assert not (tmp_path / "out.pt").exists()


def test_missing_files_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--token-file", str(tmp_path / "absent.txt")]) == 2
    assert "absent.txt" in _one_line(capsys.readouterr().err)
    assert main(["link", "--upstream", "127.0.0.1:1", "--trace", str(tmp_path / "absent.txt")]) == 2
    assert "absent.txt" in _one_line(capsys.readouterr().err)
    assert main(["client", "--server", "127.0.0.1:1", "--every-frame"]) == 2
    assert "--fps" in _one_line(capsys.readouterr().err)
    assert main(["client", "--server", "127.0.0.1:1", "--data", str(tmp_path / "nothing.npz")]) == 2
    assert "nothing.npz" in _one_line(capsys.readouterr().err)
    assert main(["checkpoint", "info", str(tmp_path / "none.pt")]) == 2
    _one_line(capsys.readouterr().err)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "splitnet_cli.main", "--threads", "1", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout)


@pytest.mark.slow
def test_runtime_failures_are_one_line_in_real_processes(tmp_path: Path) -> None:
    with socket.socket() as busy:  # port in use
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = _run("serve", "--address", f"127.0.0.1:{port}")
    assert proc.returncode == 2, proc.stderr
    assert str(port) in _one_line(proc.stderr)

    cert = tmp_path / "cert.pem"
    cert.write_text("not a certificate")
    proc = _run("serve", "--address", "127.0.0.1:0", "--tls-cert", str(cert))  # --tls-key missing
    assert proc.returncode == 2 and "key" in _one_line(proc.stderr)

    proc = _run("client", "--server", f"127.0.0.1:{_free_port()}", "--wait-ready", "0.5", "--limit", "2",
                "--no-calibration", "--quiet")  # nothing listens there
    assert proc.returncode == 2 and "ready" in _one_line(proc.stderr)

    proc = _run("--debug", "serve", "--token-file", str(tmp_path / "absent.txt"))  # --debug shows the traceback
    assert proc.returncode != 0 and "Traceback" in proc.stderr
