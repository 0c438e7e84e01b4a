"""DDP training: shards that union to the single-process batch, 2 processes (gloo) matching 1, mask
alignment across ranks, resume, the --nproc relaunch, and what of mixed precision stays on CUDA."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import part.training.distributed as dist
from part import attacks
from part.cli import main
from part.training.config import TrainConfig, preset
from part.data.batching import batches, random_crop_flip, shard_bounds, sharded_batches
from part.data.datasets import InMemoryDataset
from part.precision import Precision
from part.runs import RunDir
from part.training.trainer import Trainer, _epoch_seed, _seed_random_start, train

ROOT = Path(__file__).resolve().parents[3]
TIMING = ("mask_refresh_s", "epoch_s", "eval_s")
# 1 vs 2 processes: the same images, crops and random starts per step, BatchNorm over the global batch;
# what is left is float reduction order (observed: train_loss within 2e-5, accuracies equal).
LOSS_TOL, IMAGES_TOL = 1e-3, 1


def _dataset(n=10):
    images = torch.arange(n * 4, dtype=torch.uint8).view(n, 1, 2, 2)
    return InMemoryDataset(images, torch.arange(n) % 3, ["a", "b", "c"])


@pytest.mark.parametrize("n,world", [(64, 2), (7, 3), (2, 4)])
def test_shard_bounds_split_a_batch_into_contiguous_nearly_equal_parts(n, world):
    parts = [shard_bounds(n, r, world) for r in range(world)]
    assert parts[0][0] == 0 and parts[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
    sizes = [b - a for a, b in parts]
    assert max(sizes) - min(sizes) <= 1


def test_the_ranks_of_each_step_hold_exactly_the_single_process_batch():
    ds, world = _dataset(10), 3
    single = [idx for _, _, idx in batches(ds, 4, shuffle=True, seed=5)]
    ranks = [list(sharded_batches(ds, 4, shuffle=True, seed=5, rank=r, world=world)) for r in range(world)]
    for t, batch in enumerate(single):
        parts = [ranks[r][t] for r in range(world)]
        assert torch.equal(torch.cat([p[2] for p in parts]), batch)
        assert [p[3] for p in parts] == [shard_bounds(len(batch), r, world)[0] for r in range(world)]
        assert all(p[4] == len(batch) for p in parts)
        assert all(torch.equal(p[0], ds.get_batch(p[2])[0]) for p in parts)


def test_a_shard_is_cropped_and_flipped_as_in_the_whole_batch():
    x = torch.rand(6, 1, 8, 8)
    whole, = random_crop_flip(x, generator=torch.Generator().manual_seed(3))
    part, = random_crop_flip(x[2:5], generator=torch.Generator().manual_seed(3), shard_of=(2, 6))
    assert torch.equal(part, whole[2:5])


def test_a_shard_gets_the_random_start_of_its_rows_in_one_process():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    x, y = torch.rand(6, 1, 4, 4), torch.arange(6) % 3
    _seed_random_start(11, 0, x)
    whole = attacks.pgd(model, x, y, eps=0.1, step_size=0.01, steps=0)
    _seed_random_start(11, 4, x[4:])
    assert torch.equal(attacks.pgd(model, x[4:], y[4:], eps=0.1, step_size=0.01, steps=0), whole[4:])


def test_synced_batchnorm_keeps_checkpoint_keys_and_acts_as_batchnorm_alone():
    from models import create_model

    plain = create_model("small-cnn", num_classes=10, in_channels=1)
    synced = dist.sync_batchnorm(create_model("small-cnn", num_classes=10, in_channels=1), torch.device("cpu"))
    assert any(isinstance(m, dist.GlooSyncBatchNorm) for m in synced.modules())
    synced.load_state_dict(plain.state_dict())  # same keys both ways
    x = torch.rand(8, 1, 28, 28)
    assert torch.allclose(synced.train()(x), plain.train()(x))


def _strip(rows):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def test_two_processes_match_one_keep_masks_aligned_and_resume_exactly(tmp_path):
    """One torchrun launch (2 ranks, gloo) runs tests/part/training/ddp_worker.py; meanwhile one process trains here."""
    from tests.part.training.ddp_worker import TINY

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "tests" / "part" / "training" / "ddp_worker.py"), str(tmp_path)]
    threads = torch.get_num_threads()
    with open(tmp_path / "torchrun.log", "wb") as log:
        child = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            torch.set_num_threads(1)  # beside the two ranks on a small machine
            one = train(preset("fmnist-part", **TINY), tmp_path / "one")
            rc = child.wait(timeout=400)
        finally:
            torch.set_num_threads(threads)
            if child.poll() is None:
                child.kill()  # its workers die with it (part.training.distributed sets their parent-death signal)
    assert rc == 0, (tmp_path / "torchrun.log").read_text()[-4000:]
    two = RunDir(tmp_path / "two")
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["one", "stopped", "two"]
    assert two.status()["state"] == "completed" and two.epochs() == [1, 2] and two.config()["nproc"] == 2
    for a, b in zip(one.metrics(), two.metrics(), strict=True):
        assert b["eval_n"] == a["eval_n"] == 64
        assert abs(a["train_loss"] - b["train_loss"]) <= LOSS_TOL
        assert abs(a["train_adv_acc"] - b["train_adv_acc"]) <= IMAGES_TOL / 256 + 1e-9
        for key in ("test_clean_acc", "test_pgd_acc"):
            assert abs(a[key] - b[key]) <= IMAGES_TOL / 64 + 1e-9, (key, a[key], b[key])
    weights = two.load_checkpoint(2)["model"]
    assert set(weights) == set(one.load_checkpoint(2)["model"])  # no "module." prefix
    stopped = RunDir(tmp_path / "stopped")
    assert stopped.status()["state"] == "completed" and _strip(stopped.metrics()) == _strip(two.metrics())
    assert all(torch.equal(weights[k], stopped.load_checkpoint(2)["model"][k]) for k in weights)
    _check_alignment(tmp_path, one)


def _check_alignment(out: Path, one: RunDir):
    ranks = [json.loads((out / f"alignment_rank{r}.json").read_text()) for r in range(2)]
    assert all(r["cache_is_whole_set"] for r in ranks)  # gathered in index order
    assert all(c["aligned"] for r in ranks for c in r["checks"])  # each image bounded by its own map
    assert sum(c["shifted"] for r in ranks for c in r["checks"]) > 0  # crops did move images
    order = torch.randperm(256, generator=torch.Generator().manual_seed(_epoch_seed(preset("fmnist-part"), 1))).tolist()
    for t in range(4):  # the two parts of each step are the single-process batch, disjoint
        assert ranks[0]["idx"][t] + ranks[1]["idx"][t] == order[64 * t:64 * (t + 1)]


def test_nproc_relaunches_train_under_torchrun(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(dist, "exec_torchrun", lambda n, argv: calls.append((n, argv)) or sys.exit(0))
    monkeypatch.setattr(dist, "max_nproc", lambda device: 4)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(SystemExit):
        main(["train", "--preset", "fmnist-at", "--epochs", "3", "--set", "eps=0.2", "--nproc", "2",
              "--out", str(tmp_path / "r"), "--no-progress"])
    n, argv = calls[0]
    handed = tmp_path / "r" / "requested_config.json"  # every worker reads the resolved config from this file
    assert n == 2 and argv == ["train", "--config", str(handed), "--out", str(tmp_path / "r"), "--no-progress"]
    assert TrainConfig.from_dict(json.loads(handed.read_text())) == preset("fmnist-at", epochs=3, eps=0.2, nproc=2)
    assert main(["train", "--preset", "fmnist-at", "--nproc", "5", "--out", str(tmp_path / "r")]) == 2
    RunDir(tmp_path / "old").write_config(preset("fmnist-at", nproc=3).to_dict())
    with pytest.raises(SystemExit):
        main(["resume", str(tmp_path / "old")])
    assert calls[1] == (3, ["resume", str(tmp_path / "old")])


def test_channels_last_and_fp16_stay_on_cuda(capsys):
    """bf16 autocast also runs on CPU (tests/part/test_precision.py); channels_last and fp16 do not."""
    p = Precision("off", True, torch.device("cpu"))
    assert "CUDA only" in capsys.readouterr().out
    assert p.dtype is None and not p.channels_last and p.scaler is None
    x = torch.rand(2, 3, 4, 4)
    assert p.inputs(x) is x
    with pytest.raises(ValueError, match="needs CUDA"):
        Precision("fp16", False, torch.device("cpu"))
    with pytest.raises(ValueError, match="accepted: auto, off, bf16, fp16"):
        Precision("fp8", False, torch.device("cpu"))


def test_attack_and_step_under_autocast_keep_the_budget_in_float32(tmp_path, monkeypatch):
    """CUDA autocast cannot run here; CPU bf16 autocast goes through the same code path."""
    cfg = preset("fmnist-part", subset=64, batch_size=32, eval_n=8, attack_steps=2, burn_in_epochs=0,
                 mask_every=0, probe_count=2, device="cpu", amp="bf16")
    trainer = Trainer(cfg, RunDir(tmp_path))
    assert trainer.precision.dtype is torch.bfloat16
    real, seen = trainer._attack, []

    def attack(x, y, eps):
        x_adv = real(x, y, eps)
        seen.append((x, x_adv, eps))
        return x_adv

    monkeypatch.setattr(trainer, "_attack", attack)
    row = trainer.train_epoch(1)
    assert torch.isfinite(torch.tensor(row["train_loss"]))
    for x, x_adv, eps in seen:
        assert x_adv.dtype == eps.dtype == torch.float32
        assert ((x_adv - x).abs() <= eps + 1e-6).all() and ((x_adv - x).abs() > 0).any()
