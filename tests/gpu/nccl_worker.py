"""Run by torchrun from tests/gpu/test_cuda.py, one process per GPU: the nccl process group and its
collectives (results in OUT/nccl_rank<r>.json), then `part train` in 2 processes into OUT/two.

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/gpu/nccl_worker.py OUT DATA_DIR
"""
import json
import sys
from pathlib import Path

import torch
import torch.distributed as tdist

from part.training import distributed as dist
from part.cli import main

OUT, DATA = Path(sys.argv[1]), sys.argv[2]
SETTINGS = dict(data_dir=DATA, subset=128, batch_size=64, epochs=2, burn_in_epochs=1, mask_every=1, eval_n=64,
                attack_steps=2, eval_steps=2, probe_count=4, device="cuda", amp="bf16", channels_last="true")


def collectives() -> dict:
    r = dist.rank()
    rows = dist.all_gather_rows(torch.full((r + 1, 2), float(r)), [1, 2])
    return {"backend": tdist.get_backend(), "world": dist.world(), "gpu": torch.cuda.current_device(),
            "sum": dist.all_reduce_sum([r + 1.0]), "gathered": rows.tolist()}


if __name__ == "__main__":
    assert dist.setup(torch.device("cuda")), "not started by torchrun with 2 processes"
    (OUT / f"nccl_rank{dist.rank()}.json").write_text(json.dumps(collectives()))
    flags = [x for k, v in SETTINGS.items() for x in ("--set", f"{k}={v}")]
    code = main(["train", "--preset", "cifar10-part", *flags, "--out", str(OUT / "two"), "--no-progress"])
    dist.teardown()
    sys.exit(code)
