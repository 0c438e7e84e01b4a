"""docker-compose.yml validates with `docker-compose config`; the Dockerfile copies what exists."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests import image_tree
from tests.image_tree import build

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = shutil.which("docker-compose")
needs_compose = pytest.mark.skipif(COMPOSE is None, reason="docker-compose is not installed "
                                   "(Debian: apt-get install docker-compose)")


def _config(**env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PART_")}
    return subprocess.run([COMPOSE, "-f", str(ROOT / "docker-compose.yml"), "config"], cwd=ROOT,
                          env={**clean, **env}, capture_output=True, text=True, timeout=60)


@needs_compose
def test_compose_config_is_valid_with_gpu_volumes_healthcheck_and_token():
    result = _config(PART_TOKEN="t0ken")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "driver: nvidia" in text and "- gpu" in text
    assert "/checkpoints:/data/checkpoints" in text and "/data/datasets:ro" in text
    assert "/api/health" in text and "PART_TOKEN: t0ken" in text
    assert "127.0.0.1:8000:8000" in text  # published on the host's loopback unless PART_BIND says otherwise
    assert "dockerfile: backend/Dockerfile" in text
    assert "shm_size: 8gb" in text  # room for NCCL between the processes of a multi-GPU job


@needs_compose
def test_compose_refuses_to_run_without_a_token():
    result = _config()
    assert result.returncode != 0 and "set PART_TOKEN" in result.stderr


def test_the_image_serves_from_what_it_copies(tmp_path):
    """Only what backend/Dockerfile copies: the app builds, lists the presets and answers /api/health and
    /api/options; the torch it installs is the Makefile's."""
    dockerfile = ROOT / "backend" / "Dockerfile"
    build(dockerfile, tmp_path)
    code = ("from fastapi.testclient import TestClient\nfrom backend.app import create_app\n"
            "from backend.settings import load_settings\nimport part.cli, pathlib\n"
            "assert pathlib.Path(part.cli.__file__).is_relative_to(pathlib.Path.cwd())\n"
            "app = create_app(load_settings(env={}, checkpoints=pathlib.Path('ckpt')), start_jobs=False)\n"
            "with TestClient(app) as c:\n"
            "    print(c.get('/api/health').json()['status'], len(c.get('/api/options').json()['presets']))\n")
    done = image_tree.run(tmp_path, code, forbid=("frontend", "streamlit"))
    assert done.returncode == 0, done.stderr[-2000:]
    status, presets = done.stdout.split()
    assert status == "ok" and int(presets) >= 30
    pins = re.findall(r"torch==\S+ torchvision==\S+", (ROOT / "Makefile").read_text())
    assert pins and pins[0] in dockerfile.read_text()
    assert 'CMD ["part", "serve"]' in dockerfile.read_text()
