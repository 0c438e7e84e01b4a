"""Every run folder shipped in checkpoints/ is complete and loads: `make run` opens on them."""

from pathlib import Path

import pytest
import torch

from part.config import TrainConfig
from part.runs import RunDir, load_model

ROOT = Path(__file__).resolve().parents[1] / "checkpoints"
SHIPPED = sorted(p.parent.name for p in ROOT.glob("*/config.json"))


def test_runs_are_shipped():
    assert {"fmnist-at-s0", "fmnist-part-s0"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_run_is_complete_and_loads(name):
    run = RunDir(ROOT / name)
    cfg = TrainConfig.from_dict(run.config())
    epochs = list(range(1, cfg.epochs + 1))
    assert run.status()["state"] == "completed"
    assert run.epochs() == epochs and [r["epoch"] for r in run.metrics()] == epochs
    inputs = run.load_probe_inputs()
    model, ckpt = load_model(run.checkpoint_path(cfg.epochs))
    assert ckpt["meta"]["dataset"] == cfg.dataset
    with torch.no_grad():
        pred = model(inputs["x"]).argmax(1)
    for epoch in epochs:
        probes = run.load_probes(epoch)
        assert probes["cam"].shape[0] == len(inputs["x"])
    assert torch.equal(pred, run.load_probes(cfg.epochs)["pred"])  # the stored probes are this model's
