"""The one-way dependency rule of ARCHITECTURE.md, read from the source with ``ast`` (nothing is imported).

``splitnet`` imports none of the other top-level packages; ``edge_server``, ``device_client``
and ``policies`` do not import ``splitnet_cli``, the only package that joins them all. Inside ``policies`` the
subpackages are layered: ``common`` < ``network`` < ``simulation`` < ``agents``.
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

# what each subpackage of ``policies`` may import from the others (a lower layer never imports a higher one)
POLICIES_LAYERS = {
    "common": set(),
    "network": {"common"},
    "simulation": {"common", "network"},
    "agents": {"common", "network", "simulation"},
}


def imported_modules(path: Path, depth: int = 1) -> set[str]:
    """The first ``depth`` parts of every module named by an ``import`` or an absolute ``from ... import`` in a
    file (nested ones too), e.g. ``policies.agents`` at depth 2."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(".".join(alias.name.split(".")[:depth]) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(".".join(node.module.split(".")[:depth]))
    return found


def imported_packages(path: Path) -> set[str]:
    """The top-level package of every ``import`` and absolute ``from ... import`` in a file (nested ones too)."""
    return imported_modules(path, depth=1)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependencies_point_one_way(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no Python files under {package}/"
    wrong = {str(f.relative_to(ROOT)): sorted(imported_packages(f) & FORBIDDEN[package]) for f in files}
    assert not {f: names for f, names in wrong.items() if names}


def test_policies_subpackages_are_layered() -> None:
    assert {d.name for d in (ROOT / "policies").iterdir() if (d / "__init__.py").exists()} == set(POLICIES_LAYERS)
    wrong = {}
    for sub, allowed in POLICIES_LAYERS.items():
        for f in sorted((ROOT / "policies" / sub).rglob("*.py")):
            others = {m.split(".")[1] for m in imported_modules(f, depth=2) if m.startswith("policies.")}
            if others - allowed - {sub}:
                wrong[str(f.relative_to(ROOT))] = sorted(others - allowed - {sub})
    assert not wrong


def test_the_check_sees_nested_and_from_imports(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text("import os.path\nfrom . import sibling\n\ndef f():\n    from policies.agents import base\n")
    assert imported_packages(src) == {"os", "policies"}
    assert imported_modules(src, depth=2) == {"os.path", "policies.agents"}
