"""Standard AutoAttack (L-inf), resumable after an interruption.

Croce and Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", ICML 2020: APGD-CE, APGD-T, FAB-T and Square, each run on the examples
that survived the previous ones (version='standard', as in RobustBench and Table 1 of PART).

The four sub-attacks are the ones `pyautoattack.AutoAttack(version='standard')` configures. The
loop that chains them lives here because the library's own resume (`run_standard_evaluation(...,
state_path=...)`, pyautoattack 0.2.0) cannot resume: it saves the attack set as a string and then
refuses its own state file, writes the list of finished attacks at most once a minute, and leaves
`y_adv` unset on the resume path. Our state file is JSON, replaced atomically after every batch:
the robust flags, the finished sub-attacks, the accuracy after each, and a fingerprint of the model,
the images and eps, so a stale state is never applied to another model or image set.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from part.evaluation.accuracy import SILENT, Progress, model_device, predict, seeded
from part.modes import eval_mode
from part.runs import write_json

SUB_ATTACKS = ("apgd-ce", "apgd-t", "fab-t", "square")
STATE_FORMAT = "part-autoattack-state/1"


def fingerprint(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> str:
    h = hashlib.sha256()
    for t in [*model.state_dict().values(), x, y]:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    h.update(repr(float(eps)).encode())
    return h.hexdigest()


def _library_attacks(model: nn.Module, eps: float, seed: int, num_classes: int, configure=None):
    from pyautoattack import AutoAttack

    aa = AutoAttack(model, eps=eps, norm="Linf", version="standard", seed=seed, device=model_device(model))
    targets = max(1, min(9, num_classes - 1))  # the standard 9 target classes, fewer if there are fewer
    aa.apgd_targeted.n_target_classes = targets
    aa.fab.n_target_classes = targets
    if configure is not None:
        configure(aa)

    def apgd_ce(x, y):
        aa.apgd.loss, aa.apgd.seed = "ce", seed
        return aa.apgd.perturb(x, y)

    def apgd_t(x, y):
        aa.apgd_targeted.seed = seed
        return aa.apgd_targeted.perturb(x, y)

    def fab_t(x, y):
        aa.fab.targeted, aa.fab.n_restarts, aa.fab.seed = True, 1, seed
        return aa.fab.perturb(x, y)

    def square(x, y):
        aa.square.seed = seed
        return aa.square.perturb(x, y)

    return {"apgd-ce": apgd_ce, "apgd-t": apgd_t, "fab-t": fab_t, "square": square}


def _load_state(path: Path | None, key: str) -> dict | None:
    if path is None or not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
    except (json.JSONDecodeError, OSError):
        return None
    if state.get("format") != STATE_FORMAT or state.get("fingerprint") != key:
        return None  # made for another model, image set or eps: start over
    return state


def autoattack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, batch_size: int = 128,
               state_path: str | Path | None = None, seed: int = 0, progress: Progress = SILENT,
               configure: Callable[[object], None] | None = None) -> dict:
    """Robust accuracy under standard AutoAttack; with `state_path`, resumable where it stopped.

    `configure(aa)` may change the library's sub-attack objects (aa.apgd, aa.apgd_targeted, aa.fab,
    aa.square) before they run, e.g. fewer iterations for a quick look; the result is then marked
    "custom" and is no longer standard AutoAttack.

    Returns {"accuracy", "n", "correct" (0/1 per example), "seconds" (all sessions together),
    "sub_attacks" (accuracy after clean and each sub-attack), "resumed_after" (sub-attacks a
    previous session had finished), "params"}.
    """
    path = Path(state_path) if state_path is not None else None
    x, y = x.detach().cpu(), y.detach().cpu()
    key = fingerprint(model, x, y, eps) + ("-custom" if configure is not None else "")
    state = _load_state(path, key)
    resumed_after = list(state["done"]) if state else []
    t0 = time.time()
    if state is None:
        with progress.task("aa:clean", len(x)) as task:
            flags = _clean_flags(model, x, y, batch_size, task)
        state = {"format": STATE_FORMAT, "fingerprint": key, "eps": eps, "n": len(x), "done": [],
                 "robust": flags, "sub_attacks": {"clean": sum(flags) / max(len(x), 1)}, "seconds": 0.0}
        _save(path, state, t0)
    with eval_mode(model), seeded(seed, model_device(model)):  # the sub-attacks reseed torch's global RNG
        runners = _library_attacks(model, eps, seed, _num_classes(model, x), configure)
        for name in SUB_ATTACKS:
            if name not in state["done"]:
                _run_sub_attack(model, runners[name], name, x, y, state, path, batch_size, progress, t0)
    state["seconds"] += time.time() - t0
    _save(path, state, None)
    flags = state["robust"]
    return {"accuracy": sum(flags) / max(len(flags), 1), "n": len(flags), "correct": list(flags),
            "seconds": round(state["seconds"], 3), "sub_attacks": state["sub_attacks"],
            "resumed_after": resumed_after,
            "params": {"eps": eps, "version": "custom" if configure else "standard", "norm": "Linf",
                       "attacks": list(SUB_ATTACKS), "seed": seed}}


def _clean_flags(model, x, y, batch_size, task) -> list[int]:
    device, flags = model_device(model), []
    for s in range(0, len(x), batch_size):
        flags += (predict(model, x[s:s + batch_size].to(device)).cpu() == y[s:s + batch_size]).int().tolist()
        task.update(len(x[s:s + batch_size]))
    return flags


def _num_classes(model: nn.Module, x: torch.Tensor) -> int:
    with torch.no_grad():
        return int(model(x[:1].to(model_device(model))).shape[1])


def _run_sub_attack(model, run, name, x, y, state, path, batch_size, progress, t0) -> None:
    device = model_device(model)
    todo = [i for i, f in enumerate(state["robust"]) if f]
    with progress.task(f"aa:{name}", len(todo)) as task:
        for s in range(0, len(todo), batch_size):
            idx = torch.tensor(todo[s:s + batch_size])
            xb, yb = x[idx].to(device), y[idx].to(device)
            fooled = (predict(model, run(xb, yb)) != yb).cpu()
            for i in idx[fooled].tolist():
                state["robust"][i] = 0
            _save(path, state, t0)  # a batch is never lost
            task.update(len(idx))
    state["done"].append(name)
    state["sub_attacks"][name] = sum(state["robust"]) / max(len(x), 1)
    _save(path, state, t0)


def _save(path: Path | None, state: dict, t0: float | None) -> None:
    if path is None:
        return
    snapshot = dict(state)
    if t0 is not None:  # seconds so far, including this session's
        snapshot["seconds"] = state["seconds"] + time.time() - t0
    write_json(path, snapshot)
