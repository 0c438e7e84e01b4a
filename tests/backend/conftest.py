"""Backend fixtures: two tiny real runs (PART and AT) on Fashion-MNIST, an app and a client over them."""

from __future__ import annotations

import io
import shutil
import warnings
from pathlib import Path

import pytest
from PIL import Image

from part.training.config import preset
from part.training.trainer import train

warnings.filterwarnings("ignore", message=".*httpx2.*")  # Starlette's TestClient nudge; httpx works
from fastapi.testclient import TestClient  # noqa: E402

from backend.app import create_app  # noqa: E402
from backend.settings import load_settings  # noqa: E402

TINY = dict(subset=128, epochs=2, eval_n=32, attack_steps=1, eval_steps=1, probe_count=4, batch_size=64)


@pytest.fixture(scope="session")
def run_root(tmp_path_factory) -> Path:
    """A read-only checkpoint root holding part-tiny and at-tiny (2 epochs each, 4 probes)."""
    root = tmp_path_factory.mktemp("checkpoints")
    train(preset("fmnist-part", burn_in_epochs=1, **TINY), root / "part-tiny")
    train(preset("fmnist-at", **TINY), root / "at-tiny")
    return root


@pytest.fixture
def checkpoints(run_root, tmp_path) -> Path:
    """A writable copy of the run root for tests that add or change runs."""
    root = tmp_path / "checkpoints"
    shutil.copytree(run_root, root)
    return root


def make_client(root: Path, *, start_jobs: bool = False, **settings) -> TestClient:
    app = create_app(load_settings(env={}, checkpoints=root, **settings), start_jobs=start_jobs)
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture(scope="session")
def client(run_root):
    with make_client(run_root) as c:
        yield c


def png(image: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kw)
    return buffer.getvalue()


def shirt(size: int = 28) -> Image.Image:
    """A bright T-shape on black, like a Fashion-MNIST top."""
    image = Image.new("L", (size, size), 0)
    image.paste(220, (size // 6, size // 6, size - size // 6, size // 3))
    image.paste(200, (size // 3, size // 6, 2 * size // 3, size - size // 8))
    return image


def explain_upload(client, data: bytes, name: str = "x.png", **fields):
    return client.post("/api/explain", data={"run": "part-tiny", **fields}, files={"file": (name, data)})
