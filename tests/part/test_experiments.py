"""Which runs are comparable: experiments from resolved configs, arms, baselines (one, none, or ambiguous),
and the shipped zoo's experiments named after the manifest's groups."""

from __future__ import annotations

import json
from pathlib import Path

from part.experiments import describe, differences, experiment_key, find_experiments
from part.runs import RunDir, read_manifest
from part.training.config import preset

ROOT = Path(__file__).resolve().parents[2] / "checkpoints"


def cfg(name: str, **changes) -> dict:
    return preset(name, **changes).to_dict()


def by_id(exps) -> dict:
    return {e.id: e for e in exps}


def test_a_vit_and_a_cnn_are_different_experiments_and_each_pairs_inside_its_own():
    configs = {"cnn-at-s0": cfg("fmnist-at"), "cnn-part-s0": cfg("fmnist-part"),
               "vit-at-s0": cfg("fmnist-vit-at"), "vit-part-s0": cfg("fmnist-vit-part")}
    exps = find_experiments(configs)
    assert sorted(sorted(e.runs) for e in exps) == [["cnn-at-s0", "cnn-part-s0"], ["vit-at-s0", "vit-part-s0"]]
    bases = {r: b.run for e in exps for r, b in e.baselines.items()}
    assert bases == {"cnn-part-s0": "cnn-at-s0", "vit-part-s0": "vit-at-s0"}


def test_length_subset_precision_and_eps_each_make_another_experiment():
    base = cfg("fmnist-at")
    for change in ({"epochs": 2}, {"subset": 2000}, {"amp": "bf16"}, {"eps": 0.05}, {"attack_steps": 3},
                   {"lr": 0.01}, {"dataset": "fashion-mnist-clutter", "model": "small-cnn-4"}):
        other = {**base, **change}
        assert experiment_key(other) != experiment_key(base), change
        assert differences(base, other), change
    # what a comparison is about stays out of the key
    for change in ({"part": True}, {"recipe": "shuffled"}, {"eps_low": 0.05}, {"seed": 3}, {"defense": "trades"},
                   {"cam_methods": ["layercam"]}, {"data_dir": "/elsewhere"}, {"eval_n": 10}):
        assert experiment_key({**base, **change}) == experiment_key(base), change


def test_a_short_run_from_the_browser_is_its_own_experiment_without_a_baseline():
    configs = {"at-s0": cfg("fmnist-at"), "part-s0": cfg("fmnist-part"),
               "quick": cfg("fmnist-part", epochs=2, burn_in_epochs=1, subset=2000)}
    exps = find_experiments(configs)
    quick = next(e for e in exps if "quick" in e.runs)
    assert quick.runs == ["quick"] and quick.id.startswith("exp-")
    assert quick.baselines["quick"].run is None
    assert "no baseline in this experiment" in quick.baselines["quick"].note
    main = next(e for e in exps if "part-s0" in e.runs)
    assert main.baselines["part-s0"].run == "at-s0" and main.arms["PART"] == ["part-s0"]


def test_the_baseline_matches_the_seed_and_two_fitting_runs_are_named_not_picked():
    configs = {"at-s0": cfg("fmnist-at", seed=0), "at-s1": cfg("fmnist-at", seed=1),
               "part-s1": cfg("fmnist-part", seed=1), "trades-s1": cfg("fmnist-trades", seed=1),
               "part-t-s1": cfg("fmnist-part-t", seed=1)}
    (exp,) = find_experiments(configs)
    assert exp.baselines["part-s1"].run == "at-s1"
    assert exp.baselines["part-t-s1"].run == "trades-s1"
    configs["at-again-s1"] = cfg("fmnist-at", seed=1)
    (exp,) = find_experiments(configs)
    b = exp.baselines["part-s1"]
    assert b.run is None and b.candidates == ("at-again-s1", "at-s1") and "none is picked" in b.note


def test_arms_pool_seeds_only_and_arms_sharing_a_name_are_told_apart():
    configs = {"part-s0": cfg("fmnist-part", seed=0), "part-s1": cfg("fmnist-part", seed=1),
               "part-low-s0": cfg("fmnist-part", eps_low=0.05, seed=0)}
    (exp,) = find_experiments(configs)
    assert exp.arms["PART [eps_low=0.0875]"] == ["part-s0", "part-s1"]
    assert exp.arms["PART [eps_low=0.05]"] == ["part-low-s0"]


def test_an_old_config_without_amp_counts_as_float32():
    old = {k: v for k, v in cfg("fmnist-at", amp="off").items() if k != "amp"}
    assert experiment_key(old) == experiment_key(cfg("fmnist-at", amp="off"))
    assert "float32" in describe(experiment_key(old))


def test_the_shipped_zoo_has_the_manifests_experiments_and_right_baselines():
    manifest = read_manifest(ROOT)
    configs = {p.name: RunDir(p).config() for p in sorted(ROOT.iterdir()) if RunDir(p).exists()}
    exps = by_id(find_experiments(configs, manifest))
    assert list(exps)[0] == "main" and exps["main"].featured
    for group, name in (("runs", "main"), ("parity", "parity"), ("testbed", "testbed"), ("vit", "vit")):
        assert sorted(exps[name].runs) == sorted(r["run"] for r in manifest[group]), name
    bases = {r: b.run for e in exps.values() for r, b in e.baselines.items()}
    assert bases["fmnist-vit-part-s0"] == "fmnist-vit-at-s0"  # not the CNN fmnist-at-s0
    assert bases["fmnist-part-s1"] == "fmnist-at-s1"  # not the bf16 fmnist-at-bf16-s1
    assert bases["fmnist-part-bf16-s1"] == "fmnist-at-bf16-s1"
    assert bases["fmnist-clutter-part-s1"] == "fmnist-clutter-at-s1"
    assert all(b is not None for b in bases.values())


def test_a_missing_or_broken_manifest_names_nothing(tmp_path):
    assert read_manifest(tmp_path) == {}
    (tmp_path / "shipped.json").write_text("{not json")
    assert read_manifest(tmp_path) == {}
    (tmp_path / "shipped.json").write_text(json.dumps([1, 2]))
    assert read_manifest(tmp_path) == {}
    (exp,) = find_experiments({"a": cfg("fmnist-at")}, read_manifest(tmp_path))
    assert exp.id.startswith("exp-") and not exp.featured
