"""Every `part ...` command README.md shows, run for real on tiny sizes.

Each command line of the README's bash blocks runs as written, made small: `--n` becomes a few test
images, training runs 1 epoch (2 where the README reads an epoch-2 checkpoint back) on 64 images with
1-step attacks, `part bench` times 64 images once, outputs go to a temporary folder, and the shipped
runs the commands name are temporary copies (nothing is written into checkpoints/). `RUN` is a copy of
fmnist-part-s0 (for `part train --config RUN/...`: a run folder holding a tiny requested config).
Skipped, saying why: what needs CIFAR-10 files, the published corruption files or 8 processes.
Slow (`-m slow`): the evaluation with AutoAttack (`aa`), several minutes on 2 CPU cores even on 16 images.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from part.cli import main
from part.evaluation.evaluate import parse_attacks
from part.runs import EvalDir, RunDir
from tests.frontend.servers import free_port, shirt_png

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("fmnist-part-s0", "fmnist-at-s0", "fmnist-clutter-at-s0")  # the runs the README's commands name
N = "16"  # test images of every `part eval`
TINY = {"subset": "64", "eval_n": "16", "attack_steps": "1", "eval_steps": "1", "probe_count": "2", "batch_size": "32"}
QUICK = "runs/quick"  # the README trains it, then resumes it and reads its epoch-2 checkpoint


def readme_commands() -> list[str]:
    """The `part ...` lines of README.md's bash blocks (continuation lines joined), comments dropped."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    lines = [line.strip() for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    return [shlex.join(shlex.split(line, comments=True)) for line in lines if line.startswith("part ")]


def why_skipped(line: str) -> str | None:
    if "/data/cifar10" in line and not Path("/data/cifar10").is_dir():
        return "needs the CIFAR-10 files at /data/cifar10"
    if "/data/CIFAR-10-C" in line and not Path("/data/CIFAR-10-C").is_dir():
        return "needs the published CIFAR-10-C files at /data/CIFAR-10-C (and a CIFAR-10 run)"
    if "--nproc 8" in line or "runs/c10-part" in line:
        return "needs 8 processes (a multi-GPU machine) and CIFAR-10 (part resume continues that run)"
    return None


def _attacks(line: str) -> list[str]:
    argv = shlex.split(line)
    return argv[argv.index("--attacks") + 1].split(",") if "--attacks" in argv else []


COMMANDS = readme_commands()
SLOW = {line for line in COMMANDS if line.startswith("part eval") and "aa" in _attacks(line)}


def _flag(argv: list[str], name: str, value: str | None = None, *, replace: bool = True) -> None:
    """Set `name` to `value` (replacing it where `replace`), or add the bare flag."""
    if name in argv:
        if replace and value is not None:
            argv[argv.index(name) + 1] = value
        return
    argv += [name] if value is None else [name, value]


def small(line: str, k: int) -> list[str]:
    """The command's arguments (without `part`) at the tiny size, its outputs in the working folder."""
    argv = shlex.split(line)[1:]
    command = argv[0]
    run_for = "runs/from-config" if command == "train" else f"checkpoints/{SHIPPED[0]}"
    argv = [run_for + a[3:] if a == "RUN" or a.startswith("RUN/") else a for a in argv]
    if command == "train":
        epochs = min(int(argv[argv.index("--epochs") + 1]), 2) if "--epochs" in argv else 1
        burn_in = min(int(argv[argv.index("--burn-in") + 1]), epochs - 1) if "--burn-in" in argv else 0
        _flag(argv, "--epochs", str(epochs))
        _flag(argv, "--burn-in", str(burn_in))
        _flag(argv, "--subset", TINY["subset"])
        argv += [x for key, value in TINY.items() if key != "subset" for x in ("--set", f"{key}={value}")]
        _flag(argv, "--out", f"runs/readme-{k}", replace=False)
        _flag(argv, "--no-progress")
    elif command == "eval":
        _flag(argv, "--n", N)
        _flag(argv, "--out", f"evals/readme-{k}", replace=False)
        _flag(argv, "--no-progress")
    elif command == "bench":
        argv += ["--n", "64", "--repeats", "1", "--cam-batch", "8"]
    elif command == "resume":
        _flag(argv, "--no-progress")
    return argv


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A working folder with copies of the shipped runs the README names, a shirt photo and a tiny config."""
    import torch

    from part.training.config import preset

    torch.set_num_threads(1)
    work = tmp_path_factory.mktemp("readme")
    for name in SHIPPED:
        shutil.copytree(ROOT / "checkpoints" / name, work / "checkpoints" / name)
    (work / "shirt.png").write_bytes(shirt_png())
    config = preset("fmnist-part", epochs=1, burn_in_epochs=0, **{k: int(v) for k, v in TINY.items()})
    RunDir(work / "runs" / "from-config").write_requested_config(config.to_dict())
    return work


@pytest.fixture
def at_workspace(workspace, monkeypatch) -> Path:
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("PART_CHECKPOINTS", str(workspace / "checkpoints"))
    return workspace


def _needs_quick(argv: list[str], k: int) -> None:
    """`part resume runs/quick` and `part cam` read the run an earlier README line trains: train it first."""
    if any(a.startswith(QUICK) for a in argv) and argv[0] != "train" and not (Path(QUICK) / "config.json").exists():
        quick = next(line for line in COMMANDS if line.startswith("part train") and f"--out {QUICK}" in line)
        assert main(small(quick, k)) == 0


def _check_outputs(argv: list[str]) -> None:
    """What the command must have written: a run folder, an evaluation with each attack, a picture, a report."""
    out = Path(argv[argv.index("--out") + 1]) if "--out" in argv else None
    if argv[0] == "train":
        run = RunDir(out)
        assert run.status()["state"] == "completed" and run.epochs() == list(range(1, run.config()["epochs"] + 1))
    elif argv[0] == "eval":
        results = EvalDir(out).results()
        wanted = parse_attacks(argv[argv.index("--attacks") + 1])  # an eps sweep is one attack with its commas
        assert len(results["attacks"]) >= len(wanted) and results["n"] == int(N), sorted(results["attacks"])
    elif argv[0] == "cam":
        assert out.stat().st_size > 0
    elif argv[0] == "report":
        assert (out / "report.md").read_text().startswith("# Robustness evaluation")


def _serve(argv: list[str], workspace: Path) -> None:
    """`part serve` execs the server: run it as its own process, ask it for the copied runs, stop it."""
    port = free_port()
    env = {**os.environ, "PART_TORCH_THREADS": "1"}
    server = subprocess.Popen([sys.executable, "-m", "part.cli", *argv, "--port", str(port)], cwd=workspace, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            assert server.poll() is None, server.stdout.read().decode()[-2000:]
            try:
                runs = httpx.get(f"http://127.0.0.1:{port}/api/runs", timeout=5).json()
                break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            raise AssertionError("part serve did not answer in 120 s")
        assert set(SHIPPED) <= {r["id"] for r in runs}
    finally:
        os.killpg(server.pid, 15)
        server.wait(30)


def _nproc(argv: list[str], workspace: Path) -> None:
    """`--nproc 2` becomes torchrun (it replaces the process): run it as its own process, on CPU with gloo."""
    env = {**os.environ, "PART_CHECKPOINTS": str(workspace / "checkpoints"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "part.cli", *argv], cwd=workspace, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]


@pytest.mark.parametrize("k,line", [pytest.param(k, line, id=line[:90], marks=[pytest.mark.slow] if line in SLOW else [])
                                    for k, line in enumerate(COMMANDS)])
def test_the_readme_command_runs(k, line, at_workspace):
    reason = why_skipped(line)
    if reason:
        pytest.skip(reason)
    argv = small(line, k)
    if argv[0] == "serve":
        return _serve(argv, at_workspace)
    if "--nproc" in argv:
        return _nproc(argv, at_workspace)
    _needs_quick(argv, k)
    assert main(argv) == 0, line
    _check_outputs(argv)


def test_the_readme_shows_the_commands_this_file_runs():
    """The extraction finds the README's commands (an empty list would make every test above vacuous)."""
    assert len(COMMANDS) >= 15 and "part presets" in COMMANDS
    assert any(line.startswith("part eval --run checkpoints/fmnist-part-s0 --attacks alignment,faithfulness")
               for line in COMMANDS)
    assert small("part eval --run RUN --attacks checks", 3) == [
        "eval", "--run", "checkpoints/fmnist-part-s0", "--attacks", "checks", "--n", N, "--out", "evals/readme-3",
        "--no-progress"]
    assert SLOW == {line for line in COMMANDS if "aa" in _attacks(line)} and len(SLOW) == 1
