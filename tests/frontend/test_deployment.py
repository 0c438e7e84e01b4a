"""How the dashboard ships: scripts/run_app.sh starts the API and the dashboard, Ctrl-C stops both, the
dashboard outlives the API; the compose service waits for a healthy backend; the image needs no torch."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests import image_tree
from tests.image_tree import build

from tests.frontend.servers import ROOT, free_port


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_run_app_starts_both_and_ctrl_c_stops_both(run_root, tmp_path):
    api_port, ui_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PART_")}
    env.update(VENV=sys.prefix, PART_PORT=str(api_port), PART_UI_PORT=str(ui_port), PART_CHECKPOINTS=str(run_root),
               PART_TORCH_THREADS="1")
    log = open(tmp_path / "run_app.log", "wb")
    script = subprocess.Popen(["bash", str(ROOT / "scripts" / "run_app.sh")], env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    api, ui = f"http://127.0.0.1:{api_port}/api/health", f"http://127.0.0.1:{ui_port}/_stcore/health"
    try:
        deadline = time.time() + 150
        while not (_up(api) and _up(ui)):
            assert script.poll() is None and time.time() < deadline, (tmp_path / "run_app.log").read_text()[-3000:]
            time.sleep(0.5)
        assert httpx.get(api).json()["runs"] == 2
        os.killpg(script.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
        script.wait(30)
        time.sleep(1)
        assert not _up(api) and not _up(ui)
        assert "stopped the API and the dashboard" in (tmp_path / "run_app.log").read_text()
    finally:
        if script.poll() is None:
            os.killpg(script.pid, signal.SIGKILL)
        log.close()


def _wait_for(condition, seconds: float, what: str, log) -> None:
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, f"{what} after {seconds} s:\n" + log.read_text()[-3000:]
        time.sleep(0.3)


def test_run_app_keeps_the_dashboard_up_when_the_api_dies_and_ends_with_the_dashboard(tmp_path):
    import psutil

    api_port, ui_port = free_port(), free_port()
    (tmp_path / "checkpoints").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PART_")}
    env.update(VENV=sys.prefix, PART_PORT=str(api_port), PART_UI_PORT=str(ui_port),
               PART_CHECKPOINTS=str(tmp_path / "checkpoints"), PART_TORCH_THREADS="1")
    log_path = tmp_path / "run_app.log"
    log = open(log_path, "wb")
    script = subprocess.Popen(["bash", str(ROOT / "scripts" / "run_app.sh")], env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    api, ui = f"http://127.0.0.1:{api_port}/api/health", f"http://127.0.0.1:{ui_port}/_stcore/health"
    try:
        _wait_for(lambda: _up(api) and _up(ui), 150, "the API and the dashboard did not both answer", log_path)
        children = psutil.Process(script.pid).children()
        server = next(p for p in children if "backend" in " ".join(p.cmdline()))
        streamlit = next(p for p in children if "streamlit" in " ".join(p.cmdline()))
        everything = psutil.Process(script.pid).children(recursive=True)
        server.kill()  # the API crashes (or is stopped on its own)
        _wait_for(lambda: not _up(api), 20, "the API still answers", log_path)
        time.sleep(2)  # the moment the old script took both down
        assert script.poll() is None, log_path.read_text()[-3000:]
        assert _up(ui) and streamlit.is_running()
        assert "the API stopped; the dashboard stays up" in log_path.read_text()
        streamlit.terminate()  # the dashboard ends: so does the script, by itself
        script.wait(30)
        assert "stopped the API and the dashboard" in log_path.read_text()
        _wait_for(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in everything), 10,
                  "a process of the script outlived it", log_path)
        assert not _up(ui)
    finally:
        if script.poll() is None:
            os.killpg(script.pid, signal.SIGKILL)
            script.wait(10)
        log.close()


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed")
def test_compose_frontend_waits_for_a_healthy_backend():
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PART_")}, "PART_TOKEN": "t0ken"}
    result = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    frontend = result.stdout[result.stdout.index("  frontend:"):]
    assert "dockerfile: frontend/Dockerfile" in frontend and "condition: service_healthy" in frontend
    assert "PART_API_URL: http://backend:8000" in frontend and "PART_TOKEN: t0ken" in frontend
    assert "127.0.0.1:8501:8501" in frontend and "/_stcore/health" in frontend


def test_the_image_runs_the_dashboard_without_torch_or_the_core(tmp_path):
    """Only what frontend/Dockerfile copies, with torch and the project's other packages unimportable:
    every module and page imports, and the entry script compiles."""
    dockerfile = ROOT / "frontend" / "Dockerfile"
    build(dockerfile, tmp_path)
    assert "frontend/app.py" in dockerfile.read_text()
    pages = sorted(p.stem for p in (tmp_path / "frontend" / "views").glob("*.py"))
    code = ("import importlib, pathlib\n"
            "mods = ['frontend.' + p.stem for p in pathlib.Path('frontend').glob('*.py') if p.stem not in ('__init__', 'app')]\n"
            "compile(pathlib.Path('frontend/app.py').read_text(), 'app.py', 'exec')  # the script streamlit runs\n"
            f"mods += ['frontend.views.' + v for v in {pages!r}]\n"
            "[importlib.import_module(m) for m in mods]\nprint(len(mods))")
    done = image_tree.run(tmp_path, code, forbid=("torch", "torchvision", "part", "models", "backend", "pytorch_grad_cam"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.strip()) >= 15
    requirements = (ROOT / "frontend" / "requirements.txt").read_text()
    names = {re.split(r"[<>=]", line)[0].strip() for line in requirements.splitlines() if line and line[0] != "#"}
    assert names == {"streamlit", "plotly", "httpx", "pillow"}
