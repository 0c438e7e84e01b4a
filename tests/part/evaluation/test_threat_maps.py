"""The per-pixel threat model in evaluation: pgd<K>-map and mma<K>-map with each image's own eps-map."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from part import attacks
from part.explain.cam import compute_cam
from part.cli import main
from part.evaluation.job import evaluate_checkpoint
from part.evaluation.evaluate import evaluate, parse_attack, parse_attacks
from part.explain.eps_maps import eps_map
from part.evaluation.reports import heading, images_line
from part.evaluation.threat_maps import MapSource

ROOT = Path(__file__).resolve().parents[3]
AT, PART = ROOT / "checkpoints" / "fmnist-at-s0", ROOT / "checkpoints" / "fmnist-part-s0"
shipped = pytest.mark.skipif(not (PART / "checkpoints" / "epoch_0010.pt").is_file(), reason="shipped runs absent")


def test_names():
    assert parse_attack("pgd-map").name == "pgd20-map" and parse_attack("PGD20_map").per_pixel
    assert parse_attack("mma-map") == parse_attack("mma20-map") and parse_attack("mma-map").steps == 20
    assert [s.name for s in parse_attacks("pgd20,pgd20-map")] == ["pgd20", "pgd20-map"]
    with pytest.raises(ValueError, match="'aa-map': only pgd<K> and mma<K> have a per-pixel variant"):
        parse_attack("aa-map")
    assert heading("pgd20-map@fmnist-part-s0") == "PGD-20 map (fmnist-part-s0)" and heading("mma-map") == "MMA map"


def test_a_map_attack_needs_a_map_source(small_cnn, fmnist_batch):
    with pytest.raises(ValueError, match="pgd20-map attack with eps-maps: name the run"):
        evaluate(small_cnn, fmnist_batch, ["pgd20-map"], eps=0.1)


def _source(model, eps_low=0.05):
    return MapSource.from_checkpoint(model, {"eps": 0.1, "eps_low": eps_low, "recipe": "paper", "threshold": 1.0,
                                             "cam_methods": ["gradcam"], "cam_target": "label"})


def test_each_image_is_attacked_within_its_own_map(small_cnn, fmnist_batch, monkeypatch):
    x, y = fmnist_batch
    source = _source(small_cnn)
    expected = eps_map(compute_cam(small_cnn, x, y, ["gradcam"]), eps=0.1, eps_low=0.05, recipe="paper", channels=1)
    assert torch.equal(source.maps(x, y), expected)
    seen = []
    real = attacks.pgd
    monkeypatch.setattr(attacks, "pgd", lambda m, xb, yb, **kw: seen.append(kw) or real(m, xb, yb, **kw))
    out = evaluate(small_cnn, (x, y), ["pgd5-map"], eps=0.1, map_source=source, batch_size=1)["attacks"]["pgd5-map"]
    assert [torch.equal(kw["eps"], expected[i:i + 1]) for i, kw in enumerate(seen)] == [True, True]  # batch of one
    assert seen[0]["step_size"] == pytest.approx(0.025) and out["params"]["steps"] == 5
    stats = out["map"]
    assert stats["full_eps_fraction"] == pytest.approx(float((expected >= 0.1 - 1e-7).float().mean()))
    assert stats["mean_budget"] == pytest.approx(float(expected.mean()), rel=1e-5)
    assert stats["mean_budget_255"] == pytest.approx(255 * float(expected.mean()), rel=1e-5)
    assert 0.05 < stats["mean_budget"] < 0.1


def test_a_smaller_budget_never_lowers_accuracy_below_the_scalar_attack(small_cnn):
    """With eps_low = eps the maps are the scalar threat model: the same accuracy image by image."""
    g = torch.Generator().manual_seed(3)
    x, y = torch.rand(12, 1, 28, 28, generator=g), torch.randint(0, 10, (12,), generator=g)
    full = evaluate(small_cnn, (x, y), ["pgd3", "pgd3-map"], eps=0.1, map_source=_source(small_cnn, eps_low=0.1))
    assert full["attacks"]["pgd3-map"]["correct"] == full["attacks"]["pgd3"]["correct"]
    assert full["attacks"]["pgd3-map"]["map"]["full_eps_fraction"] == 1.0


@shipped
def test_eval_job_keys_results_by_the_map_run_and_keeps_both(tmp_path):
    out = tmp_path / "eval"
    own, _ = evaluate_checkpoint(run=AT, epoch=10, attacks="pgd2-map", n=8, out=out, device="cpu")
    assert set(own["attacks"]) == {"pgd2-map@fmnist-at-s0"}
    rec = own["attacks"]["pgd2-map@fmnist-at-s0"]["map"]
    assert rec["map_run"] == "fmnist-at-s0" and rec["map_epoch"] == 10 and rec["eps_low"] == 0.0875  # its config
    other, _ = evaluate_checkpoint(run=AT, epoch=10, attacks="pgd2-map", n=8, out=out, device="cpu", map_run=PART,
                                   map_eps_low=0.05)
    assert set(other["attacks"]) == {"pgd2-map@fmnist-at-s0", "pgd2-map@fmnist-part-s0"}
    assert other["attacks"]["pgd2-map@fmnist-part-s0"]["map"]["eps_low"] == 0.05
    again, _ = evaluate_checkpoint(run=AT, epoch=10, attacks="pgd2-map", n=8, out=out, device="cpu", map_run=PART,
                                   map_eps_low=0.05)
    assert again["reused"] == ["pgd2-map@fmnist-part-s0"]
    changed, _ = evaluate_checkpoint(run=AT, epoch=10, attacks="pgd2-map", n=8, out=out, device="cpu", map_run=PART)
    assert changed["reused"] == [] and changed["attacks"]["pgd2-map@fmnist-part-s0"]["map"]["eps_low"] == 0.0875
    report = (out / "report.md").read_text()
    assert "## Per-pixel threat model" in report and "| AT | PGD-2 map | fmnist-part-s0 epoch 10 | paper |" in report
    assert "map" not in images_line([changed])  # the map table says its own image count


@shipped
def test_cli_flags_and_errors(tmp_path, capsys):
    argv = ["eval", "--run", str(AT), "--epoch", "10", "--attacks", "pgd2-map", "--n", "4", "--out", str(tmp_path),
            "--map-run", str(PART), "--map-eps-low", "20/255", "--device", "cpu", "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "pgd2-map@fmnist-part-s0" in printed and "eps-maps of fmnist-part-s0 epoch 10 (paper, eps_low 20.00/255)" in printed
    saved = json.loads((tmp_path / "eval.json").read_text())["attacks"]["pgd2-map@fmnist-part-s0"]["map"]
    assert saved["eps_low"] == pytest.approx(20 / 255)
    assert main(argv[:6] + ["pgd2", "--n", "4", "--out", str(tmp_path / "b"), "--map-run", str(PART)]) == 2
    assert "map_run set the eps-maps of the -map attacks" in capsys.readouterr().err
    with pytest.raises(ValueError, match="eps_low <= eps"):
        evaluate_checkpoint(run=AT, epoch=10, attacks="pgd2-map", n=4, out=tmp_path / "c", device="cpu", map_eps_low=0.2)


@shipped
def test_the_cli_says_which_map_results_were_kept(tmp_path, capsys):
    base = ["eval", "--run", str(AT), "--epoch", "10", "--attacks", "pgd1-map", "--n", "4", "--out", str(tmp_path),
            "--device", "cpu", "--no-progress"]
    assert main(base) == 0
    capsys.readouterr()
    assert main(base + ["--map-run", str(PART)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if "%" in line and "@" in line}
    assert "kept from an earlier run" in lines["pgd1-map@fmnist-at-s0"]
    assert "kept" not in lines["pgd1-map@fmnist-part-s0"]


def test_oracle_maps_are_the_images_object_masks_and_need_them(small_cnn, fmnist_batch):
    x, y = fmnist_batch
    source = MapSource.from_checkpoint(small_cnn, {"eps": 0.1, "eps_low": 0.05, "recipe": "oracle"})
    masks = x[:, 0] > 0.5
    assert torch.equal(source.maps(x, y, object_mask=masks)[:, 0], torch.where(masks, 0.1, 0.05))
    fresh = MapSource.from_checkpoint(small_cnn, {"eps": 0.1, "eps_low": 0.05, "recipe": "oracle"})
    with pytest.raises(ValueError, match="recipe 'oracle' puts full eps on each image's exact object mask"):
        fresh.maps(x, y)
    done = []
    with pytest.raises(ValueError, match="unnamed data has none; accepted datasets: fashion-mnist"):  # before any attack
        evaluate(small_cnn, (x, y), ["clean", "pgd2-map"], eps=0.1, map_source=fresh, on_result=lambda *a: done.append(a))
    assert done == []
