"""Per-example accuracy of a model under an attack, batched, seeded and with progress reporting.

The building block of robustness evaluation (Madry et al., ICLR 2018, PGD; Gao et al., ICML 2022,
MMA; Goodfellow et al., ICLR 2015, FGSM): an attack maps (model, x, y) to adversarial inputs, and
the model counts as correct on an example when it still predicts the label there.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch
from torch import nn
from tqdm import tqdm

from part.attacks.registry import Attack
from part.modes import eval_mode

ProgressCallback = Callable[[dict], None]


class Progress:
    """tqdm bars (when enabled) and an optional callback(event) per finished batch.

    An event is {"task": name, "done": images done, "total": images in the task}; a backend job can
    forward it to its status file.
    """

    def __init__(self, enabled: bool = False, callback: ProgressCallback | None = None):
        self.enabled, self.callback = enabled, callback

    def task(self, name: str, total: int) -> "Task":
        return Task(self, name, total)


class Task:
    def __init__(self, progress: Progress, name: str, total: int):
        self.progress, self.name, self.total, self.done = progress, name, total, 0
        self.bar = tqdm(total=total, desc=name, unit="img", leave=True, disable=not progress.enabled)

    def update(self, k: int) -> None:
        self.done += k
        self.bar.update(k)
        if self.progress.callback is not None:
            self.progress.callback({"task": self.name, "done": self.done, "total": self.total})

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> "Task":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


SILENT = Progress(False)


def model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


@contextlib.contextmanager
def seeded(seed: int, device: torch.device):
    """Run the block with torch's global RNG seeded, then give the caller its RNG state back."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad(), eval_mode(model):
        return model(x).argmax(1)


def correct_under(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: Attack | None = None, *,
                  batch_size: int = 128, task: Task | None = None) -> torch.Tensor:
    """Bool [N] on the CPU: whether `model` classifies attack(model, x, y) (or x itself) correctly."""
    device = model_device(model)
    out = []
    for s in range(0, len(x), batch_size):
        xb, yb = x[s:s + batch_size].to(device), y[s:s + batch_size].to(device)
        xa = attack(model, xb, yb) if attack is not None else xb
        out.append((predict(model, xa) == yb).cpu())
        if task is not None:
            task.update(len(xb))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool)


def transfer_attack(surrogate: nn.Module, inner: Attack) -> Attack:
    """Adversarial examples made on `surrogate` (a black-box attack on the evaluated model)."""
    surrogate_device = model_device(surrogate)

    def attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return inner(surrogate, x.to(surrogate_device), y.to(surrogate_device)).to(x.device)

    return attack


def fraction(flags: torch.Tensor) -> float:
    """The share of True in a bool tensor, as an exact Python ratio (0 for no examples)."""
    return int(flags.sum()) / len(flags) if len(flags) else 0.0


def accuracy_record(correct: torch.Tensor, seconds: float, **params) -> dict:
    """The JSON record of one attack: accuracy, n, seconds, per-example 0/1 and the attack's settings."""
    n = len(correct)
    return {"accuracy": fraction(correct), "n": n, "seconds": round(seconds, 3),
            "correct": [int(c) for c in correct.tolist()], "params": params}
