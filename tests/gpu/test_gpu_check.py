"""scripts/gpu_check.py (the training half of `make test-gpu`) on CPU: the generated files are the real
CIFAR-10 layout, the one-epoch run passes its checks, a missing piece is named, and without CUDA the
check stops at once with the reason."""
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from part.data.datasets import load_dataset
from tests.gpu.conftest import gpu_check

CPU = ["--device", "cpu", "--amp", "off", "--channels-last", "false", "--images", "64", "--test-images", "32",
       "--in-process"] + [x for kv in ("attack_steps=1", "eval_steps=1", "eval_n=32", "probe_count=2",
                                       "batch_size=32", "model=small-cnn") for x in ("--set", kv)]


def test_the_generated_files_are_the_cifar10_layout(tmp_path):
    folder = gpu_check.write_cifar10(tmp_path, n_train=23, n_test=7)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["batches.meta", "test_batch"] + [f"data_batch_{k}" for k in range(1, 6)])
    sizes = [len(pickle.loads((folder / f"data_batch_{k}").read_bytes(), encoding="bytes")[b"labels"])
             for k in range(1, 6)]
    assert sizes == [5, 5, 5, 4, 4]
    train, test = load_dataset("cifar10", "train", str(tmp_path)), load_dataset("cifar10", "test", str(tmp_path))
    assert (len(train), len(test), train.image_size, train.in_channels) == (23, 7, 32, 3)
    assert train.classes[0] == "airplane" and train.classes[9] == "truck"
    assert train.images.float().std() > 50  # random pixels, not a constant


def test_without_cuda_it_stops_at_once_with_the_reason(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "gpu_check: FAILED: no CUDA device" in err and "torch.cuda.is_available() == False" in err
    assert not (tmp_path / "data").exists() and not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gpu-check")
    assert gpu_check.main(CPU + ["--out", str(out)]) == 0
    return out / "run"


EXPECTED = {"device": "cpu", "amp": "off", "channels_last": False, "epochs": 1, "part": True, "dataset": "cifar10",
            "subset": 64}


def test_the_one_epoch_path_runs_and_passes_its_checks_on_cpu(cpu_run, capsys):
    row = gpu_check.check_run(cpu_run, EXPECTED)
    assert row["phase"] == "part" and row["epoch"] == 1 and row["eval_n"] == 32
    config = gpu_check.RunDir(cpu_run).config()
    assert config["data_dir"].endswith("data") and config["burn_in_epochs"] == 0 and config["model"] == "small-cnn"


def test_the_command_is_the_one_make_test_gpu_runs(tmp_path):
    args = gpu_check.parse_args([])
    cmd = gpu_check.train_command(tmp_path / "data", tmp_path / "run", args)
    assert cmd[1:5] == ["-m", "part.cli", "train", "--preset"] and cmd[5] == "cifar10-part"
    sets = dict(cmd[i + 1].split("=", 1) for i, a in enumerate(cmd) if a == "--set")
    assert sets == {"data_dir": str(tmp_path / "data"), "epochs": "1", "burn_in_epochs": "0", "subset": "512",
                    "amp": "bf16", "channels_last": "true", "device": "cuda"}


@pytest.mark.parametrize("damage,message", [
    (lambda run: (run / "mask_cache.pt").unlink(), "the resume state or the CAM cache is missing"),
    (lambda run: shutil.rmtree(run / "probes"), "incomplete: FileNotFoundError.*probes/epoch_0001.pt"),
    (lambda run: next((run / "checkpoints").iterdir()).write_bytes(b"garbage"), "incomplete: .*epoch_0001"),
    (lambda run: (run / "metrics.jsonl").write_text(""), "the metrics hold 0 epochs"),
    (lambda run: (run / "status.json").write_text('{"state": "failed", "message": "boom"}'), "status is 'failed'"),
])
def test_an_incomplete_run_folder_is_named(cpu_run, tmp_path, damage, message):
    run = tmp_path / "run"
    shutil.copytree(cpu_run, run)
    damage(run)
    with pytest.raises(gpu_check.CheckFailed, match=message):
        gpu_check.check_run(run, EXPECTED)


def test_a_run_in_another_precision_is_refused(cpu_run):
    with pytest.raises(gpu_check.CheckFailed, match="the config has amp='off', expected 'bf16'"):
        gpu_check.check_run(cpu_run, {**EXPECTED, "amp": "bf16"})
