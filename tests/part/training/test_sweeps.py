"""Sweeps: a grid's cells, their run ids, the config's own checks, and `part sweep` resuming a sweep."""

import pytest

from part.cli import main
from part.runs import RunDir, read_sweep
from part.training.sweeps import cell_run_id, cells, parse_grid, plan


def test_a_grid_is_every_combination_named_after_its_values():
    grid = parse_grid(["eps_low=0.0875,0.05", "recipe=paper,shuffled", "seed=0,1"])
    record = plan("abl", "fmnist-part", {"epochs": 2, "burn_in_epochs": 1}, grid)
    assert len(record["cells"]) == 8 and record["experiment_fields"] == []
    first = record["cells"][0]
    assert first["values"] == {"eps_low": 0.0875, "recipe": "paper", "seed": 0}
    assert first["run_id"] == "abl.eps_low-0.0875.recipe-paper.seed-0" and first["config"]["epochs"] == 2
    assert [c["values"]["seed"] for c in record["cells"][:2]] == [0, 1]  # the last field varies fastest
    assert cell_run_id("s", {"cam_methods": ["gradcam", "layercam"]}) == "s.cam_methods-gradcam_layercam"
    assert plan("e", "fmnist-at", {}, {"eps": ["0.1", "0.2"]})["experiment_fields"] == ["eps"]


@pytest.mark.parametrize("grid, words", [
    ({}, "at least one field"),
    ({"colour": ["red"]}, "cannot sweep colour"),
    ({"nproc": [1, 2]}, "cannot sweep nproc"),
    ({"seed": []}, "no values"),
    ({"recipe": ["magic"]}, "accepted: paper"),
])
def test_a_bad_grid_says_what_is_accepted(grid, words):
    with pytest.raises(ValueError, match=words):
        plan("x", "fmnist-part", {}, grid) if grid.get("recipe") else cells(grid)


def test_part_sweep_trains_each_cell_and_a_second_call_keeps_the_finished_ones(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PART_CHECKPOINTS", str(tmp_path))
    args = ["sweep", "--preset", "fmnist-at", "--name", "s", "--grid", "seed=0,1", "--no-progress",
            *[x for kv in ("subset=64", "epochs=1", "eval_n=16", "attack_steps=1", "eval_steps=1", "probe_count=2")
              for x in ("--set", kv)]]
    assert main(args) == 0
    assert [c["run_id"] for c in read_sweep(tmp_path, "s")["cells"]] == ["s.seed-0", "s.seed-1"]
    assert all(RunDir(tmp_path / r).status()["state"] == "completed" for r in ("s.seed-0", "s.seed-1"))
    capsys.readouterr()
    assert main(args) == 0
    assert capsys.readouterr().out.count(": completed") == 2
    assert main([*args[:6], "seed=0,1,2", *args[7:]]) == 2  # the same name with other cells is refused
