"""The one-way dependency rule of ARCHITECTURE.md, read from the source with ``ast`` (nothing is imported).

``splitnet`` imports none of the other top-level packages; ``edge_server``, ``device_client``
and ``policies`` do not import ``splitnet_cli``, the only package that joins them all.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "splitnet": {"edge_server", "device_client", "policies", "splitnet_cli", "benchmarks"},
    "edge_server": {"splitnet_cli"},
    "device_client": {"splitnet_cli"},
    "policies": {"splitnet_cli"},
}


def imported_packages(path: Path) -> set[str]:
    """The top-level package of every ``import`` and absolute ``from ... import`` in a file (nested ones too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependencies_point_one_way(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no Python files under {package}/"
    wrong = {str(f.relative_to(ROOT)): sorted(imported_packages(f) & FORBIDDEN[package]) for f in files}
    assert not {f: names for f, names in wrong.items() if names}


def test_the_check_sees_nested_and_from_imports(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text("import os.path\nfrom . import sibling\n\ndef f():\n    from policies.agents import base\n")
    assert imported_packages(src) == {"os", "policies"}
