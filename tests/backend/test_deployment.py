"""docker-compose.yml validates with `docker-compose config`; the Dockerfile copies what exists."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

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


def test_dockerfile_copies_existing_paths_and_pins_the_makefile_torch():
    dockerfile = (ROOT / "backend" / "Dockerfile").read_text()
    for line in re.findall(r"^COPY (.+)$", dockerfile, flags=re.M):
        for source in line.split()[:-1]:
            assert (ROOT / source).exists(), source
    pins = re.findall(r"torch==\S+ torchvision==\S+", (ROOT / "Makefile").read_text())
    assert pins and pins[0] in dockerfile
    assert 'CMD ["part", "serve"]' in dockerfile
    assert re.search(r"^ARG CUDA_IMAGE=nvidia/cuda:\S+-cudnn-runtime-\S+$", dockerfile, flags=re.M)
    assert "FROM ${CUDA_IMAGE}" in dockerfile
