"""Mixed precision on CPU: bf16 autocast keeps the attack's budget and box, amp=auto resolves from the
hardware and is recorded in the run folder, fp16 stays CUDA-only, evaluation is float32 unless asked.

Nothing here depends on this CPU computing bfloat16 natively: autocast runs (emulated) on any CPU, and
the capability check is replaced where a test needs one answer or the other.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

import models
import part.attacks.projected_gradient as attacks_mod
import part.precision as precision
from part import cli
from part.attacks import box, budget, mma, pgd
from part.training.config import TrainConfig, preset
from part.precision import AutocastForward, Precision, cpu_bf16_flags, resolve_amp
from part.runs import RunDir
from part.training.trainer import Trainer, train
from tests.part.evaluation.eval_fixtures import needs_fashion

CPU = torch.device("cpu")
BF16 = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731


@pytest.fixture
def native(monkeypatch):
    """Make the CPU say it has (True) or lacks (False) native bfloat16."""
    def set_(has: bool) -> None:
        monkeypatch.setattr(precision, "cpu_bf16_flags", lambda *a: ["avx512_bf16"] if has else [])
    return set_


# --- the budget and the box under bf16 autocast ----------------------------------------------------

@st.composite
def budgets(draw):
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    b = draw(st.integers(1, 4))
    x = torch.rand(b, 1, 28, 28, generator=g)
    x[:, :, :4] = draw(st.sampled_from([0.0, 1.0]))  # pixels at the edge of the box
    top = draw(st.floats(0.0, 0.3))
    eps = draw(st.sampled_from([
        top,  # AT's scalar budget
        torch.rand(b, 1, 28, 28, generator=g) * top,  # PART's per-pixel eps-map
        torch.where(torch.rand(b, 1, 28, 28, generator=g) > 0.5, top, 0.875 * top),  # two-valued map
    ]))
    return x, torch.randint(0, 10, (b,), generator=g), eps


@settings(max_examples=25, deadline=None)
@given(case=budgets(), attack=st.sampled_from(["pgd-ce", "pgd-kl", "mma"]))
def test_bf16_autocast_keeps_the_budget_per_pixel_and_the_box(case, attack):
    x, y, eps = case
    torch.manual_seed(0)
    small_cnn = models.create_model("small-cnn")
    seen = []
    hook = small_cnn.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    with BF16():
        if attack == "mma":
            x_adv = mma(small_cnn, x, y, eps=eps, step_size=0.05, steps=3, k=2)
        else:
            x_adv = pgd(small_cnn, x, y, eps=eps, step_size=0.05, steps=3, loss=attack[4:])
    hook.remove()
    assert set(seen) == {torch.bfloat16}  # the model really ran in bf16
    assert x_adv.dtype == torch.float32
    b = budget(eps, x)
    lo, hi = box(x, b)
    assert bool(((x_adv >= lo) & (x_adv <= hi)).all())  # the float32 projection, exactly
    assert bool(((x_adv - x).abs() <= b + 1e-6).all())  # |x_adv - x| <= eps at every pixel
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    if float(b.max()) == 0.0:
        assert torch.equal(x_adv, x)


def test_losses_see_float32_logits_and_the_input_gradient_is_float32(small_cnn, fmnist_batch, monkeypatch):
    x, y = fmnist_batch
    dtypes, real_ce, real_grad = [], F.cross_entropy, attacks_mod._input_grad
    monkeypatch.setattr(attacks_mod.F, "cross_entropy", lambda z, *a, **k: dtypes.append(z.dtype) or real_ce(z, *a, **k))
    grads = []
    monkeypatch.setattr(attacks_mod, "_input_grad", lambda o, xa: grads.append(real_grad(o, xa)) or grads[-1])
    with BF16():
        pgd(small_cnn, x, y, eps=0.1, step_size=0.025, steps=2)
    assert dtypes == [torch.float32, torch.float32]
    assert [g.dtype for g in grads] == [torch.float32, torch.float32] and all(g.abs().sum() > 0 for g in grads)


def test_a_bf16_training_step_runs_the_model_in_bf16_and_keeps_weights_float32(tmp_path):
    cfg = preset("fmnist-part", subset=64, batch_size=32, eval_n=8, attack_steps=2, burn_in_epochs=0,
                 mask_every=0, probe_count=2, device="cpu", amp="bf16")
    trainer = Trainer(cfg, RunDir(tmp_path))
    seen = []
    trainer.model.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    before = [p.detach().clone() for p in trainer.model.parameters()]
    row = trainer.train_epoch(1)
    assert trainer.precision.dtype is torch.bfloat16 and set(seen) == {torch.bfloat16}
    assert torch.isfinite(torch.tensor(row["train_loss"])) and 0 < row["mean_eps_ratio"] < 1
    params = list(trainer.model.parameters())
    assert all(p.dtype == torch.float32 for p in params)
    assert any(not torch.equal(p, q) for p, q in zip(params, before))
    assert all(s.dtype == torch.float32 for s in trainer.optimizer.state_dict()["state"][0].values()
               if torch.is_tensor(s) and s.dim() > 0)


# --- amp=auto: resolved from the hardware, recorded, reused on resume ------------------------------

def test_cpu_bf16_flags_are_read_from_cpuinfo(tmp_path, monkeypatch):
    monkeypatch.delenv("PART_CPU_BF16", raising=False)  # tests/conftest.py sets it to 0
    x86, arm, old = tmp_path / "x86", tmp_path / "arm", tmp_path / "old"
    x86.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 avx512_vnni\n\nprocessor\t: 1\n"
                   "flags\t\t: fpu sse avx512f avx512_bf16 avx512_vnni\n")
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n")
    old.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512bw\n")
    assert cpu_bf16_flags(x86) == ["avx512_bf16"]
    assert cpu_bf16_flags(arm) == ["bf16"]
    assert cpu_bf16_flags(old) == [] and cpu_bf16_flags(tmp_path / "missing") == []


def test_part_cpu_bf16_0_makes_auto_choose_float32(tmp_path, monkeypatch):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16\n")
    monkeypatch.setenv("PART_CPU_BF16", "1")
    assert cpu_bf16_flags(x86) == ["avx512_bf16"]
    monkeypatch.setenv("PART_CPU_BF16", "0")
    assert cpu_bf16_flags(x86) == [] and resolve_amp("auto", CPU) == "off"


def test_auto_resolves_to_bf16_only_where_the_cpu_has_it(native):
    native(True)
    assert resolve_amp("auto", CPU) == "bf16" and Precision("auto", False, CPU).dtype is torch.bfloat16
    native(False)
    assert resolve_amp("auto", CPU) == "off" and Precision("auto", False, CPU).dtype is None
    assert resolve_amp("off", CPU) == "off" and resolve_amp("bf16", CPU) == "bf16"  # asked for: kept


def test_fp16_is_cuda_only_and_unknown_values_are_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match="amp 'fp16' needs CUDA"):
        Precision("fp16", False, CPU)
    with pytest.raises(ValueError, match="accepted: auto, off, bf16, fp16"):
        resolve_amp("fp8", CPU)
    with pytest.raises(ValueError, match="amp 'fp8' is not accepted"):
        preset("fmnist-at", amp="fp8")
    code = cli.main(["train", "--preset", "fmnist-at", "--set", "amp=fp16", "--set", "device=cpu",
                     "--out", str(tmp_path / "r"), "--no-progress"])
    assert code == 2 and "needs CUDA" in capsys.readouterr().err and not (tmp_path / "r" / "config.json").exists()


def test_bf16_without_native_support_says_it_is_emulated_and_channels_last_is_cuda_only(native, capsys):
    native(False)
    p = Precision("bf16", True, CPU)
    out = capsys.readouterr().out
    assert "emulated" in out and "channels_last applies on CUDA only" in out
    assert p.dtype is torch.bfloat16 and not p.channels_last and p.scaler is None and p.name == "bfloat16"
    x = torch.rand(2, 3, 4, 4)
    assert p.inputs(x) is x
    native(True)
    Precision("bf16", False, CPU)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("has_bf16,amp,name", [(True, "bf16", "bfloat16"), (False, "off", "float32")])
def test_the_run_folder_records_the_resolved_precision(tmp_path, native, has_bf16, amp, name):
    native(has_bf16)
    cfg = preset("fmnist-at", subset=64, batch_size=64, eval_n=8, eval_steps=1, attack_steps=1, probe_count=2,
                 epochs=1, device="cpu", amp="auto")
    run = train(cfg, tmp_path / "run")
    assert run.config()["amp"] == amp and run.status()["precision"] == name
    assert torch.load(run.checkpoint_path(1), weights_only=True)["config"]["amp"] == amp
    native(not has_bf16)  # another machine: the recorded precision still decides
    assert Trainer(TrainConfig.from_dict(run.config()), run).precision.name == name


def test_configs_saved_before_auto_existed_still_load():
    old = preset("fmnist-at").to_dict()
    for amp in ("off", "bf16", "fp16"):
        assert TrainConfig.from_dict({**old, "amp": amp}).amp == amp


def test_auto_is_the_training_default_and_evaluation_is_float32():
    assert TrainConfig().amp == "auto" and all(preset(name).amp == "auto" for name in ("fmnist-part", "cifar10-at"))
    assert cli.eval_amp(cli._build_parser().parse_args(["eval", "--run", "r"])) == "off"
    assert cli.eval_amp(cli._build_parser().parse_args(["eval", "--run", "r", "--fast"])) == "auto"


def test_a_run_saved_before_amp_existed_resumes_in_float32(tmp_path, native):
    native(False)
    cfg = preset("fmnist-at", subset=64, batch_size=64, eval_n=8, eval_steps=1, attack_steps=1, probe_count=2,
                 epochs=2, device="cpu")
    run = train(cfg.replace(epochs=1), tmp_path / "run")
    config = run.config()
    del config["amp"]  # as written before the field existed
    run.write_config({**config, "epochs": 2})
    native(True)  # where amp=auto, the default, would now pick bf16
    train(None, run.path, resume=True)
    assert run.status()["precision"] == "float32" and run.epochs() == [1, 2]


# --- evaluation stays float32 unless asked -----------------------------------------------------------

def test_autocast_forward_runs_in_bf16_and_returns_float32(small_cnn, fmnist_batch):
    x, _ = fmnist_batch
    wrapped = AutocastForward(small_cnn.eval(), "bf16", CPU)
    out = wrapped(x)
    assert out.dtype == torch.float32
    assert not torch.equal(out, small_cnn(x)) and torch.allclose(out, small_cnn(x), atol=0.1)


@needs_fashion
def test_eval_is_float32_by_default_and_records_amp_when_asked(tmp_path, capsys):
    from models import create_model

    torch.manual_seed(0)
    run = RunDir(tmp_path / "run")
    run.write_config({"dataset": "fashion-mnist", "defense": "at", "part": False, "seed": 0, "eps": 0.1})
    meta = {"model": "small-cnn", "dataset": "fashion-mnist", "num_classes": 10, "in_channels": 1,
            "image_size": 28, "classes": [str(i) for i in range(10)]}
    run.save_checkpoint(1, create_model("small-cnn").state_dict(), run.config(), meta)
    base = ["eval", "--run", str(run.path), "--attacks", "clean,pgd2", "--n", "8", "--no-progress"]
    out_json = run.path / "eval" / "epoch_0001" / "eval.json"
    assert cli.main(base) == 0
    assert "amp" not in json.loads(out_json.read_text())
    capsys.readouterr()
    float32 = out_json.read_bytes()
    assert cli.main(base + ["--amp", "bf16"]) == 0  # float32 results are not taken for bf16 ones
    bf16_json = run.path / "eval" / "epoch_0001-n8-bf16" / "eval.json"  # nor replaced by them: a folder of its own
    assert "kept" not in capsys.readouterr().out and json.loads(bf16_json.read_text())["amp"] == "bf16"
    assert out_json.read_bytes() == float32
    assert cli.main(base) == 0  # nor the other way round: the float32 evaluation is the one reused
    assert capsys.readouterr().out.count("kept") == 2 and "amp" not in json.loads(out_json.read_text())


# --- `part bench`: float32 against bf16 in one process ------------------------------------------------

def test_bench_times_both_precisions_and_reports_their_ratios(monkeypatch):
    from part.training import bench
    built = []

    class Recording(bench.Trainer):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            built.append(self.precision.name)

    monkeypatch.setattr(bench, "Trainer", Recording)
    out = bench.bench_training(64, repeats=1, amps=("off", "bf16"))
    assert built == ["float32", "bfloat16"]
    assert out["bf16_speedup_at"] == pytest.approx(out["at_epoch_s"] / out["bf16_at_epoch_s"])
    assert out["bf16_speedup_part"] == pytest.approx((out["part_epoch_s"] + out["mask_refresh_s"])
                                                     / (out["bf16_part_epoch_s"] + out["bf16_mask_refresh_s"]))
    assert out["bf16_speedup_part_cpu"] == pytest.approx((out["part_epoch_cpu_s"] + out["mask_refresh_cpu_s"])
                                                         / (out["bf16_part_epoch_cpu_s"] + out["bf16_mask_refresh_cpu_s"]))
    assert min(out[k] for k in ("at_epoch_s", "part_epoch_s", "bf16_at_epoch_s", "bf16_mask_refresh_s",
                                "at_epoch_cpu_s", "bf16_part_epoch_cpu_s")) > 0
    assert "bf16_speedup_at" not in bench.bench_training(64, repeats=1, amps=("off",))


def test_bench_refuses_precisions_it_cannot_time(capsys):
    assert cli.main(["bench", "--amp", "off,fp16"]) == 2
    assert "accepted precisions are off and bf16" in capsys.readouterr().err


def test_bench_config_takes_each_models_dataset_at_its_input_size():
    from part.training.bench import bench_config

    expected = {"small-cnn": ("fashion-mnist", 0), "small-cnn-4": ("fashion-mnist-clutter", 0),
                "vit-tiny": ("fashion-mnist", 0), "resnet18": ("cifar10", 0), "preact-resnet18": ("cifar10", 0),
                "wrn-34-10": ("cifar10", 64)}
    for model, (dataset, size) in expected.items():
        cfg = bench_config(model, 32)
        assert (cfg.model, cfg.dataset, cfg.image_size, cfg.subset) == (model, dataset, size, 32)
        assert cfg.part and cfg.burn_in_epochs == 1 and cfg.mask_every == 1
    assert bench_config("vit-tiny", 8).cam_methods == ("attention-rollout",)


def test_bench_times_the_fast_path_of_a_model_on_generated_images(monkeypatch, capsys, tmp_path):
    """resnet18 without CIFAR-10 installed: generated images of its shape; the JSON line names the fast path."""
    from part.attacks import attack_view

    monkeypatch.delenv(attack_view.ENV, raising=False)
    monkeypatch.setenv("PART_CIFAR10_DIR", str(tmp_path / "none"))
    assert cli.main(["bench", "--model", "resnet18", "--n", "8", "--batch-size", "4", "--attack-steps", "1",
                     "--repeats", "1", "--cam-batch", "0", "--amp", "off"]) == 0
    out = capsys.readouterr().out
    assert "CIFAR-10 is not installed: timing on 8 generated images" in out
    line = json.loads(out.strip().splitlines()[-1])
    assert line["model"] == "resnet18" and line["images"] == 8
    assert line["fast_path"] in attack_view.PATHS and line["fast_amp"] == "off"
    assert line["fast_speedup_part"] > 0 and line["fast_speedup_at"] > 0 and "bf16_speedup_at" not in line
    assert "fast path over float32 (wall clock)" in out


def test_bench_refuses_an_unknown_model(capsys):
    assert cli.main(["bench", "--model", "resnet1000"]) == 2
    assert "accepted: small-cnn" in capsys.readouterr().err
