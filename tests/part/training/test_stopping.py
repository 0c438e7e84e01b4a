"""Stopping at an epoch's end when asked (a scheduler's time limit near), then resuming from there."""

import subprocess
import sys

import pytest

from part.runs import RunDir
from part.training.config import preset
from part.training.stopping import STOPPED_FOR_LIMIT, StoppedForLimit
from part.training.trainer import train

TINY = dict(subset=64, epochs=3, eval_n=16, attack_steps=1, eval_steps=1, probe_count=2, batch_size=64)


def test_a_stop_request_ends_the_run_after_a_complete_epoch_and_resume_finishes_it(tmp_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.request_stop("the time limit is near")  # asked before the trainer could catch any signal
    with pytest.raises(StoppedForLimit, match="stopped after epoch 1 as asked"):
        train(preset("fmnist-at", **TINY), run.path)
    assert run.epochs() == [1] and run.status()["state"] == "interrupted"
    assert run.stop_request() is None  # honoured: it does not stop the resumed run
    train(None, run.path, resume=True)
    assert run.epochs() == [1, 2, 3] and [m["epoch"] for m in run.metrics()] == [1, 2, 3]


def test_part_exits_with_the_resumable_code_when_stopped(tmp_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.request_stop("asked")
    sets = [x for k, v in TINY.items() for x in ("--set", f"{k}={v}")]
    out = subprocess.run([sys.executable, "-m", "part.cli", "train", "--preset", "fmnist-at", *sets, "--out",
                          str(run.path), "--no-progress"], capture_output=True, text=True, timeout=300)
    assert out.returncode == STOPPED_FOR_LIMIT, out.stderr[-2000:]
    assert "resume with `part resume`" in out.stderr
