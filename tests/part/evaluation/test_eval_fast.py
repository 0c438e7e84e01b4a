"""`part eval --fast`: the attack-time network (part/attacks/attack_view.py) in the machine's fast precision,
recorded in eval.json and never mixed with results of the model itself."""

import json

import pytest
import torch

from models import create_model
from part import cli
from part.attacks import attack_view
from part.runs import RunDir
from tests.part.evaluation.eval_fixtures import needs_fashion


def _run(tmp_path) -> RunDir:
    torch.manual_seed(0)
    run = RunDir(tmp_path / "run")
    run.write_config({"dataset": "fashion-mnist", "defense": "at", "part": False, "seed": 0, "eps": 0.1})
    meta = {"model": "small-cnn", "dataset": "fashion-mnist", "num_classes": 10, "in_channels": 1,
            "image_size": 28, "classes": [str(i) for i in range(10)]}
    model = create_model("small-cnn")
    with torch.no_grad():  # BatchNorm statistics that are not the identity, so folding changes the weights
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    run.save_checkpoint(1, model.state_dict(), run.config(), meta)
    return run


@needs_fashion
def test_eval_fast_attacks_the_folded_network_and_keeps_its_results_apart(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(attack_view.ENV, raising=False)
    monkeypatch.setattr(attack_view, "measure", lambda *a, **k: {"plain": 2.0, "folded": 1.5, "folded-cl": 1.0})
    run = _run(tmp_path)
    base = ["eval", "--run", str(run.path), "--attacks", "clean,pgd5", "--n", "64", "--no-progress"]
    out_json = run.path / "eval" / "epoch_0001" / "eval.json"
    assert cli.main(base) == 0
    plain = json.loads(out_json.read_text())
    assert "attack_path" not in plain and "amp" not in plain
    capsys.readouterr()
    assert cli.main(base + ["--fast"]) == 0
    out = capsys.readouterr().out
    fast = json.loads(out_json.with_name("x").parent.with_name("epoch_0001-n64-fast").joinpath("eval.json").read_text())
    assert json.loads(out_json.read_text()) == plain  # a folder of its own: the model's own results stay
    assert "kept" not in out and "attack network: folded-cl" in out
    assert fast["attack_path"] == "folded-cl" and fast["attack_timings_s"]["folded-cl"] == 1.0
    assert "amp" not in fast  # PART_CPU_BF16=0 in the tests: auto is float32 here
    for name in ("clean", "pgd5"):  # float32 both: image by image the same verdicts, nearly always
        a, b = plain["attacks"][name], fast["attacks"][name]
        assert abs(a["accuracy"] - b["accuracy"]) <= 2 / 64
        assert sum(x != y for x, y in zip(a["correct"], b["correct"])) <= 2
    assert cli.main(base) == 0  # the model itself again, into its own folder
    assert "attack_path" not in json.loads(out_json.read_text())


@needs_fashion
def test_eval_fast_with_zero_in_the_environment_is_the_plain_path(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(attack_view.ENV, "0")
    run = _run(tmp_path)
    assert cli.main(["eval", "--run", str(run.path), "--attacks", "clean", "--n", "8", "--no-progress", "--fast"]) == 0
    assert json.loads((run.path / "eval" / "epoch_0001" / "eval.json").read_text())["attack_path"] == "plain"
    assert "attack network: plain" in capsys.readouterr().out
