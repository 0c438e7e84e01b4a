"""Config: presets, key=value overrides, validation messages."""

import pytest

from part.training.config import PRESETS, TrainConfig, parse_number, parse_overrides, preset


def test_fractions_and_numbers():
    assert parse_number("8/255") == pytest.approx(8 / 255)
    assert parse_number("1e-3") == 1e-3
    assert parse_number("12", int) == 12
    with pytest.raises(ValueError, match="8/255"):
        parse_number("eight")
    with pytest.raises(ValueError, match="whole"):
        parse_number("1.5", int)


def test_overrides_are_typed():
    cfg = preset("fmnist-part", **parse_overrides(["eps=8/255", "eps_low=7/255", "part=false",
                                                    "cam-methods=gradcam,layercam", "lr_milestones=5,8"]))
    assert cfg.eps == pytest.approx(8 / 255) and cfg.part is False
    assert cfg.cam_methods == ("gradcam", "layercam") and cfg.lr_milestones == (5, 8)


@pytest.mark.parametrize("pairs,message", [
    (["foo=1"], "unknown setting foo; accepted: dataset"),
    (["eps=0.05", "eps_low=0.06"], "eps_low .* must not exceed eps"),
    (["eps=8"], "fraction of the pixel range"),
    (["defense=pgd"], "defense 'pgd' is not accepted; accepted: at, trades, mart"),
    (["recipe=magic"], "accepted: paper, reference, soft"),
    (["cam_methods=gradcam,nope"], "cam_methods 'nope'"),
    (["part=maybe"], "not a boolean"),
    (["epochs=0"], "epochs must be >= 1"),
    (["cam_weights=1,2"], "cam_weights has 2 values for 1"),
    (["dataset=mnist"], "accepted: fashion-mnist"),
    (["epochs=2"], r"burn_in_epochs \(3\) must be < epochs \(2\) for part=true, or every epoch is the plain AT "
                   r"burn-in; accepted: burn_in_epochs 0..1, or part=false"),
    (["epochs=4", "burn_in_epochs=4"], r"burn_in_epochs \(4\) must be < epochs \(4\)"),
    (["tau=0"], "tau must be > 0"),  # a temperature of 0 makes every soft eps-map flat
    (["threshold=-1"], "threshold must be >= 0"),
    (["eps=" + "1" + "0" * 400 + "/7"], "eps: .* has 403 characters"),
])
def test_bad_values_say_what_is_accepted(pairs, message):
    with pytest.raises(ValueError, match=message):
        preset("fmnist-part", **parse_overrides(pairs))


def test_burn_in_as_long_as_the_run_is_plain_training_and_only_part_refuses_it():
    assert preset("fmnist-part", epochs=2, burn_in_epochs=1).burn_in_epochs == 1
    assert preset("fmnist-part", epochs=1, burn_in_epochs=0).epochs == 1
    assert preset("fmnist-at", epochs=2).burn_in_epochs == 3  # not PART: the burn-in is never used
    with pytest.raises(ValueError, match="plain TRADES burn-in"):
        preset("fmnist-part-t", epochs=3)


def test_a_run_folder_trained_before_the_burn_in_rule_still_reads(tmp_path):
    from part.runs import RunDir

    old = {**preset("fmnist-part", epochs=5, burn_in_epochs=1).to_dict(), "epochs": 2, "burn_in_epochs": 3}
    RunDir(tmp_path).write_config(old)
    assert RunDir(tmp_path).config()["burn_in_epochs"] == 3  # listed and readable, not broken
    with pytest.raises(ValueError, match="burn_in_epochs"):
        TrainConfig.from_dict(old)  # but not started again as a new run


def test_the_makefile_training_commands_validate():
    """`make demo` (2 epochs, burn-in 1) and any other `part train` the Makefile runs build a valid config."""
    import shlex
    from pathlib import Path

    from part.cli import TRAIN_FLAGS, _build_parser

    lines = [line.split("part train", 1)[1] for line in (Path(__file__).parents[3] / "Makefile").read_text().splitlines()
             if "/part train " in line]
    assert lines, "the Makefile has no `part train` command"
    for line in lines:
        args = _build_parser().parse_args(["train", *shlex.split(line.split("$$(")[0] + "x")])
        overrides = {**parse_overrides(args.set), **{k: getattr(args, k) for k in TRAIN_FLAGS if getattr(args, k) is not None}}
        cfg = preset(args.preset, **overrides)
        assert not cfg.part or cfg.burn_in_epochs < cfg.epochs, line


def test_bad_pair_syntax():
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["eps"])


def test_every_preset_validates_and_paper_presets_follow_the_paper():
    for name in PRESETS:
        preset(name)
    c = preset("cifar10-part-t")
    assert (c.defense, c.part, c.model, c.optimizer, c.lr, c.batch_size) == ("trades", True, "resnet18", "sgd", 0.01, 128)
    assert (c.epochs, c.burn_in_epochs, c.lr_milestones, c.weight_decay) == (80, 20, (60,), 2e-4)
    assert c.eps == pytest.approx(8 / 255) and c.eps_low == pytest.approx(7 / 255) and c.step_size == pytest.approx(2 / 255)
    s = preset("svhn-mart")
    assert s.step_size == pytest.approx(1 / 255) and s.weight_decay == 3.5e-3 and not s.part
    t = preset("tiny-imagenet-part-m")
    assert (t.model, t.lr, t.batch_size, t.weight_decay, t.defense) == ("wrn-34-10", 0.02, 512, 5e-4, "mart")
    f = preset("fmnist-part")
    assert (f.eps, f.eps_low, f.dataset, f.model) == (0.1, 0.0875, "fashion-mnist", "small-cnn")


def test_config_round_trips_through_json():
    cfg = preset("fmnist-part-m", seed=3)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_attention_methods_need_a_model_with_attention():
    from part.training.config import preset

    with pytest.raises(ValueError, match="need a model with attention blocks and 'small-cnn' has none; accepted models: vit-tiny"):
        preset("fmnist-part", cam_methods=("gradcam", "attention-rollout"))
    assert preset("fmnist-vit-part").cam_methods == ("attention-rollout",)
    assert preset("fmnist-vit-part", cam_methods=("gradcam",)).model == "vit-tiny"  # every CAM through the reshape


def test_the_oracle_recipe_is_refused_where_the_dataset_gives_no_object_masks():
    for name in ("fmnist-part", "cifar10-part", "fmnist-vit-part"):
        with pytest.raises(ValueError, match="recipe 'oracle' .* accepted datasets for it: fashion-mnist-clutter$"):
            preset(name, recipe="oracle")
    cfg = preset("fmnist-clutter-part", recipe="oracle")
    assert cfg.recipe == "oracle" and TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="dataset 'fashion-mnist' gives none"):  # moving the run off the testbed
        cfg.replace(dataset="fashion-mnist", model="small-cnn")
