"""Real processes for the dashboard tests: tiny runs on disk, `part serve` and `streamlit run` on loopback ports."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "frontend" / "app.py"
TINY = dict(subset=128, epochs=2, eval_n=32, attack_steps=1, eval_steps=1, probe_count=4, batch_size=64)
TINY_JOB = {"epochs": 1, "burn_in_epochs": 0, "subset": 128, "eval_n": 32}  # what the tests type into the Train form


def make_runs(root: Path, presets: tuple[str, ...] = ("fmnist-part", "fmnist-at")) -> Path:
    """Tiny real runs (2 epochs, 4 probes) named <preset>-tiny under root."""
    import torch

    from part.training.config import preset
    from part.training.trainer import train

    torch.set_num_threads(1)
    for name in presets:
        extra = {"burn_in_epochs": 1} if name.endswith("part") else {}
        train(preset(name, **TINY, **extra), root / f"{name}-tiny", progress=False)
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PART_")}
    return {**env, "PART_TORCH_THREADS": "1", "PYTHONUNBUFFERED": "1", **extra}


class Service:
    """A server process in its own session (so stop() ends its children too), up once `health` answers."""

    def __init__(self, argv: list[str], health: str, log: Path, env: dict[str, str]):
        self.argv, self.health, self.log, self.env, self.process = argv, health, log, env, None

    def start(self, timeout: float = 120) -> "Service":
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                            cwd=ROOT, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.argv[:4]} exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.health, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"{self.health} did not answer in {timeout} s: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)


def backend(root: Path, log: Path) -> tuple[Service, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "part.cli", "serve", "--port", str(port), "--checkpoints", str(root)]
    return Service(argv, f"{url}/api/health", log, clean_env()).start(), url


def dashboard(api_url: str, log: Path) -> tuple[Service, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.address", "127.0.0.1",
            "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--client.toolbarMode", "viewer", "--server.fileWatcherType", "none"]
    return Service(argv, f"{url}/_stcore/health", log, clean_env(PART_API_URL=api_url)).start(), url


def cancel_active_jobs(api_url: str) -> None:
    """Stop what a test left running: job processes outlive the server by design."""
    with httpx.Client(base_url=api_url, timeout=30) as client:
        for job in client.get("/api/jobs").json():
            if job["state"] in ("queued", "running"):
                client.post(f"/api/jobs/{job['id']}/cancel")


def wait_job(api_url: str, job_id: str, timeout: float = 180) -> dict:
    deadline, job = time.time() + timeout, {}
    while time.time() < deadline:
        job = httpx.get(f"{api_url}/api/jobs/{job_id}", timeout=10).json()
        if job["state"] not in ("queued", "running"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still {job.get('state')} after {timeout} s")


def shirt_png(size: int = 56) -> bytes:
    """A bright T-shape on black (like a Fashion-MNIST top), as PNG bytes."""
    image = Image.new("L", (size, size), 0)
    image.paste(220, (size // 6, size // 6, size - size // 6, size // 3))
    image.paste(200, (size // 3, size // 6, 2 * size // 3, size - size // 8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
