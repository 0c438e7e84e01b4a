"""Multi-process training on PyTorch's own engine: torchrun starts the processes, DDP syncs gradients.

Under torchrun (LOCAL_RANK/WORLD_SIZE set) `setup` joins the process group: gloo on CPU, nccl on
CUDA with one GPU per local rank. Outside torchrun everything here is a no-op for a world of one,
so the single-process trainer runs the same code. Only rank 0 writes the run folder.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

import torch
import torch.distributed as dist
from torch import nn


def under_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def local_device(device: torch.device) -> torch.device:
    """On CUDA under torchrun, the GPU of this local rank."""
    if device.type == "cuda" and under_torchrun():
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device


def setup(device: torch.device) -> bool:
    """Join the torchrun process group if there is one to join; True if this call created it."""
    if active() or not under_torchrun() or int(os.environ["WORLD_SIZE"]) < 2:
        return False
    _die_with_parent()
    if device.type == "cuda":
        gpu = local_device(device)
        torch.cuda.set_device(gpu)
        dist.init_process_group("nccl", device_id=gpu)  # binds the communicator (and barriers) to this GPU
    else:
        dist.init_process_group("gloo")
    return True


def _die_with_parent() -> None:
    """torchrun starts each worker in a session of its own, out of reach of a signal to torchrun's
    process group: have the kernel kill this worker when torchrun dies (a cancel's SIGKILL)."""
    if not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() == 1:  # torchrun was already gone before the call
        os._exit(1)


def teardown() -> None:
    if active():
        dist.destroy_process_group()


def barrier() -> None:
    if world() > 1:
        dist.barrier()


def _comm_device() -> torch.device:
    # nccl moves only CUDA tensors; gloo only CPU ones.
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(values: list[float]) -> list[float]:
    """Sums of Python numbers over ranks (float64, so counts stay exact)."""
    if world() == 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return t.cpu().tolist()


def all_gather_rows(local: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Concatenate each rank's rows in rank order; rank r holds sizes[r] rows (padded for the collective)."""
    if world() == 1:
        return local
    most = max(sizes)
    padded = local.new_zeros((most,) + tuple(local.shape[1:]))
    padded[: len(local)] = local
    padded = padded.to(_comm_device())
    parts = [torch.empty_like(padded) for _ in range(world())]
    dist.all_gather(parts, padded)
    return torch.cat([p[:n].cpu() for p, n in zip(parts, sizes)])


def max_nproc(device: str) -> int:
    """How many training processes this machine offers: its GPUs on CUDA, else its CPU cores."""
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    return torch.cuda.device_count() if cuda else (os.cpu_count() or 1)


def exec_torchrun(nproc: int, argv: list[str]) -> None:
    """Replace this process by `torchrun --standalone` running `part <argv>` in nproc processes.

    exec, not a child: the pid, process group, signals (Ctrl-C, a cancel's SIGTERM) and the exit
    code are torchrun's own, which forwards signals to its workers.
    """
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           "-m", "part.cli", *argv]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, cmd)


# ---- the model under DDP -------------------------------------------------------------------------

class GlooSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm over the global batch of all ranks, for CPU (PyTorch's SyncBatchNorm is GPU-only).

    Statistics are summed with torch.distributed.nn's differentiable all_reduce, so gradients flow
    through them as in a single process holding the whole batch.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and world() > 1):
            return super().forward(x)
        from torch.distributed._functional_collectives import all_reduce as reduce

        def all_reduce(t):  # PyTorch's differentiable all_reduce: gradients are summed back over ranks
            return reduce(t, "sum", dist.group.WORLD)

        dims, shape = (0, 2, 3), (1, -1, 1, 1)
        count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype)
        sums = all_reduce(torch.cat([x.sum(dims), count]))
        n = sums[-1]
        mean = sums[:-1] / n
        var = all_reduce(((x - mean.view(shape)) ** 2).sum(dims)) / n  # two passes, as BatchNorm does
        self._track(mean.detach(), var.detach() * n / (n - 1).clamp(min=1))
        out = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        return out * self.weight.view(shape) + self.bias.view(shape) if self.affine else out

    @torch.no_grad()
    def _track(self, mean: torch.Tensor, unbiased_var: torch.Tensor) -> None:
        if not self.track_running_stats:
            return
        self.num_batches_tracked += 1
        m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean.mul_(1 - m).add_(mean, alpha=m)
        self.running_var.mul_(1 - m).add_(unbiased_var, alpha=m)


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """BatchNorm2d layers computing statistics over the global batch; state_dict keys are unchanged."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if type(child) is nn.BatchNorm2d:
            sync = GlooSyncBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                     child.track_running_stats)
            sync.load_state_dict(child.state_dict())
            setattr(model, name, sync)
        else:
            sync_batchnorm(child, device)
    return model


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """DDP around the model for the training step; the model itself in a world of one.

    Attacks and CAMs keep using the bare module: their input gradients never touch DDP's hooks.
    """
    if world() == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
