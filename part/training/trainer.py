"""One training loop for AT, TRADES and MART, with or without pixel reweighting (PART, PART-T, PART-M).

Zhang et al., "Improving Accuracy-robustness Trade-off via Pixel Reweighted Adversarial Training",
ICML 2024: after `burn_in_epochs` of the plain defense, the inner maximisation is bounded by a
CAM-derived eps-map instead of a scalar eps; the outer loss is unchanged.

Every epoch seeds its own randomness from (seed, epoch), and every step its attack's random start
from (seed, epoch, step), so resuming from a checkpoint reproduces the run that never stopped.

Under torchrun (part/training/distributed.py) batch_size stays the global batch: each rank trains on its part
of every global batch, draws that part's crops and random starts as one process would, and weights
its loss so DDP's gradient average is the gradient of the global batch mean.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import torch
from tqdm import tqdm

from models import create_model
from part import attacks
from part.attacks import attack_view
from part.training import distributed as dist
from part.explain.cam import NATIVE_METHODS, compute_cam
from part.training.config import TrainConfig
from part.data.batching import random_crop_flip, sharded_batches
from part.data.datasets import DATASETS, load_dataset, object_masks
from part.training.defenses import get_defense
from part.training.cam_cache import CamCache, masks_for
from part.training.schedules import scheduled, values_at
from part.explain.eps_maps import MASK_RECIPES, eps_map, mask_stats, recipe_options
from part.precision import Precision, resolve_amp
from part.devices import resolve_device
from part.runs import RunDir
from part.training.status import Status
from part.training.stopping import StoppedForLimit, StopWatch
from part.training.tensorboard import EventWriter, epoch_values


def _epoch_seed(cfg: TrainConfig, epoch: int) -> int:
    return cfg.seed * 100_003 + epoch


def _seed(*parts: int) -> int:
    """One seed from several integers, the same on every rank and in every run."""
    out = 0
    for p in parts:
        out = (out * 1_000_003 + p) % (1 << 63)
    return out


def _seed_random_start(seed: int, offset: int, x: torch.Tensor) -> None:
    """Seed the attack's random start for rows offset.. of a global batch.

    The rank skips the draws of the rows before its part: CPU draws are sequential, so each image
    gets the noise it gets in one process; on CUDA the ranks at least draw different noise.
    """
    torch.manual_seed(seed)
    if offset:
        torch.rand(offset * x[0].numel(), device=x.device)


class Trainer:
    def __init__(self, cfg: TrainConfig, run: RunDir, *, progress: bool = False):
        self.cfg, self.run, self.progress = cfg, run, progress
        self.device = dist.local_device(resolve_device(cfg.device))
        self.rank, self.world = dist.rank(), dist.world()
        data = dict(data_dir=cfg.data_dir or None, image_size=cfg.image_size)
        self.train_set = load_dataset(cfg.dataset, "train", subset=cfg.subset, **data)
        self.eval_set = load_dataset(cfg.dataset, "test", subset=cfg.eval_n, **data)
        self.test_set = load_dataset(cfg.dataset, "test", **data)
        torch.manual_seed(cfg.seed)
        ds = self.train_set
        model = create_model(cfg.model, num_classes=ds.num_classes, in_channels=ds.in_channels)
        if self.world > 1 and cfg.sync_bn:
            model = dist.sync_batchnorm(model, self.device)
        self.precision = Precision(cfg.amp, cfg.channels_last, self.device, notify=dist.is_main())
        self.model = self.precision.model(model.to(self.device))  # attacks, CAMs, eval, checkpoints
        self.net = dist.wrap(self.model, self.device)  # the training step's forward: DDP when world > 1
        self.optimizer = self._optimizer()
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, list(cfg.lr_milestones), cfg.lr_gamma)
        self.defense = get_defense(cfg.defense)
        # the attacks' network: auto is resolved here, by timing the candidates on this model and batch shape
        self.attack_timings: dict[str, float] = {}  # seconds per attack step of each candidate; {} unmeasured
        self.attack_net = attack_view.build(self.model, self._resolve_attack_path())
        self.attack_path = attack_view.path_of(self.attack_net)  # plain where PART_ATTACK_FAST=0 or nothing folds
        self.cfg = cfg = cfg.replace(attack_path=self.attack_path)  # what the run attacks with, saved resolved
        self.mask_cache: CamCache | None = None
        self.oracle = cfg.recipe in MASK_RECIPES  # the budget follows each sample's exact object mask, not a CAM
        if self.oracle and cfg.part:
            self.object_masks(self.train_set, torch.arange(min(1, len(self.train_set))))  # refused now, not after burn-in
        self.board: EventWriter | None = None  # the run's TensorBoard events, on the writing rank
        self.values = values_at(cfg, 1)  # eps, eps_low, tau, threshold of the epoch being trained (schedules)
        self.eval_eps = DATASETS[cfg.dataset].default_eps
        self.meta = {"model": cfg.model, "dataset": cfg.dataset, "num_classes": ds.num_classes,
                     "in_channels": ds.in_channels, "image_size": ds.image_size, "classes": list(ds.classes)}

    def _optimizer(self) -> torch.optim.Optimizer:
        cfg, params = self.cfg, self.model.parameters()
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    # -- the attack-time network --
    def _resolve_attack_path(self) -> str:
        """cfg.attack_path, auto resolved to the candidate whose attack step is fastest (rank 0's choice
        under DDP, so every rank attacks with the same network)."""
        x = self.train_set.get_batch(torch.arange(1))[0]
        shape = (-(-self.cfg.batch_size // self.world), *x.shape[1:])  # this rank's part of a batch
        path, self.attack_timings = attack_view.choose(self.model, shape, self.train_set.num_classes,
                                                       self.cfg.attack_path, autocast=self.precision.autocast)
        if self.world > 1:
            index = attack_view.PATHS.index(path) if dist.is_main() else 0
            path = attack_view.PATHS[int(dist.all_reduce_sum([index])[0])]
        return path

    def attack_model(self, model: torch.nn.Module | None = None) -> torch.nn.Module:
        """The network attacks and CAM refreshes run: the attack view of the current weights (refreshed
        after every optimizer step: it copies whatever changed), or the model itself on the plain path.
        `model`: another model (older weights), given its own view on the same path."""
        if model is not None:
            return attack_view.build(model, self.attack_path)
        if isinstance(self.attack_net, attack_view.AttackView):
            self.attack_net.sync()
        return self.attack_net

    # -- CAMs and eps-maps --
    def cams(self, x: torch.Tensor, y: torch.Tensor, model: torch.nn.Module | None = None) -> torch.Tensor:
        cfg = self.cfg
        targets = y if cfg.cam_target == "label" else None
        # the library's methods hand maps through NumPy, which has no bfloat16
        native = set(cfg.cam_methods) <= set(NATIVE_METHODS)
        with self.precision.autocast() if native else contextlib.nullcontext():
            cams = compute_cam(self.model if model is None else model, x, targets, list(cfg.cam_methods), weights=cfg.cam_weights or None)
        return cams.float()

    def eps_map(self, cams: torch.Tensor) -> torch.Tensor:
        """The budgets from importance maps [B,H,W]: CAMs, or the object masks under the oracle recipe."""
        cfg = self.cfg
        options = {k: self.values.get(k, getattr(cfg, k)) for k in recipe_options(cfg.recipe)}
        return eps_map(None if self.oracle else cams, eps=self.values["eps"], eps_low=self.values["eps_low"],
                       recipe=cfg.recipe, channels=self.train_set.in_channels,
                       object_mask=cams if self.oracle else None, **options)

    def object_masks(self, dataset, idx: torch.Tensor) -> torch.Tensor:
        """[B,H,W] float 0/1: the exact object masks of samples idx, the oracle recipe's importance maps."""
        masks = object_masks(dataset, idx)
        if masks is None:
            from part.data.datasets import mask_dataset_names

            raise ValueError(f"recipe '{self.cfg.recipe}' needs each sample's exact object mask and dataset "
                             f"'{self.cfg.dataset}' gives none; accepted datasets: {', '.join(mask_dataset_names())}")
        return masks.float()

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
    def steps_per_epoch(self) -> int:
        full, rest = divmod(len(self.train_set), self.cfg.batch_size)
        return full + int(rest >= self.world)  # a last batch too small to give every rank an image is skipped

    def train_epoch(self, epoch: int, on_batch=None) -> dict:
        cfg = self.cfg
        self.values = values_at(cfg, epoch)
        reweight = self.pixel_reweighting(epoch)
        gen = torch.Generator().manual_seed(_epoch_seed(cfg, epoch))
        sums = dict.fromkeys(("loss", "adv_correct", "clean_correct", "n", "full", "ratio"), 0.0)
        n_steps = self.steps_per_epoch()
        self.net.train()
        shards = sharded_batches(self.train_set, cfg.batch_size, shuffle=True, seed=_epoch_seed(cfg, epoch),
                                 rank=self.rank, world=self.world)
        for step, (x, y, idx, offset, total) in enumerate(shards):
            if total < self.world:  # every rank must take part in every step: skipped on all alike
                continue
            x, y, eps = self._inputs(x, y, idx, (offset, total), gen, reweight, sums)
            _seed_random_start(_seed(cfg.seed, epoch, step), offset, x)
            self._step(x, y, eps, len(y) * self.world / total, sums)
            if on_batch:
                on_batch(step + 1, n_steps)
        sums = dict(zip(sums, dist.all_reduce_sum(list(sums.values()))))
        n = max(sums["n"], 1)
        return {"train_loss": sums["loss"] / n, "train_adv_acc": sums["adv_correct"] / n,
                "train_clean_acc": sums["clean_correct"] / n if self.defense.needs_clean_logits else None,
                "full_eps_fraction": sums["full"] / n if reweight else None,
                "mean_eps_ratio": sums["ratio"] / n if reweight else None}

    def _inputs(self, x, y, idx, shard, gen, reweight, sums):
        """Augment (the cached CAM with its image), move to the device, and the budget of each pixel."""
        cfg = self.cfg
        if self.oracle:  # the dataset's masks by index, cropped and flipped below with their images
            cams = self.object_masks(self.train_set, idx) if reweight else None
        else:
            cams = self.mask_cache.lookup(idx) if reweight and cfg.mask_every > 0 else None
        if cfg.augment == "crop-flip":
            x, cams = random_crop_flip(x, cams, generator=gen, shard_of=shard)
        x, y = self.precision.inputs(x.to(self.device)), y.to(self.device)
        if not reweight:
            return x, y, self.values["eps"]
        cams = self.cams(x, y, self.attack_model()) if cams is None else cams.to(self.device)
        eps = self.eps_map(cams)
        stats = mask_stats(eps, self.values["eps"])
        sums["full"] += stats["full_eps_fraction"] * len(y)
        sums["ratio"] += stats["mean_eps_ratio"] * len(y)
        return x, y, eps

    def _step(self, x, y, eps, weight: float, sums: dict) -> None:
        """Attack, outer loss, update. weight = this rank's share of the global batch times the world."""
        with self.precision.autocast():
            x_adv = self._attack(x, y, eps)
            logits_adv = self.net(x_adv).float()
            logits_nat = self.net(x).float() if self.defense.needs_clean_logits else None
        loss = self.defense.loss(logits_nat, logits_adv, y, self.cfg.beta)
        self.optimizer.zero_grad(set_to_none=True)
        self.precision.step(loss * weight if self.world > 1 else loss, self.optimizer)
        sums["loss"] += loss.item() * len(y)
        sums["adv_correct"] += int((logits_adv.argmax(1) == y).sum())
        if logits_nat is not None:
            sums["clean_correct"] += int((logits_nat.argmax(1) == y).sum())
        sums["n"] += len(y)

    def _attack(self, x, y, eps) -> torch.Tensor:
        cfg, net = self.cfg, self.attack_model()
        if cfg.attack == "mma":
            return attacks.mma(net, x, y, eps=eps, step_size=cfg.step_size, steps=cfg.attack_steps)
        return attacks.pgd(net, x, y, eps=eps, step_size=cfg.step_size, steps=cfg.attack_steps,
                           loss=self.defense.attack_loss)

    # -- evaluation and probes --
    def evaluate(self) -> dict:
        """Clean and PGD accuracy on the fixed evaluation subset, scalar eps, step eps/4; ranks split it."""
        clean = robust = n = 0
        shards = sharded_batches(self.eval_set, 500, shuffle=False, rank=self.rank, world=self.world)
        for b, (x, y, _, offset, _) in enumerate(shards):
            if len(y) == 0:
                continue
            x, y = self.precision.inputs(x.to(self.device)), y.to(self.device)
            with torch.no_grad(), self.precision.autocast():
                clean += int((self.model.eval()(x).argmax(1) == y).sum())
            # a seed no training step uses, the same every epoch
            _seed_random_start(_seed(self.cfg.seed, 1 << 40, b), offset, x)
            with self.precision.autocast():
                x_adv = attacks.pgd(self.attack_model(), x, y, eps=self.eval_eps, step_size=self.eval_eps / 4,
                                    steps=self.cfg.eval_steps)
                with torch.no_grad():
                    robust += int((self.model(x_adv).argmax(1) == y).sum())
            n += len(y)
        clean, robust, n = (int(v) for v in dist.all_reduce_sum([clean, robust, n]))
        return {"test_clean_acc": clean / max(n, 1), "test_pgd_acc": robust / max(n, 1), "eval_n": n,
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
        maps = self.object_masks(self.test_set, inputs["index"]).to(self.device) if self.oracle else cams
        with torch.no_grad(), self.precision.autocast():
            probs = torch.softmax(self.model.eval()(x).float(), 1)
        return {"cam": cams.cpu().half(), "eps_map": self.eps_map(maps).expand(-1, x.shape[1], -1, -1).cpu().half(),
                "pred": probs.argmax(1).cpu(), "probs": probs.cpu().half()}


def _restore(trainer: Trainer) -> int:
    """Load the newest complete epoch (checkpoint + optimiser state); returns it, or 0.

    Every rank reads the run folder itself: under several nodes it must be on shared storage.
    """
    state = trainer.run.load_train_state()
    if state is None:
        return 0
    epoch = int(state["epoch"])
    trainer.model.load_state_dict(trainer.run.load_checkpoint(epoch)["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scheduler.load_state_dict(state["scheduler"])
    trainer.precision.load_state(state.get("scaler"))
    if dist.is_main():
        trainer.run.truncate_metrics(epoch)
    return epoch


def _fit_epoch(trainer: Trainer, epoch: int, probe_inputs: dict | None, status: Status) -> dict:
    cfg, run = trainer.cfg, trainer.run
    torch.manual_seed(_epoch_seed(cfg, epoch))
    phase = "part" if trainer.pixel_reweighting(epoch) else ("burn-in" if cfg.part else "train")
    refresh_s = masks_for(trainer, epoch, status)
    n_batches = trainer.steps_per_epoch()
    show = trainer.progress and dist.is_main()
    bar = tqdm(total=n_batches, desc=f"epoch {epoch}/{cfg.epochs} {phase}", leave=True, disable=not show)
    log = not trainer.progress and dist.is_main()  # no bar (a job's log file): a plain line per epoch instead
    if log:
        print(f"epoch {epoch}/{cfg.epochs} {phase}: {n_batches} batch{'' if n_batches == 1 else 'es'}", flush=True)

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
    row = {"epoch": epoch, "phase": phase, "lr": lr, **{k: trainer.values[k] for k in scheduled(cfg)}, **row,
           **trainer.evaluate(),
           "mask_refresh_s": refresh_s, "epoch_s": epoch_s, "eval_s": time.time() - t1}
    bar.set_postfix(clean=f"{row['test_clean_acc']:.3f}", pgd=f"{row['test_pgd_acc']:.3f}")
    bar.close()
    if log:
        print(f"epoch {epoch}/{cfg.epochs} {phase}: train loss {row['train_loss']:.4f}, test clean "
              f"{row['test_clean_acc']:.2%}, {row['eval_attack']} {row['test_pgd_acc']:.2%} "
              f"({epoch_s:.1f} s + eval {row['eval_s']:.1f} s)", flush=True)
    if dist.is_main():  # the weights are the same on every rank; one writer
        probes = trainer.probe(probe_inputs)
        run.save_probes(epoch, probes)
        run.append_metrics(row)
        run.save_checkpoint(epoch, trainer.model.state_dict(), cfg.to_dict(), trainer.meta)
        run.save_train_state({"epoch": epoch, "optimizer": trainer.optimizer.state_dict(),
                              "scheduler": trainer.scheduler.state_dict(), "scaler": trainer.precision.state()})
        if trainer.board is not None:
            trainer.board.add(epoch, epoch_values(row, probes, trainer.values["eps"]))
    return row


def train(cfg: TrainConfig | None, out: str | Path, *, resume: bool = False, progress: bool = False) -> RunDir:
    """Train into the run folder `out`, or (resume=True) continue it from its newest complete epoch.

    Under torchrun every rank calls this with the same arguments; rank 0 writes the run folder.
    """
    run = RunDir(out)
    if resume:  # a config saved before `amp` / `attack_path` existed trained in float32 / on the plain path
        cfg = TrainConfig.from_dict({"amp": "off", "attack_path": "plain", **run.config()})
    elif run.exists():  # every rank checks before rank 0 writes anything
        raise FileExistsError(f"{run.path} already holds a run; continue it with `part resume {run.path}` or choose another --out")
    created = dist.setup(resolve_device(cfg.device))
    try:
        dist.barrier()
        if not resume:  # the config records the world it ran in and the precision it trains in
            cfg = cfg.replace(nproc=dist.world(), amp=resolve_amp(cfg.amp, dist.local_device(resolve_device(cfg.device))))
            if dist.is_main():
                run.write_config(cfg.to_dict())
        trainer = Trainer(cfg, run, progress=progress)
        if not resume and dist.is_main() and trainer.cfg != cfg:  # ... and the attack path the trainer took
            run.write_config(trainer.cfg.to_dict())
        return _train(trainer, resume)
    finally:
        if created:
            dist.teardown()


def _train(trainer: Trainer, resume: bool) -> RunDir:
    cfg, run, main = trainer.cfg, trainer.run, dist.is_main()
    start = _restore(trainer) if resume else 0
    probe_inputs = None
    if main:
        if start == 0 or not run.has_probe_inputs():
            run.save_probe_inputs(trainer.probe_inputs())
        probe_inputs = run.load_probe_inputs()
    status = Status(run, cfg.epochs, start, enabled=main)
    if main:
        run.write_status(precision=trainer.precision.name, attack_path=trainer.attack_path,
                         **({"attack_timings_s": trainer.attack_timings} if trainer.attack_timings else {}))
        trainer.board = EventWriter(run.tensorboard_dir)
    status.update(start + 1, 0, 1, "starting", force=True)
    watch = StopWatch(run)
    try:
        for epoch in range(start + 1, cfg.epochs + 1):
            _fit_epoch(trainer, epoch, probe_inputs, status)
            if epoch < cfg.epochs and watch.due():  # the epoch's checkpoint is written: resumable from here
                message = f"stopped after epoch {epoch} as asked ({run.stop_request() or 'SIGUSR1'}); resume with `part resume`"
                if main:
                    run.write_status(state="interrupted", message=message)
                watch.honoured()
                raise StoppedForLimit(message)
    except StoppedForLimit:
        raise
    except KeyboardInterrupt:
        if main:
            run.write_status(state="interrupted", message="stopped by the user; resume with `part resume`")
        raise
    except BaseException as err:
        if main:
            run.write_status(state="failed", message=f"{type(err).__name__}: {err}")
        raise
    finally:
        watch.close()
    if main:
        run.write_status(state="completed", phase="done", epoch=cfg.epochs, progress=1.0, eta_s=0)
    return run
