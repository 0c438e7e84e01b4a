"""Training with the attack-time network (part/attacks/attack_view.py): the same run as with the model
itself, chosen by timing at the start and recorded in config.json and status.json, pinned by the config,
and forced plain by PART_ATTACK_FAST=0."""

import pytest
import torch

import part.training.trainer as train_mod
from part.attacks import attack_view
from part.runs import RunDir
from part.training.trainer import Trainer, train
from tests.part.training.test_trainer import TIMING, _stop_at, tiny


@pytest.fixture
def fast_allowed(monkeypatch):
    monkeypatch.delenv(attack_view.ENV, raising=False)


def _curve(run: RunDir) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in run.metrics()]


@pytest.mark.parametrize("path", ["folded", "folded-cl"])
def test_a_folded_run_gives_the_plain_runs_loss_curve(tmp_path, fast_allowed, path):
    """Two tiny PART runs in float32 (burn-in, then two PART epochs with refreshed CAM caches)."""
    cfg = tiny(epochs=3, amp="off")
    plain = train(cfg.replace(attack_path="plain"), tmp_path / "plain")
    fast = train(cfg.replace(attack_path=path), tmp_path / path)
    assert fast.config()["attack_path"] == path and fast.status()["attack_path"] == path
    a, b = _curve(plain), _curve(fast)
    assert [r["phase"] for r in b] == ["burn-in", "part", "part"]
    for ra, rb in zip(a, b):
        assert rb["train_loss"] == pytest.approx(ra["train_loss"], rel=1e-4)
        for key in ("train_adv_acc", "test_clean_acc", "test_pgd_acc", "full_eps_fraction", "mean_eps_ratio"):
            assert rb[key] == pytest.approx(ra[key], abs=0.02), key
    wa, wb = plain.load_checkpoint(3)["model"], fast.load_checkpoint(3)["model"]
    assert max(float((wa[k].float() - wb[k].float()).abs().max()) for k in wa) < 1e-3
    ca, cb = plain.load_mask_cache()["cams"].float(), fast.load_mask_cache()["cams"].float()
    assert float((ca - cb).abs().max()) < 0.02  # float16 CAMs of nearly the same weights


def test_resuming_a_folded_run_gives_the_run_that_never_stopped(tmp_path, fast_allowed, monkeypatch):
    """The view is rebuilt from the loaded weights, also for the cache of a refresh due in the past."""
    cfg = tiny(epochs=3, mask_every=2, attack_path="folded-cl")
    straight = train(cfg, tmp_path / "straight")
    with monkeypatch.context() as m:
        m.setattr(train_mod, "_fit_epoch", _stop_at(3))
        with pytest.raises(KeyboardInterrupt):
            train(cfg, tmp_path / "stopped")
    stopped = RunDir(tmp_path / "stopped")
    (stopped.path / "mask_cache.pt").unlink()
    train(None, stopped.path, resume=True)
    wa, wb = straight.load_checkpoint(3)["model"], stopped.load_checkpoint(3)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert _curve(straight) == _curve(stopped)


def test_auto_is_timed_at_the_start_and_recorded(tmp_path, fast_allowed, monkeypatch):
    timings = {"plain": 0.03, "folded": 0.02, "folded-cl": 0.01}
    asked = []

    def fake_measure(model, shape, num_classes, **kw):
        asked.append((shape, num_classes))
        return timings

    monkeypatch.setattr(attack_view, "measure", fake_measure)
    run = train(tiny(epochs=1, burn_in_epochs=0), tmp_path / "run")
    assert asked == [((64, 1, 28, 28), 10)]  # the run's own batch and image shape
    assert run.config()["attack_path"] == "folded-cl"
    status = run.status()
    assert status["attack_path"] == "folded-cl" and status["attack_timings_s"] == timings
    # a resume keeps the recorded path and times nothing
    monkeypatch.setattr(attack_view, "measure", lambda *a, **k: pytest.fail("a resume is not timed again"))
    cfg = run.config()
    train(None, run.path, resume=True)
    assert run.config() == cfg


def test_zero_in_the_environment_trains_with_the_model_itself(tmp_path, monkeypatch):
    monkeypatch.setenv(attack_view.ENV, "0")
    monkeypatch.setattr(attack_view, "measure", lambda *a, **k: pytest.fail("nothing is timed"))
    run = train(tiny(epochs=1, burn_in_epochs=0), tmp_path / "run")
    assert run.config()["attack_path"] == "plain" and run.status()["attack_path"] == "plain"
    assert "attack_timings_s" not in run.status()
    trainer = Trainer(tiny(attack_path="folded"), RunDir(tmp_path / "other"))
    assert trainer.attack_model() is trainer.model and trainer.attack_path == "plain"


def test_a_run_from_before_the_field_resumes_on_the_plain_path(tmp_path, fast_allowed):
    run = train(tiny(epochs=1, burn_in_epochs=0, attack_path="folded"), tmp_path / "run")
    cfg = run.config()
    del cfg["attack_path"]
    run.write_config({**cfg, "epochs": 2})
    train(None, run.path, resume=True)
    assert run.status()["attack_path"] == "plain" and run.config().get("attack_path") is None


def test_per_batch_masks_and_library_cams_on_the_view(tmp_path, fast_allowed):
    """mask_every=0 (CAMs of every batch from the view) with a pytorch-grad-cam method (frozen weights)."""
    run = train(tiny(defense="trades", mask_every=0, epochs=2, attack_path="folded",
                     cam_methods=("gradcam", "gradcam-elementwise")), tmp_path / "run")
    rows = run.metrics()
    assert rows[1]["phase"] == "part" and 0 < rows[1]["full_eps_fraction"] < 1


def test_the_view_is_refreshed_after_every_optimizer_step(tmp_path, fast_allowed, monkeypatch):
    trainer = Trainer(tiny(attack_path="folded"), RunDir(tmp_path))
    checked = []
    real = trainer._attack

    def attack(x, y, eps):
        net = trainer.attack_model()
        with torch.no_grad():
            want = trainer.model.eval()(x)
            trainer.model.train()
            checked.append(float((net(x) - want).abs().max() / want.abs().max()))
        return real(x, y, eps)

    monkeypatch.setattr(trainer, "_attack", attack)
    trainer.train_epoch(1)
    assert len(checked) == 3 and max(checked) < 1e-5
