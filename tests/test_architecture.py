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


# Inside part: the wings' arrows. Data and explain never reach training or evaluation; evaluation never
# reaches training (a run's config is read as a dict); attacks need nothing but the model.
WINGS = {
    "data": {"explain", "attacks", "training", "evaluation"},
    "explain": {"attacks", "training", "evaluation"},
    "attacks": {"data", "explain", "training", "evaluation"},
    "evaluation": {"training"},
    "training": set(),
}


def part_wings_imported(path: Path) -> set[str]:
    wings = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
        for name in names:
            parts = name.split(".")
            if parts[0] == "part" and len(parts) > 1:
                wings.add(parts[1])
        if isinstance(node, ast.ImportFrom) and node.module == "part":
            wings |= {a.name for a in node.names}
    return wings


@pytest.mark.parametrize("wing", sorted(WINGS))
def test_part_wings_follow_the_arrows(wing):
    files = sorted((ROOT / "part" / wing).rglob("*.py"))
    assert files, f"part/{wing}/ is missing"
    bad = {str(f.relative_to(ROOT)): sorted(part_wings_imported(f) & WINGS[wing]) for f in files}
    assert not {f: names for f, names in bad.items() if names}


def test_every_part_module_lives_in_a_wing_or_is_shared():
    top = sorted(p.stem for p in (ROOT / "part").glob("*.py") if p.stem != "__init__")
    assert top == ["cli", "commands", "devices", "experiments", "modes", "numbers", "precision", "runs", "theory"]
    assert sorted(p.name for p in (ROOT / "part").iterdir() if p.is_dir() and p.name != "__pycache__") == \
        sorted(WINGS)


def test_the_wing_walker_sees_part_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from part.training.config import preset\nfrom part import attacks\nimport part.data.clutter\n"
                     "def f():\n    from part.evaluation import reports\n")
    assert part_wings_imported(probe) == {"training", "attacks", "data", "evaluation"}


RUN_FILES = {"metrics.jsonl", "status.json", "config.json", "requested_config.json", "train_state.pt", "mask_cache.pt",
             "inputs.pt", "eval.json", "report.md", "report.html", "autoattack_state.json"}


def run_file_names(path: Path) -> list[str]:
    """String constants (docstrings aside) that name a file inside a run folder as a path or a path's end."""
    tree = ast.parse(path.read_text(), filename=str(path))
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            words = node.value.replace("/", " ").split()
            found += [w for w in words if w in RUN_FILES]
    return found


def test_only_the_run_module_names_files_inside_a_run():
    files = [f for package in ("part", "backend", "frontend", "scripts", "benchmarks")
             for f in sorted((ROOT / package).rglob("*.py")) if f != ROOT / "part" / "runs.py"]
    assert not {str(f.relative_to(ROOT)): names for f in files if (names := run_file_names(f))}
    assert run_file_names(ROOT / "part" / "runs.py")  # the contract itself names them


def test_the_run_file_scan_sees_paths_but_not_docstrings(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text('"""Writes RUN/status.json."""\nA = run / "metrics.jsonl"\nB = f"{run}/eval/x/eval.json"\n'
                     'C = "eval"\n')
    assert run_file_names(probe) == ["metrics.jsonl", "eval.json"]
