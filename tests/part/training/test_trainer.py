"""Training loop: run folder contents, mask alignment under augmentation, resume equivalence."""

import torch
import pytest

import part.training.trainer as train_mod
from part.training.config import preset
from part.training.cam_cache import CamCache
from part.runs import RunDir, load_model, load_torch
from part.training.trainer import Trainer, train

TIMING = ("mask_refresh_s", "epoch_s", "eval_s")


def tiny(**overrides):
    base = dict(subset=192, eval_n=64, batch_size=64, probe_count=4, eval_steps=2, attack_steps=2,
                epochs=2, burn_in_epochs=1, mask_every=1, device="cpu")
    return preset("fmnist-part", **{**base, **overrides})


def test_two_epoch_run_writes_a_complete_run_folder(tmp_path):
    run = train(tiny(), tmp_path / "run")
    assert run.config()["part"] is True
    assert run.status()["state"] == "completed" and run.status()["progress"] == 1.0
    assert run.epochs() == [1, 2]
    rows = run.metrics()
    assert [r["phase"] for r in rows] == ["burn-in", "part"]
    assert rows[0]["full_eps_fraction"] is None and 0 < rows[1]["full_eps_fraction"] < 1
    assert rows[1]["mean_eps_ratio"] < 1 and rows[1]["mask_refresh_s"] > 0
    for r in rows:
        assert 0 <= r["test_clean_acc"] <= 1 and 0 <= r["test_pgd_acc"] <= r["test_clean_acc"] + 1e-9
    ckpt = torch.load(run.checkpoint_path(2), weights_only=True)
    assert ckpt["epoch"] == 2 and ckpt["config"]["recipe"] == "paper"
    model, _ = load_model(run.checkpoint_path(2))
    assert not model.training
    inputs, probes = run.load_probe_inputs(), run.load_probes(2)
    assert inputs["x"].shape == (4, 1, 28, 28) and inputs["y"].tolist() == [0, 1, 2, 3]
    assert probes["cam"].shape == (4, 28, 28) and probes["eps_map"].shape == (4, 1, 28, 28)
    values = torch.unique(probes["eps_map"].float())
    assert len(values) == 2 and torch.allclose(values, torch.tensor([0.0875, 0.1]), atol=1e-3)
    assert torch.allclose(probes["probs"].float().sum(1), torch.ones(4), atol=1e-2)


@pytest.mark.parametrize("method", ["attention-rollout", "gradcam"])
def test_a_tiny_vit_part_run_writes_a_complete_run_folder(tmp_path, method):
    """PART on a ViT, its budget from attention rollout or from GradCAM through the token reshape."""
    cfg = preset("fmnist-vit-part", **{**dict(subset=64, eval_n=32, batch_size=32, probe_count=2, eval_steps=1,
                                              attack_steps=1, epochs=2, burn_in_epochs=1, device="cpu"),
                                       "cam_methods": (method,)})
    run = train(cfg, tmp_path / "vit")
    assert run.status()["state"] == "completed" and run.epochs() == [1, 2]
    rows = run.metrics()
    assert [r["phase"] for r in rows] == ["burn-in", "part"] and 0 < rows[1]["full_eps_fraction"] < 1
    model, ckpt = load_model(run.checkpoint_path(2))
    assert ckpt["meta"]["model"] == "vit-tiny" and model.attention_names
    probes = run.load_probes(2)
    assert probes["cam"].shape == (2, 28, 28) and 0 <= float(probes["cam"].min()) <= float(probes["cam"].max()) <= 1
    assert run.load_mask_cache() is not None


def test_refusing_to_overwrite_a_run(tmp_path):
    train(tiny(epochs=1, burn_in_epochs=0), tmp_path / "run")
    with pytest.raises(FileExistsError, match="part resume"):
        train(tiny(epochs=1, burn_in_epochs=0), tmp_path / "run")


def test_lr_decay_is_counted_from_the_start_of_training(tmp_path):
    run = train(tiny(epochs=3, lr_milestones=(2,), burn_in_epochs=1), tmp_path / "run")
    assert [r["lr"] for r in run.metrics()] == pytest.approx([1e-3, 1e-3, 1e-4])


def test_cached_masks_stay_aligned_with_shuffled_augmented_images(tmp_path, monkeypatch):
    """The eps-map bounding each augmented image must be that very image's map (the official bug)."""
    trainer = Trainer(tiny(augment="crop-flip", burn_in_epochs=0), RunDir(tmp_path))
    # A CAM equal to the image itself is exactly equivariant to crop (zero padding) and flip.
    monkeypatch.setattr(trainer, "cams", lambda x, y, model=None: x[:, 0].clone())
    trainer.mask_cache = CamCache.build(trainer.train_set, trainer.cams, epoch=1)
    monkeypatch.setattr(trainer, "eps_map", lambda cams: cams[:, None])  # hand the CAM itself to the attack
    seen = []

    def record(x, y, eps):
        seen.append((x.clone(), eps.clone()))
        return x

    monkeypatch.setattr(trainer, "_attack", record)
    trainer.train_epoch(1)
    assert len(seen) == 3
    flipped = 0
    for x, cam in seen:  # the cache stores float16
        assert torch.equal(cam[:, 0], x[:, 0].half().float())
        flipped += int((x[:, 0, :, :4] == 0).all(dim=(1, 2)).sum())
    assert flipped > 0  # crops did shift images into the zero padding
    # a lookup by batch position (the official code) would not match
    x1, cam1 = seen[1]
    assert not torch.equal(cam1[:, 0], trainer.mask_cache.cams[64:128].float())


def _stop_at(epoch_to_stop):
    real = train_mod._fit_epoch

    def fit(trainer, epoch, *args):
        if epoch == epoch_to_stop:
            raise KeyboardInterrupt
        return real(trainer, epoch, *args)

    return fit


def _same_runs(a: RunDir, b: RunDir, epoch: int):
    wa, wb = a.load_checkpoint(epoch)["model"], b.load_checkpoint(epoch)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in TIMING} for r in rows]
    assert strip(a.metrics()) == strip(b.metrics())


@pytest.mark.parametrize("mask_every,stop,drop_cache", [(1, 2, False), (2, 3, True)])
def test_resume_gives_the_same_result_as_never_stopping(tmp_path, monkeypatch, mask_every, stop, drop_cache):
    cfg = tiny(epochs=3, mask_every=mask_every)
    straight = train(cfg, tmp_path / "straight")
    with monkeypatch.context() as m:
        m.setattr(train_mod, "_fit_epoch", _stop_at(stop))
        with pytest.raises(KeyboardInterrupt):
            train(cfg, tmp_path / "stopped")
    stopped = RunDir(tmp_path / "stopped")
    assert stopped.status()["state"] == "interrupted" and stopped.epochs() == list(range(1, stop))
    if drop_cache:  # resumed mid-interval without the cache: it is rebuilt from the weights it came from
        (stopped.path / "mask_cache.pt").unlink()
    train(None, stopped.path, resume=True)
    assert stopped.status()["state"] == "completed"
    _same_runs(straight, stopped, 3)


def test_trades_and_mart_with_per_batch_masks_train(tmp_path):
    for defense in ("trades", "mart"):
        run = train(tiny(defense=defense, mask_every=0, epochs=2, cam_methods=("gradcam", "layercam")), tmp_path / defense)
        rows = run.metrics()
        assert rows[1]["phase"] == "part" and rows[1]["train_clean_acc"] is not None
        assert rows[1]["mask_refresh_s"] == 0.0 and not (run.path / "mask_cache.pt").exists()


def test_mask_cache_file_is_keyed_by_index(tmp_path):
    run = train(tiny(), tmp_path / "run")
    cache = load_torch(run.path / "mask_cache.pt")
    assert cache["epoch"] == 2 and cache["cams"].shape == (192, 28, 28)


def tiny_clutter(**overrides):
    base = dict(subset=128, eval_n=32, batch_size=64, probe_count=3, eval_steps=1, attack_steps=1,
                epochs=1, burn_in_epochs=0, device="cpu", recipe="oracle", amp="off")
    return preset("fmnist-clutter-part", **{**base, **overrides})


def test_the_oracle_recipe_bounds_each_image_by_its_own_object_mask(tmp_path, monkeypatch):
    """No CAM sets the budget: full eps exactly on the dataset's mask of that very image, eps_low elsewhere."""
    from part.data.datasets import object_masks

    trainer = Trainer(tiny_clutter(), RunDir(tmp_path))
    asked, seen = [], []
    real = trainer.object_masks

    def masks(dataset, idx):
        asked.append(object_masks(dataset, idx))
        return real(dataset, idx)

    monkeypatch.setattr(trainer, "object_masks", masks)
    monkeypatch.setattr(trainer, "cams", lambda *a, **k: pytest.fail("the oracle recipe computed a CAM"))
    monkeypatch.setattr(trainer, "_attack", lambda x, y, eps: seen.append(eps.clone()) or x)
    row = trainer.train_epoch(1)
    assert len(seen) == len(asked) == 2
    for eps, mask in zip(seen, asked):
        assert torch.equal(eps[:, 0], torch.where(mask, 0.1, 0.0875).float())
        assert 0.05 < float(mask.float().mean()) < 0.6  # a garment, not the whole canvas nor nothing
    fraction = float(torch.cat(asked).float().mean())
    assert row["full_eps_fraction"] == pytest.approx(fraction, abs=1e-6)


def test_oracle_masks_are_cropped_and_flipped_with_their_images(tmp_path, monkeypatch):
    trainer = Trainer(tiny_clutter(augment="crop-flip"), RunDir(tmp_path))
    # masks that are a function of the image itself, so crop and flip must keep them aligned pixel for pixel
    monkeypatch.setattr(train_mod, "object_masks", lambda ds, idx: ds.get_batch(idx)[0][:, 0] > 0.5)
    seen = []
    monkeypatch.setattr(trainer, "_attack", lambda x, y, eps: seen.append((x.clone(), eps.clone())) or x)
    trainer.train_epoch(1)
    shifted = 0
    for x, eps in seen:
        assert torch.equal(eps[:, 0], torch.where(x[:, 0] > 0.5, 0.1, 0.0875))
        shifted += int((x[:, 0, :, :4] == 0).all(dim=(1, 2)).sum())
    assert seen and shifted > 0


def test_an_oracle_run_stores_mask_budgets_in_its_probes_and_no_cam_cache(tmp_path):
    from part.data.datasets import load_dataset, object_masks

    run = train(tiny_clutter(epochs=2, burn_in_epochs=1), tmp_path / "oracle")
    rows = run.metrics()
    assert [r["phase"] for r in rows] == ["burn-in", "part"] and rows[1]["mask_refresh_s"] == 0.0
    assert 0 < rows[1]["full_eps_fraction"] < 0.6 and not (run.path / "mask_cache.pt").exists()
    inputs, probes = run.load_probe_inputs(), run.load_probes(2)
    masks = object_masks(load_dataset("fashion-mnist-clutter", "test"), inputs["index"])
    assert torch.equal(probes["eps_map"][:, 0].float() > 0.095, masks)  # the budget is the object, exactly
    assert probes["cam"].shape == masks.shape  # and the model's own CAM is kept beside it for Compare


def test_the_oracle_recipe_is_refused_at_run_time_without_object_masks(tmp_path):
    """A config that skipped validation still stops before the first epoch, naming the datasets with masks."""
    from part.training.config import TrainConfig

    cfg = TrainConfig(**{**tiny().to_dict(), "recipe": "oracle", "cam_methods": ("gradcam",), "lr_milestones": (8,)})
    with pytest.raises(ValueError, match="dataset 'fashion-mnist' gives none; accepted datasets for it: fashion-mnist-clutter"):
        Trainer(cfg, RunDir(tmp_path))
