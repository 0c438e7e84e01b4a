"""The placement attack: PGD-20 with the budget on the object, off it, everywhere, PART-like and inverted,
each paired with the PART-like case; stored in eval.json, shown in report.md, refused without object masks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import models
from part.cli import main
from part.evaluation.evaluate import evaluate, parse_attack, parse_attacks
from part.evaluation.job import evaluate_checkpoint
from part.evaluation.placement import CASES, budget_map, paired, placement
from part.evaluation.reports import markdown_report, mcnemar

ROOT = Path(__file__).resolve().parents[3]
CLUTTER_AT = ROOT / "checkpoints" / "fmnist-clutter-at-s0"
shipped = pytest.mark.skipif(not (CLUTTER_AT / "checkpoints" / "epoch_0010.pt").is_file(), reason="shipped runs absent")

S = 8
OBJECT = torch.zeros(S, S, dtype=torch.bool)
OBJECT[:, : S // 2] = True  # the left half is "the object" of every image


class RightHalf(nn.Module):
    """A linear model that sees only the right half of the image: the object's pixels cannot move it."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(S * S, 3)

    def forward(self, x):
        return self.fc((x[:, 0] * (~OBJECT).float()).flatten(1))


def _data(n=48):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, 1, S, S, generator=g)
    model = RightHalf()
    with torch.no_grad():
        y = model(x).argmax(1)  # clean accuracy 100 %: every loss is the attack's
    return model, x, y, OBJECT.expand(n, S, S).clone()


def test_budget_maps_put_eps_where_each_case_says():
    mask = torch.tensor([[[True, False]]])
    out = budget_map(mask, 0.1, 0.05)
    assert out.shape == (1, 1, 1, 2) and out.dtype == torch.float32
    assert torch.equal(out, torch.tensor([[[[0.1, 0.05]]]]))
    assert list(CASES) == ["everywhere", "part_like", "inverted", "object_only", "off_object_only"]


def test_an_attack_on_pixels_the_model_ignores_changes_nothing_and_the_cases_are_paired():
    model, x, y, masks = _data()
    rec = placement(model, x, y, masks, eps=0.3, eps_low=0.1, steps=5, batch_size=16)
    c = rec["cases"]
    assert rec["clean"]["accuracy"] == 1.0 and rec["object_fraction"] == 0.5 and rec["n"] == 48
    assert c["object_only"]["accuracy"] == 1.0  # eps only where the model does not look
    assert c["object_only"]["share_of_full_loss"] == 0.0 and c["off_object_only"]["share_of_full_loss"] == 1.0
    # the same random start in every case: off the object, everywhere and off_object_only are one attack
    assert c["everywhere"]["correct"] == c["off_object_only"]["correct"] and c["everywhere"]["accuracy"] < 0.9
    assert c["inverted"]["correct"] == c["everywhere"]["correct"]  # eps off the object, whatever on it
    assert c["part_like"]["accuracy"] > c["everywhere"]["accuracy"]  # eps_low where it matters
    assert c["part_like"]["mean_budget"] == pytest.approx(0.5 * 0.3 + 0.5 * 0.1)
    assert "p" not in c["part_like"]
    for case in ("everywhere", "inverted", "object_only", "off_object_only"):
        assert c[case]["p"] == pytest.approx(mcnemar(c[case]["correct"], c["part_like"]["correct"]))
        assert c[case]["delta_points"] == pytest.approx(100 * (c[case]["accuracy"] - c["part_like"]["accuracy"]))
    assert c["everywhere"]["delta_points"] < 0 and c["everywhere"]["p"] < 0.05


def test_eps_low_zero_makes_part_like_the_object_only_attack():
    model, x, y, masks = _data(16)
    rec = placement(model, x, y, masks, eps=0.3, eps_low=0.0, steps=3)
    assert rec["cases"]["part_like"]["correct"] == rec["cases"]["object_only"]["correct"]
    assert rec["cases"]["object_only"]["p"] == 1.0


def test_the_paired_interval_is_never_zero_wide():
    same = torch.tensor([True, False] * 50)
    out = paired(same, same)
    assert out["delta_points"] == 0 and out["p"] == 1.0 and 1.0 < out["ci95_points"] < 5.0
    worse = same.clone()
    worse[:10] = False  # five images the reference keeps are lost
    out = paired(worse, same)
    assert (out["only_case"], out["only_reference"]) == (0, 5) and out["delta_points"] == -5.0


def test_names_and_eps_low_values():
    assert parse_attack("placement").kind == "placement" and parse_attack("placement").eps_low is None
    specs = parse_attacks("clean,placement@0.05,0,placement@7/255")
    assert [s.name for s in specs] == ["clean", "placement@0.05", "placement@0", "placement@0.027451"]
    assert specs[3].eps_low == pytest.approx(7 / 255) and specs[2].eps_low == 0.0
    with pytest.raises(ValueError, match="eps_low 'half' is not a number"):
        parse_attacks("placement@half")
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        parse_attacks("placement@1.5")


def test_data_without_object_masks_is_refused_before_any_attack_runs():
    model, x, y, _ = _data(4)
    done = []
    with pytest.raises(ValueError, match="needs each test image's object mask, and unnamed data has none; "
                                         "accepted datasets: fashion-mnist, fashion-mnist-clutter"):
        evaluate(model, (x, y), "clean,placement", eps=0.1, on_result=lambda name, rec: done.append(name))
    assert done == []


def test_a_checkpoint_of_a_dataset_without_masks_is_refused_before_its_data_is_read(tmp_path, monkeypatch):
    monkeypatch.setenv("PART_CIFAR10_DIR", str(tmp_path / "nowhere"))  # loading the data would fail otherwise
    ckpt = tmp_path / "cifar.pt"
    torch.save({"model": models.create_model("small-cnn", in_channels=3).state_dict(), "epoch": 1, "config": {},
                "meta": {"model": "small-cnn", "dataset": "cifar10", "num_classes": 10, "in_channels": 3,
                         "image_size": 32, "classes": [str(i) for i in range(10)]}}, ckpt)
    with pytest.raises(ValueError, match="dataset 'cifar10' has none; accepted datasets: fashion-mnist, "
                                         "fashion-mnist-clutter"):
        evaluate_checkpoint(ckpt, attacks="clean,placement", n=4, out=tmp_path / "ev", device="cpu")
    assert not (tmp_path / "ev").exists()
    assert main(["eval", "--checkpoint", str(ckpt), "--attacks", "placement", "--n", "4", "--out",
                 str(tmp_path / "ev")]) == 2


@shipped
def test_part_eval_placement_on_the_testbed_lands_in_eval_json_and_report_md(tmp_path, capsys):
    out = tmp_path / "ev"
    assert main(["eval", "--run", str(CLUTTER_AT), "--attacks", "placement,placement@0", "--n", "6", "--out", str(out),
                 "--device", "cpu", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "object_only" in printed and "vs part_like, McNemar p" in printed and "kept from an earlier run" not in printed
    result = json.loads((out / "eval.json").read_text())
    rec, zero = result["attacks"]["placement"], result["attacks"]["placement@0"]
    assert rec["kind"] == "placement" and rec["eps"] == 0.1 and rec["eps_low"] == pytest.approx(0.0875)  # the run's
    assert rec["n"] == 6 and set(rec["cases"]) == set(CASES) and 0.05 < rec["object_fraction"] < 0.6
    assert rec["object_mask"].startswith("each sample's object as the dataset placed it")
    assert zero["eps_low"] == 0 and zero["cases"]["part_like"]["correct"] == zero["cases"]["object_only"]["correct"]
    report = (out / "report.md").read_text()
    assert "## Placement of the budget" in report and "| off_object_only |" in report
    assert "placement (eps_low 22.31/255)" in report and "placement@0 (eps_low 0.00/255)" in report
    again, _ = evaluate_checkpoint(run=CLUTTER_AT, attacks="placement", n=6, out=out, device="cpu")
    assert again["reused"] == ["placement"]


def test_the_report_writes_a_non_significant_difference_as_an_interval():
    model, x, y, masks = _data(16)
    rec = {"kind": "placement", **placement(model, x, y, masks, eps=0.3, eps_low=0.29, steps=2)}
    text = markdown_report([{"label": "AT", "eps": 0.3, "n": 16, "dataset": "d", "attacks": {"placement": rec}}])
    row = next(line for line in text.splitlines() if "| inverted |" in line)
    assert "no detectable difference (±" in row and "points at 95 %)" in row


@shipped
def test_part_eval_chooses_the_cam_method_layer_and_target_of_alignment(tmp_path):
    out = tmp_path / "al"
    run = ["eval", "--run", str(CLUTTER_AT), "--attacks", "alignment", "--n", "4", "--out", str(out), "--no-progress"]
    assert main(run + ["--cam-methods", "layercam", "--cam-layer", "features.0", "--cam-target", "pred"]) == 0
    rec = json.loads((out / "eval.json").read_text())["attacks"]["alignment"]
    assert (rec["cam_methods"], rec["cam_layer"], rec["cam_target"]) == (["layercam"], "features.0", "pred")
    assert "layercam (pred) at features.0" in (out / "report.md").read_text()
    same, _ = evaluate_checkpoint(run=CLUTTER_AT, attacks="alignment", n=4, out=out, device="cpu",
                                  cam_methods="layercam", cam_layer="features.0", cam_target="pred")
    assert same["reused"] == ["alignment"]
    own, _ = evaluate_checkpoint(run=CLUTTER_AT, attacks="alignment", n=4, out=out, device="cpu")
    assert own["reused"] == [] and own["attacks"]["alignment"]["cam_layer"] is None  # other CAMs: rerun
    assert own["attacks"]["alignment"]["cam_methods"] == ["gradcam"]
    with pytest.raises(ValueError, match="no layer 'features.7'"):
        evaluate_checkpoint(run=CLUTTER_AT, attacks="alignment", n=4, out=out, device="cpu", cam_layer="features.7")
    with pytest.raises(ValueError, match="cam_methods nope not accepted"):
        evaluate_checkpoint(run=CLUTTER_AT, attacks="alignment", n=4, out=out, device="cpu", cam_methods="nope")
