"""One training loop for AT, TRADES and MART, with or without pixel reweighting (PART, PART-T, PART-M).

Zhang et al., "Improving Accuracy-robustness Trade-off via Pixel Reweighted Adversarial Training",
ICML 2024: after `burn_in_epochs` of the plain defense, the inner maximisation is bounded by a
CAM-derived eps-map instead of a scalar eps; the outer loss is unchanged.

Every epoch seeds its own randomness from (seed, epoch), so resuming from a checkpoint reproduces
the run that never stopped.
"""

from __future__ import annotations

import copy
import math
import os
import time
from pathlib import Path

import torch
from tqdm import tqdm

from models import create_model
from part import attacks
from part.cam import compute_cam
from part.config import TrainConfig
from part.data import DATASETS, batches, load_dataset, random_crop_flip
from part.defenses import get_defense
from part.mask_cache import MaskCache
from part.masks import eps_map, mask_stats, recipe_options
from part.runs import RunDir


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but CUDA is not available; use device=auto or cpu")
    return torch.device(name)


def _epoch_seed(cfg: TrainConfig, epoch: int) -> int:
    return cfg.seed * 100_003 + epoch


class Trainer:
    def __init__(self, cfg: TrainConfig, run: RunDir, *, progress: bool = False):
        self.cfg, self.run, self.progress = cfg, run, progress
        self.device = resolve_device(cfg.device)
        data = dict(data_dir=cfg.data_dir or None, image_size=cfg.image_size)
        self.train_set = load_dataset(cfg.dataset, "train", subset=cfg.subset, **data)
        self.eval_set = load_dataset(cfg.dataset, "test", subset=cfg.eval_n, **data)
        self.test_set = load_dataset(cfg.dataset, "test", **data)
        torch.manual_seed(cfg.seed)
        ds = self.train_set
        self.model = create_model(cfg.model, num_classes=ds.num_classes, in_channels=ds.in_channels).to(self.device)
        self.optimizer = self._optimizer()
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, list(cfg.lr_milestones), cfg.lr_gamma)
        self.defense = get_defense(cfg.defense)
        self.mask_cache: MaskCache | None = None
        self.eval_eps = DATASETS[cfg.dataset].default_eps
        self.meta = {"model": cfg.model, "dataset": cfg.dataset, "num_classes": ds.num_classes,
                     "in_channels": ds.in_channels, "image_size": ds.image_size, "classes": list(ds.classes)}

    def _optimizer(self) -> torch.optim.Optimizer:
        cfg, params = self.cfg, self.model.parameters()
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    # -- CAMs and eps-maps --
    def cams(self, x: torch.Tensor, y: torch.Tensor, model: torch.nn.Module | None = None) -> torch.Tensor:
        cfg = self.cfg
        targets = y if cfg.cam_target == "label" else None
        return compute_cam(model or self.model, x, targets, list(cfg.cam_methods), weights=cfg.cam_weights or None)

    def eps_map(self, cams: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        options = {k: getattr(cfg, k) for k in recipe_options(cfg.recipe)}
        return eps_map(cams, eps=cfg.eps, eps_low=cfg.eps_low, recipe=cfg.recipe,
                       channels=self.train_set.in_channels, **options)

    def pixel_reweighting(self, epoch: int) -> bool:
        return self.cfg.part and epoch > self.cfg.burn_in_epochs

    def refresh_due(self, epoch: int) -> bool:
        s = self.cfg.mask_every
        return self.pixel_reweighting(epoch) and s > 0 and (epoch - self.cfg.burn_in_epochs - 1) % s == 0

    def last_refresh_epoch(self, epoch: int) -> int:
        """The epoch at whose start the cache used in `epoch` was computed."""
        s, start = self.cfg.mask_every, self.cfg.burn_in_epochs + 1
        return start + (epoch - start) // s * s

    # -- one epoch --
    def train_epoch(self, epoch: int, on_batch=None) -> dict:
        cfg, model = self.cfg, self.model
        reweight = self.pixel_reweighting(epoch)
        cached = reweight and cfg.mask_every > 0
        gen = torch.Generator().manual_seed(_epoch_seed(cfg, epoch))
        totals = {"loss": 0.0, "adv_correct": 0, "clean_correct": 0, "n": 0, "full": 0.0, "ratio": 0.0}
        n_batches = math.ceil(len(self.train_set) / cfg.batch_size)
        model.train()
        for i, (x, y, idx) in enumerate(batches(self.train_set, cfg.batch_size, shuffle=True, seed=_epoch_seed(cfg, epoch))):
            cams = self.mask_cache.lookup(idx) if cached else None
            if cfg.augment == "crop-flip":
                x, cams = random_crop_flip(x, cams, generator=gen)
            x, y = x.to(self.device), y.to(self.device)
            eps = cfg.eps
            if reweight:
                cams = self.cams(x, y) if cams is None else cams.to(self.device)
                eps = self.eps_map(cams)
                stats = mask_stats(eps, cfg.eps)
                totals["full"] += stats["full_eps_fraction"] * len(y)
                totals["ratio"] += stats["mean_eps_ratio"] * len(y)
            x_adv = self._attack(x, y, eps)
            logits_adv = model(x_adv)
            logits_nat = model(x) if self.defense.needs_clean_logits else None
            loss = self.defense.loss(logits_nat, logits_adv, y, cfg.beta)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            totals["loss"] += loss.item() * len(y)
            totals["adv_correct"] += int((logits_adv.argmax(1) == y).sum())
            if logits_nat is not None:
                totals["clean_correct"] += int((logits_nat.argmax(1) == y).sum())
            totals["n"] += len(y)
            if on_batch:
                on_batch(i + 1, n_batches)
        n = max(totals["n"], 1)
        row = {"train_loss": totals["loss"] / n, "train_adv_acc": totals["adv_correct"] / n,
               "train_clean_acc": totals["clean_correct"] / n if self.defense.needs_clean_logits else None,
               "full_eps_fraction": totals["full"] / n if reweight else None,
               "mean_eps_ratio": totals["ratio"] / n if reweight else None}
        return row

    def _attack(self, x, y, eps) -> torch.Tensor:
        cfg = self.cfg
        if cfg.attack == "mma":
            return attacks.mma(self.model, x, y, eps=eps, step_size=cfg.step_size, steps=cfg.attack_steps)
        return attacks.pgd(self.model, x, y, eps=eps, step_size=cfg.step_size, steps=cfg.attack_steps,
                           loss=self.defense.attack_loss)

    # -- evaluation and probes --
    def evaluate(self) -> dict:
        """Clean and PGD accuracy on the fixed evaluation subset, scalar eps, step eps/4."""
        clean = robust = n = 0
        for x, y, _ in batches(self.eval_set, 500, shuffle=False):
            x, y = x.to(self.device), y.to(self.device)
            with torch.no_grad():
                clean += int((self.model.eval()(x).argmax(1) == y).sum())
            x_adv = attacks.pgd(self.model, x, y, eps=self.eval_eps, step_size=self.eval_eps / 4, steps=self.cfg.eval_steps)
            with torch.no_grad():
                robust += int((self.model(x_adv).argmax(1) == y).sum())
            n += len(y)
        return {"test_clean_acc": clean / n, "test_pgd_acc": robust / n, "eval_n": n,
                "eval_attack": f"pgd{self.cfg.eval_steps}", "eval_eps": self.eval_eps}

    def probe_inputs(self) -> dict:
        """The first test image of each class, then the next ones, up to probe_count: the same for every run."""
        ys = self.test_set.get_batch(torch.arange(min(len(self.test_set), 2000)))[1]
        first = [int((ys == c).nonzero()[0]) for c in range(self.test_set.num_classes) if (ys == c).any()]
        rest = [i for i in range(len(ys)) if i not in set(first)]
        index = torch.tensor((first + rest)[: self.cfg.probe_count], dtype=torch.long)
        x, y = self.test_set.get_batch(index)
        return {"x": x, "y": y, "index": index, "classes": list(self.test_set.classes)}

    def probe(self, inputs: dict) -> dict:
        x, y = inputs["x"].to(self.device), inputs["y"].to(self.device)
        cams = self.cams(x, y)
        with torch.no_grad():
            probs = torch.softmax(self.model.eval()(x), 1)
        return {"cam": cams.cpu().half(), "eps_map": self.eps_map(cams).expand(-1, x.shape[1], -1, -1).cpu().half(),
                "pred": probs.argmax(1).cpu(), "probs": probs.cpu().half()}


class _Status:
    """Throttled status writes with an ETA from this process's own pace."""

    def __init__(self, run: RunDir, epochs: int, start_epoch: int):
        self.run, self.epochs, self.start_epoch = run, epochs, start_epoch
        self.t0, self.last = time.time(), 0.0

    def update(self, epoch: int, batch: int, batches: int, phase: str, force: bool = False) -> None:
        now = time.time()
        if not force and now - self.last < 1.0:
            return
        self.last = now
        done = (epoch - 1 + batch / max(batches, 1)) / self.epochs
        here = done - self.start_epoch / self.epochs
        eta = (now - self.t0) / here * (1 - done) if here > 0 else None
        self.run.write_status(state="running", phase=phase, epoch=epoch, epochs=self.epochs, batch=batch,
                              batches=batches, progress=round(done, 4), eta_s=eta, pid=os.getpid())


def _restore(trainer: Trainer) -> int:
    """Load the newest complete epoch (checkpoint + optimiser state); returns it, or 0."""
    state = trainer.run.load_train_state()
    if state is None:
        return 0
    epoch = int(state["epoch"])
    trainer.model.load_state_dict(trainer.run.load_checkpoint(epoch)["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scheduler.load_state_dict(state["scheduler"])
    trainer.run.truncate_metrics(epoch)
    return epoch


def _masks_for(trainer: Trainer, epoch: int, status: _Status) -> float:
    """Make sure the mask cache used in `epoch` is loaded; returns seconds spent computing it."""
    cfg, run = trainer.cfg, trainer.run
    if not trainer.pixel_reweighting(epoch) or cfg.mask_every == 0:
        return 0.0
    due = trainer.last_refresh_epoch(epoch)
    if trainer.mask_cache is not None and trainer.mask_cache.epoch == due:
        return 0.0
    saved = run.load_mask_cache()
    if saved is not None and int(saved["epoch"]) == due and not trainer.refresh_due(epoch):
        trainer.mask_cache = MaskCache.from_state(saved)
        return 0.0
    status.update(epoch, 0, 1, "mask-refresh", force=True)
    model = trainer.model
    if due != epoch:  # resumed mid-interval without the cache: rebuild it from the weights it came from
        model = copy.deepcopy(trainer.model)
        model.load_state_dict(run.load_checkpoint(due - 1)["model"])
    t0 = time.time()
    trainer.mask_cache = MaskCache.build(trainer.train_set, lambda x, y: trainer.cams(x, y, model),
                                         epoch=due, device=trainer.device)
    seconds = time.time() - t0
    run.save_mask_cache(trainer.mask_cache.state())
    return seconds


def _fit_epoch(trainer: Trainer, epoch: int, probe_inputs: dict, status: _Status) -> dict:
    cfg, run = trainer.cfg, trainer.run
    torch.manual_seed(_epoch_seed(cfg, epoch))
    phase = "part" if trainer.pixel_reweighting(epoch) else ("burn-in" if cfg.part else "train")
    refresh_s = _masks_for(trainer, epoch, status)
    n_batches = math.ceil(len(trainer.train_set) / cfg.batch_size)
    bar = tqdm(total=n_batches, desc=f"epoch {epoch}/{cfg.epochs} {phase}", leave=True, disable=not trainer.progress)

    def on_batch(i, n):
        bar.update(1)
        status.update(epoch, i, n, phase)

    t0 = time.time()
    row = trainer.train_epoch(epoch, on_batch)
    epoch_s = time.time() - t0
    lr = trainer.optimizer.param_groups[0]["lr"]
    trainer.scheduler.step()
    status.update(epoch, n_batches, n_batches, "eval", force=True)
    t1 = time.time()
    row = {"epoch": epoch, "phase": phase, "lr": lr, **row, **trainer.evaluate(),
           "mask_refresh_s": refresh_s, "epoch_s": epoch_s, "eval_s": time.time() - t1}
    bar.set_postfix(clean=f"{row['test_clean_acc']:.3f}", pgd=f"{row['test_pgd_acc']:.3f}")
    bar.close()
    run.save_probes(epoch, trainer.probe(probe_inputs))
    run.append_metrics(row)
    run.save_checkpoint(epoch, trainer.model.state_dict(), cfg.to_dict(), trainer.meta)
    run.save_train_state({"epoch": epoch, "optimizer": trainer.optimizer.state_dict(),
                          "scheduler": trainer.scheduler.state_dict()})
    return row


def train(cfg: TrainConfig | None, out: str | Path, *, resume: bool = False, progress: bool = False) -> RunDir:
    """Train into the run folder `out`, or (resume=True) continue it from its newest complete epoch."""
    run = RunDir(out)
    if resume:
        cfg = TrainConfig.from_dict(run.config())
    elif run.exists():
        raise FileExistsError(f"{run.path} already holds a run; continue it with `part resume {run.path}` or choose another --out")
    else:
        run.write_config(cfg.validate().to_dict())
    trainer = Trainer(cfg, run, progress=progress)
    start = _restore(trainer) if resume else 0
    if start == 0 or not (run.path / "probes" / "inputs.pt").exists():
        run.save_probe_inputs(trainer.probe_inputs())
    probe_inputs = run.load_probe_inputs()
    status = _Status(run, cfg.epochs, start)
    status.update(start + 1, 0, 1, "starting", force=True)
    try:
        for epoch in range(start + 1, cfg.epochs + 1):
            _fit_epoch(trainer, epoch, probe_inputs, status)
    except KeyboardInterrupt:
        run.write_status(state="interrupted", message="stopped by the user; resume with `part resume`")
        raise
    except BaseException as err:
        run.write_status(state="failed", message=f"{type(err).__name__}: {err}")
        raise
    run.write_status(state="completed", phase="done", epoch=cfg.epochs, progress=1.0, eta_s=0)
    return run
