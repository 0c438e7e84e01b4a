"""The import arrows of the design: data flows one way, so imports do too."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "part": {"fastapi", "starlette", "pydantic", "pydantic_settings", "streamlit", "httpx", "uvicorn", "backend", "frontend"},
    "models": {"fastapi", "pydantic", "streamlit", "httpx", "backend", "frontend", "part"},
    "backend": {"frontend", "streamlit"},
    "frontend": {"torch", "torchvision", "part", "models", "backend", "pytorch_grad_cam", "numpy_torch"},
}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_follow_the_arrows(package):
    files = sorted((ROOT / package).rglob("*.py"))
    if package in ("part", "models"):
        assert files, f"{package}/ has no Python files"
    bad = {str(f.relative_to(ROOT)): sorted(imported_roots(f) & FORBIDDEN[package]) for f in files}
    assert not {f: names for f, names in bad.items() if names}


def test_the_walker_sees_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import fastapi.routing\nfrom torch import nn\ndef f():\n    import streamlit as st\n")
    assert imported_roots(probe) == {"fastapi", "torch", "streamlit"}
