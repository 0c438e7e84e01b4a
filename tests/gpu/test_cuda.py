"""The CUDA paths, run by `make test-gpu` (pytest -m cuda tests/gpu) and skipped without CUDA: device
auto, a training step under bf16 and fp16 autocast with channels_last, the API on cuda, and nccl DDP
on two GPUs (skipped on one)."""
import io
import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from part.explain.cam import compute_cam
from part.training.config import preset
from part.explain.images import to_tensor
from part.precision import Precision
from part.runs import RunDir, load_model
from part.devices import resolve_device
from part.training.trainer import Trainer, train

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA; run on a GPU with make test-gpu")]


def tiny(cifar_dir, **overrides):
    base = dict(data_dir=str(cifar_dir), subset=64, batch_size=32, eval_n=32, attack_steps=3, eval_steps=2,
                burn_in_epochs=0, mask_every=0, probe_count=2, device="cuda")
    return preset("cifar10-part", **{**base, **overrides})


def test_device_auto_picks_cuda():
    assert resolve_device("auto").type == "cuda" and resolve_device("cuda").type == "cuda"
    auto = Precision("auto", True, torch.device("cuda"), notify=False)
    assert auto.amp == ("bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "off")
    assert auto.channels_last


@pytest.mark.parametrize("amp,dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_a_training_step_under_autocast_and_channels_last(cifar_dir, tmp_path, monkeypatch, amp, dtype):
    cfg = tiny(cifar_dir, amp=amp, channels_last=True)
    trainer = Trainer(cfg, RunDir(tmp_path))
    assert trainer.device.type == "cuda" and trainer.precision.dtype is dtype
    assert (trainer.precision.scaler is not None) == (amp == "fp16")
    conv = next(m for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_cuda and conv.weight.is_contiguous(memory_format=torch.channels_last)
    real, seen = trainer._attack, []

    def attack(x, y, eps):
        x_adv = real(x, y, eps)
        seen.append((x, x_adv, eps))
        return x_adv

    monkeypatch.setattr(trainer, "_attack", attack)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    row = trainer.train_epoch(1)
    assert math.isfinite(row["train_loss"]) and 0 < row["full_eps_fraction"] < 1
    assert len(seen) == 2
    for x, x_adv, eps in seen:
        assert x.is_cuda and x.is_contiguous(memory_format=torch.channels_last)
        assert x_adv.dtype == eps.dtype == torch.float32 and eps.shape[0] == x.shape[0]
        assert ((x_adv - x).abs() <= eps + 1e-6).all() and ((x_adv - x).abs() > 0).any()
        assert x_adv.min() >= 0 and x_adv.max() <= 1
        assert eps.min() >= cfg.eps_low - 1e-6 and eps.max() <= cfg.eps + 1e-6
    changed = any(not torch.equal(a, p) for a, p in zip(before, trainer.model.parameters()))
    if amp == "fp16":  # the scaler may skip an overflowing step, and then lowers its scale
        scale = trainer.precision.scaler.get_scale()
        assert math.isfinite(scale) and (changed or scale < 2.0**16)
    else:
        assert changed
    result = trainer.evaluate()
    assert result["eval_n"] == 32 and 0 <= result["test_pgd_acc"] <= result["test_clean_acc"] + 1e-9 <= 1 + 1e-9


def test_the_api_explains_on_cuda(cifar_dir, tmp_path):
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient

    from backend.app import create_app
    from backend.settings import load_settings

    run = train(tiny(cifar_dir, epochs=1, attack_steps=1, eval_steps=1, amp="bf16", channels_last=True),
                tmp_path / "checkpoints" / "c10")
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    app = create_app(load_settings(env={}, checkpoints=tmp_path / "checkpoints", device="cuda"), start_jobs=False)
    tf32, torch.backends.cudnn.allow_tf32 = torch.backends.cudnn.allow_tf32, False  # compared with CPU below
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            assert client.get("/api/health").json()["device"].startswith("cuda")
            r = client.post("/api/explain", data={"run": "c10", "methods": "gradcam"},
                            files={"file": ("x.png", buffer.getvalue())})
            assert r.status_code == 200, r.text
            probe = client.post("/api/explain", data={"run": "c10", "probe": "1"})
            assert probe.status_code == 200, probe.text
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
    body = r.json()
    (result,) = body["results"]
    heatmap = torch.tensor(result["heatmap"])
    assert heatmap.shape == (32, 32) and body["epoch"] == 1
    model = load_model(run.checkpoint_path(1), "cpu")[0]  # the same CAM from the library on CPU
    expected = compute_cam(model, to_tensor(image, 3, 32), torch.tensor([body["target"]]), "gradcam")[0]
    assert torch.allclose(heatmap, expected, atol=0.02)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="nccl DDP needs at least 2 GPUs")
def test_two_processes_train_with_nccl(cifar_dir, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "tests" / "gpu" / "nccl_worker.py"), str(tmp_path), str(cifar_dir)]
    with open(tmp_path / "torchrun.log", "wb") as log:
        rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=600).returncode
    assert rc == 0, (tmp_path / "torchrun.log").read_text()[-4000:]
    ranks = [json.loads((tmp_path / f"nccl_rank{r}.json").read_text()) for r in range(2)]
    assert [r["backend"] for r in ranks] == ["nccl", "nccl"] and [r["gpu"] for r in ranks] == [0, 1]
    assert all(r["world"] == 2 and r["sum"] == [3.0] for r in ranks)
    assert all(r["gathered"] == [[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]] for r in ranks)
    two = RunDir(tmp_path / "two")
    assert two.status()["state"] == "completed" and two.epochs() == [1, 2] and two.config()["nproc"] == 2
    rows = two.metrics()
    assert [r["phase"] for r in rows] == ["burn-in", "part"] and all(r["eval_n"] == 64 for r in rows)
    assert all(math.isfinite(r["train_loss"]) for r in rows)
    assert not any(k.startswith("module.") for k in two.load_checkpoint(2)["model"])
