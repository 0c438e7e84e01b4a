"""Run by torchrun from test_distributed.py: every rank runs this; results land under OUT for the test.

1. Mask alignment under the distributed sampler: a CAM equal to the image itself, crop-flip
   augmentation, the cache built across ranks; each rank records its steps.
2. `part train` (the CLI) on 2 processes into OUT/two.
3. The same run interrupted at epoch 2 into OUT/stopped, then resumed on 2 processes.
"""

import json
import sys
from pathlib import Path

import torch

import part.training.trainer as train_mod
from part.training import distributed as dist
from part.cli import main
from part.training.config import preset
from part.training.cam_cache import CamCache
from part.runs import RunDir

OUT = Path(sys.argv[1])
TINY = dict(subset=256, batch_size=64, eval_n=64, attack_steps=2, eval_steps=2, epochs=2, burn_in_epochs=1,
            mask_every=1, probe_count=4, device="cpu")
CLI = ["--preset", "fmnist-part", "--epochs", "2", "--burn-in", "1", "--mask-every", "1", "--subset", "256",
       "--no-progress"] + [x for k in ("batch_size", "eval_n", "attack_steps", "eval_steps", "probe_count", "device")
                           for x in ("--set", f"{k}={TINY[k]}")]


def mask_alignment() -> dict:
    trainer = train_mod.Trainer(preset("fmnist-part", **{**TINY, "augment": "crop-flip", "burn_in_epochs": 0}),
                                RunDir(OUT / "unused"))
    trainer.cams = lambda x, y, model=None: x[:, 0].clone()  # exactly equivariant to crop and flip
    trainer.mask_cache = CamCache.build(trainer.train_set, trainer.cams, epoch=1)
    whole = trainer.train_set.get_batch(torch.arange(len(trainer.train_set)))[0][:, 0].half()
    trainer.eps_map = lambda cams: cams[:, None]
    checks, seen = [], []

    def record(x, y, eps):
        checks.append({"aligned": torch.equal(eps[:, 0], x[:, 0].half().float()),
                       "shifted": int((x[:, 0, :, :4] == 0).all(dim=(1, 2)).sum())})
        return x

    real_inputs = trainer._inputs

    def inputs(x, y, idx, *args):
        seen.append(idx.tolist())
        return real_inputs(x, y, idx, *args)

    trainer._attack, trainer._inputs = record, inputs
    trainer.train_epoch(1)
    return {"cache_is_whole_set": torch.equal(trainer.mask_cache.cams, whole), "checks": checks, "idx": seen}


def stop_at(epoch_to_stop):
    real = train_mod._fit_epoch

    def fit(trainer, epoch, *args):
        if epoch == epoch_to_stop:
            raise KeyboardInterrupt
        return real(trainer, epoch, *args)

    return fit


if __name__ == "__main__":
    dist.setup(torch.device("cpu"))
    result = mask_alignment()
    (OUT / f"alignment_rank{dist.rank()}.json").write_text(json.dumps(result))
    assert main(["train", *CLI, "--out", str(OUT / "two")]) == 0
    real, train_mod._fit_epoch = train_mod._fit_epoch, stop_at(2)
    assert main(["train", *CLI, "--out", str(OUT / "stopped")]) == 130
    train_mod._fit_epoch = real
    assert main(["resume", str(OUT / "stopped"), "--no-progress"]) == 0
    dist.teardown()
