"""What a Dockerfile's image holds, rebuilt here: its COPY sources in a fresh folder, and Python run there
with this checkout hidden (the editable install's finder removed), so a test sees what the image would."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

HIDE_CHECKOUT = ("import sys; sys.meta_path = [f for f in sys.meta_path if 'editable' not in "
                 "getattr(f, '__module__', '') + type(f).__module__]; "
                 f"sys.path = [p for p in sys.path if not p.startswith({str(ROOT)!r}) or 'site-packages' in p]; ")


def build(dockerfile: Path, into: Path) -> list[str]:
    """Copy every COPY source of `dockerfile` into `into` (at its destination below WORKDIR); the sources."""
    sources = []
    for line in re.findall(r"^COPY (.+)$", dockerfile.read_text(), flags=re.M):
        *srcs, dest = line.split()
        for src in srcs:
            path = ROOT / src
            assert path.exists(), f"{dockerfile.name} copies {src}, which does not exist"
            target = into / (src if dest.endswith("/") or dest == "./" else dest.removeprefix("./"))
            if path.is_dir():
                shutil.copytree(path, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, target)
            sources.append(src)
    return sources


def run(tree: Path, code: str, *, forbid: tuple[str, ...] = (), timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `code` with only `tree` (and the installed libraries) importable; `forbid` modules fail to import."""
    block = ""
    if forbid:
        block = ("import importlib.abc\nclass _No(importlib.abc.MetaPathFinder):\n"
                 "    def find_spec(self, name, path=None, target=None):\n"
                 f"        if name.split('.')[0] in {forbid!r}: raise ImportError('not in the image: ' + name)\n"
                 "sys.meta_path.insert(0, _No())\n")
    script = HIDE_CHECKOUT + f"sys.path.insert(0, {str(tree)!r})\n" + block + code
    return subprocess.run([sys.executable, "-c", script], cwd=tree, capture_output=True, text=True, timeout=timeout)
