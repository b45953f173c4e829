"""The checked-in generated code must be what grpcio-tools makes of the .proto today."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENERATED = ("splitnet_pb2.py", "splitnet_pb2_grpc.py", "splitnet_pb2.pyi")


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT / 'proto'}", f"--python_out={tmp_path}",
           f"--grpc_python_out={tmp_path}", f"--pyi_out={tmp_path}",
           str(ROOT / "proto" / "splitnet" / "rpc" / "v1" / "splitnet.proto")]
    subprocess.run(cmd, check=True, capture_output=True)
    for name in GENERATED:
        fresh = (tmp_path / "splitnet" / "rpc" / "v1" / name).read_text()
        checked_in = (ROOT / "splitnet" / "rpc" / "v1" / name).read_text()
        assert fresh == checked_in, (
            f"splitnet/rpc/v1/{name} is stale: run `make proto` (python -m grpc_tools.protoc ...) and commit")


def test_package_is_versioned() -> None:
    from splitnet.rpc.v1 import splitnet_pb2

    assert splitnet_pb2.DESCRIPTOR.package == "splitnet.rpc.v1"
    assert "SplitInference" in splitnet_pb2.DESCRIPTOR.services_by_name
