"""DDP across nodes: two torchrun "nodes" on 127.0.0.1 (one process each, gloo, the c10d rendezvous that
a Slurm job's nodes use) train the run a 2-process torchrun on one node trains."""

import os
import socket
import subprocess
import sys
from pathlib import Path

from part import commands
from part.runs import RunDir
from part.training.config import preset

ROOT = Path(__file__).resolve().parents[3]
TINY = dict(subset=128, batch_size=64, eval_n=32, attack_steps=1, eval_steps=1, epochs=2, burn_in_epochs=1,
            probe_count=2, device="cpu")
TIMING = ("mask_refresh_s", "epoch_s", "eval_s")
LOSS_TOL = 1e-3  # float reduction order; the images, crops and random starts of each step are the same


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_folder(path: Path) -> RunDir:
    run = RunDir(path)
    run.path.mkdir(parents=True)
    run.write_requested_config(preset("fmnist-part", **TINY).to_dict())
    return run


def test_two_nodes_of_one_process_train_what_two_processes_on_one_node_train(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    nodes, single = _run_folder(tmp_path / "nodes"), _run_folder(tmp_path / "single")
    part_args = commands.train_argv(nodes.path, config_file=nodes.requested_config_path)[len(commands.PART):]
    endpoint = f"127.0.0.1:{_port()}"
    node = commands.torchrun_argv(part_args, nnodes=2, nproc_per_node=1, rdzv_endpoint=endpoint, rdzv_id="two-nodes")
    one_node = commands.train_argv(single.path, config_file=single.requested_config_path, nproc=2)
    logs = [open(tmp_path / f"{name}.log", "wb") for name in ("node0", "node1", "single")]
    children = [subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
                for argv, log in zip((node, node, one_node), logs)]
    try:
        codes = [child.wait(timeout=400) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
        for log in logs:
            log.close()
    assert codes == [0, 0, 0], [(tmp_path / f"{n}.log").read_text()[-3000:] for n in ("node0", "node1", "single")]
    assert nodes.status()["state"] == single.status()["state"] == "completed"
    assert nodes.config()["nproc"] == single.config()["nproc"] == 2
    for a, b in zip(single.metrics(), nodes.metrics(), strict=True):
        assert abs(a["train_loss"] - b["train_loss"]) <= LOSS_TOL, (a, b)
        assert {k: v for k, v in a.items() if k not in TIMING + ("train_loss",)} == \
               {k: v for k, v in b.items() if k not in TIMING + ("train_loss",)}
    one, two = single.load_checkpoint(2)["model"], nodes.load_checkpoint(2)["model"]
    assert set(one) == set(two)
    assert all((one[k].float() - two[k].float()).abs().max() <= 1e-3 for k in one)
