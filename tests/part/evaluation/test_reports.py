"""Corruptions, Table 1 / Table 4 reports, the HTML report, `part eval` and `python -m part.evaluation.reports`."""

from __future__ import annotations

import json
import re

import pytest
import torch

from part import cli
from part.evaluation import reports
from part.evaluation.report_html import write_reports
from part.evaluation.corruptions import CORRUPTIONS, corrupt_images, evaluate_corruptions, title
from part.runs import RunDir
from tests.part.evaluation.eval_fixtures import clean_model, fashion, needs_fashion


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --- corruptions -------------------------------------------------------------------------------------

@pytest.mark.parametrize("channels,size", [(1, 28), (3, 32)])
def test_all_19_corruptions_keep_shape_range_and_are_deterministic(channels, size):
    x = torch.rand(2, channels, size, size)
    assert len(CORRUPTIONS) == 19
    for name in CORRUPTIONS:
        out = corrupt_images(x, name, 3, seed=1)
        assert out.shape == x.shape and out.dtype == x.dtype, name
        assert 0 <= float(out.min()) and float(out.max()) <= 1, name
        assert torch.equal(out, corrupt_images(x, name, 3, seed=1)), name
    assert not torch.equal(corrupt_images(x, "gaussian_noise", 1), corrupt_images(x, "gaussian_noise", 5))


def test_severity_5_noise_moves_pixels_more_than_severity_1():
    x = torch.full((4, 1, 28, 28), 0.5)
    d1 = (corrupt_images(x, "gaussian_noise", 1) - x).abs().mean()
    d5 = (corrupt_images(x, "gaussian_noise", 5) - x).abs().mean()
    assert d5 > 2 * d1 > 0


def test_bad_corruption_names_and_severities_are_rejected():
    with pytest.raises(ValueError, match="unknown corruption 'rain'; accepted: gaussian_noise"):
        corrupt_images(torch.rand(1, 3, 8, 8), "rain", 1)
    with pytest.raises(ValueError, match="severity must be one of"):
        corrupt_images(torch.rand(1, 3, 8, 8), "fog", 6)
    assert title("jpeg_compression") == "JPEG Compression"


@needs_fashion
def test_corruption_accuracy_per_type_and_severity():
    x, y = fashion("test", 32)
    rec = evaluate_corruptions(clean_model(), x, y, types=("contrast", "gaussian_noise"), severities=(1, 5))
    assert set(rec["types"]) == {"contrast", "gaussian_noise"} and rec["severities"] == [1, 5]
    noise = rec["types"]["gaussian_noise"]
    assert len(noise["correct"]) == 2 and len(noise["correct"][0]) == 32
    assert noise["accuracy"][0] == pytest.approx(sum(noise["correct"][0]) / 32)
    assert noise["accuracy"][0] > noise["accuracy"][1]  # severity 5 noise hurts more
    assert rec["accuracy"] == pytest.approx(sum(rec["mean_by_severity"]) / 2)


# --- tables ------------------------------------------------------------------------------------------

def fake(label, accs, seed=0, corruptions=None):
    attacks = {a: {"accuracy": v, "n": 10, "seconds": 1.0, "correct": []} for a, v in accs.items()}
    if corruptions is not None:
        types = {c: {"accuracy": [corruptions, corruptions / 2], "correct": []} for c in CORRUPTIONS}
        attacks["corruptions"] = {"accuracy": corruptions * 0.75, "severities": [1, 2], "types": types,
                                  "mean_by_severity": [corruptions, corruptions / 2], "n": 10, "seconds": 1.0}
    return {"label": label, "dataset": "cifar10", "model": "resnet18", "eps": 8 / 255, "eps_text": "8/255",
            "n": 10, "train_seed": seed, "epoch": 80, "checkpoint": "x.pt", "attacks": attacks}


RESULTS = [fake("AT", {"clean": 0.82, "pgd20": 0.43, "mma": 0.41, "aa": 0.40}, 0, 0.8),
           fake("AT", {"clean": 0.84, "pgd20": 0.45, "mma": 0.43, "aa": 0.42}, 1, 0.6),
           fake("PART", {"clean": 0.85, "pgd20": 0.44, "mma": 0.42}, 0, 0.9)]


def test_table1_mean_std_and_differences_to_the_baseline():
    text = reports.table1(RESULTS, baseline="AT")
    lines = text.strip().splitlines()
    assert lines[0] == "| Dataset | Method | Runs | Natural | PGD-20 | MMA | AA |"
    assert lines[2] == "| cifar10 | AT | 2 | 83.00 ± 1.41 | 44.00 ± 1.41 | 42.00 ± 1.41 | 41.00 ± 1.41 |"
    assert lines[3] == "| cifar10 | PART | 1 | 85.00 (+2.00) | 44.00 (+0.00) | 42.00 (+0.00) | – |"
    with pytest.raises(ValueError, match="baseline 'TRADES' is not among the results; accepted: AT, PART"):
        reports.table1(RESULTS, baseline="TRADES")


def test_each_method_against_its_own_baseline():
    results = RESULTS + [fake("TRADES", {"clean": 0.80}), fake("PART-T", {"clean": 0.81})]
    lines = reports.table1(results, baseline="PART=AT, PART-T=TRADES").strip().splitlines()
    assert lines[3].startswith("| cifar10 | PART | 1 | 85.00 (+2.00) |")
    assert lines[4].startswith("| cifar10 | TRADES | 1 | 80.00 | ") and "(" not in lines[4]
    assert lines[5].startswith("| cifar10 | PART-T | 1 | 81.00 (+1.00) |")
    for bad, msg in [("PART=", "is not accepted; give a method label"), ("PART=MART", "'MART' is not among")]:
        with pytest.raises(ValueError, match=msg):
            reports.table1(results, baseline=bad)


def test_a_mean_over_fewer_runs_than_the_row_has_says_so():
    lines = reports.table1(RESULTS + [fake("PART", {"clean": 0.87, "aa": 0.41}, 1)]).strip().splitlines()
    assert lines[3] == "| cifar10 | PART | 2 | 86.00 ± 1.41 | 44.00 [1/2 runs] | 42.00 [1/2 runs] | 41.00 [1/2 runs] |"


def test_evaluations_of_one_checkpoint_merge_and_the_one_on_more_images_wins():
    full = {**fake("AT", {"clean": 0.83, "pgd20": 0.44}), "checkpoint_sha256": "a", "n": 10000}
    full["attacks"]["pgd20"]["n"] = full["attacks"]["clean"]["n"] = 10000
    small = {**fake("AT", {"clean": 0.90, "pgd20": 0.50, "aa": 0.40}), "checkpoint_sha256": "a"}
    checks = {**fake("AT", {}), "checkpoint_sha256": "a", "surrogate": "b.pt"}
    checks["attacks"]["checks"] = {"accuracy": None, "checks": []}
    other = {**fake("AT", {"clean": 0.80}), "checkpoint_sha256": "b"}
    merged = reports.merge([small, full, checks, other])
    assert len(merged) == 2 and merged[0]["surrogate"] == "b.pt" and merged[0]["n"] == 10000
    assert {a: r["accuracy"] for a, r in merged[0]["attacks"].items()} == {
        "clean": 0.83, "pgd20": 0.44, "aa": 0.40, "checks": None}
    assert reports.images_line(merged[:1]) == "10000 test images per model (Natural, PGD-20); 10 (AA)"
    assert reports.images_line(RESULTS) == "10 test images per model"


def test_reports_of_a_run_folder_merge_all_evaluations_of_its_last_epoch(tmp_path):
    evals = {"epoch_0010": {**fake("AT", {"aa": 0.4}), "epoch": 10, "checkpoint_sha256": "a"},
             "full_epoch_0010": {**fake("AT", {"pgd20": 0.5}), "epoch": 10, "checkpoint_sha256": "a"},
             "epoch_0005": {**fake("AT", {"mma": 0.3}), "epoch": 5, "checkpoint_sha256": "c"}}
    for name, r in evals.items():
        (tmp_path / "eval" / name).mkdir(parents=True)
        (tmp_path / "eval" / name / "eval.json").write_text(json.dumps(r))
    [result] = reports.load_results([tmp_path])
    assert set(result["attacks"]) == {"aa", "pgd20"}


def test_mcnemar_counts_only_the_images_one_model_alone_gets_right():
    assert reports.mcnemar([1, 1, 1, 0, 1], [0, 0, 0, 0, 1]) == pytest.approx(0.25)  # 3 vs 0: 2 * 0.5**3
    assert reports.mcnemar([1, 0] * 50, [0, 1] * 50) == pytest.approx(1.0)
    assert reports.mcnemar([1, 1], [1, 1]) == 1.0
    assert reports.mcnemar([1] * 20, [0] * 20) < 1e-5
    with pytest.raises(ValueError, match="cover 2 and 3 images"):
        reports.mcnemar([1, 0], [1, 0, 1])


def test_a_control_run_is_labelled_with_its_recipe():
    from part.evaluation.job import label_for

    assert label_for({"defense": "at", "part": False, "recipe": "shuffled"}) == "AT"
    assert label_for({"defense": "at", "part": True, "recipe": "paper", "cam_methods": ["gradcam"]}) == "PART"
    assert label_for({"defense": "at", "part": True, "recipe": "shuffled"}) == "PART (shuffled)"
    assert label_for({"defense": "trades", "part": True, "recipe": "uniform-mean",
                      "cam_methods": ["gradcam", "layercam"]}) == "PART-T (uniform-mean, gradcam+layercam)"


def test_corruption_table_follows_table4():
    lines = reports.corruption_table(RESULTS, severity=1).strip().splitlines()
    assert lines[0] == "| Corruption | AT | PART |"
    assert lines[2] == "| Gaussian Noise | 70.00 ± 14.14 | 90.00 |"
    assert lines[-1] == "| Mean | 70.00 ± 14.14 | 90.00 |" and len(lines) == 2 + 19 + 1
    by_model = reports.corruption_table(RESULTS, severity=None, by="model").strip().splitlines()
    assert by_model[0].startswith("| Method | Gaussian Noise |") and by_model[0].endswith("| Mean |")
    assert by_model[3].startswith("| PART | 67.50 |")


def test_html_report_is_self_contained(tmp_path):
    results = [dict(r) for r in RESULTS]
    results[0]["attacks"] = {**results[0]["attacks"], "checks": {
        "accuracy": None, "passed": False, "eps_curve": {"eps": [0, 0.1], "accuracy": [0.8, 0.1]},
        "checks": [{"id": "unbounded", "title": "unbounded attack", "passed": False, "detail": "80% <b>",
                    "numbers": {}}]}}
    paths = write_reports(tmp_path, results, baseline="AT")
    page = paths["html"].read_text()
    assert len(page) > 1_000_000 and "Plotly.newPlot" in page  # plotly.js embedded
    assert not re.search(r"<script[^>]+src=[\"']?(https?:)?//", page)
    assert "80% &lt;b&gt;" in page and 'class="FAIL"' in page
    md = paths["markdown"].read_text()
    assert "## Table 1" in md and "## Corruptions at severity 1" in md and "| unbounded attack | FAIL |" in md


def test_reports_command_reads_run_folders(tmp_path, capsys):
    for i, r in enumerate(RESULTS):
        (tmp_path / f"run{i}" / "eval" / "epoch_0080").mkdir(parents=True)
        (tmp_path / f"run{i}" / "eval" / "epoch_0080" / "eval.json").write_text(json.dumps(r))
    runs = [str(tmp_path / f"run{i}") for i in range(3)]
    assert cli.main(["report", *runs, "--baseline", "AT", "--out", str(tmp_path / "out")]) == 0
    assert "PART | 1 | 85.00 (+2.00)" in (tmp_path / "out" / "report.md").read_text()
    assert cli.main(["report", str(tmp_path / "nothing")]) == 2
    assert "no evaluation results in" in capsys.readouterr().err


# --- `part eval` -------------------------------------------------------------------------------------

def run_cli(argv, capsys):
    code = cli.main([*argv, "--no-progress"] if argv[0] == "eval" else argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_eval_missing_checkpoint_is_a_one_line_error(tmp_path, capsys):
    code, _, err = run_cli(["eval", "--checkpoint", str(tmp_path / "none.pt")], capsys)
    assert code == 2 and err.strip().count("\n") == 0
    assert err.startswith("part eval: error: checkpoint not found:")
    code, _, err = run_cli(["eval", "--run", str(tmp_path)], capsys)
    assert code == 2 and "is not a run folder" in err and err.strip().count("\n") == 0


def test_eval_unknown_attack_lists_the_accepted_ones(tmp_path, capsys):
    code, _, err = run_cli(["eval", "--checkpoint", str(tmp_path / "none.pt"), "--attacks", "clean,cw"], capsys)
    assert code == 2 and err.strip().count("\n") == 0
    assert "unknown attack 'cw'; accepted: clean, fgsm, pgd<K>" in err


@needs_fashion
def test_eval_a_run_writes_json_markdown_html_and_merges_reruns(tmp_path, capsys):
    from models import create_model

    torch.manual_seed(0)
    run = RunDir(tmp_path / "run")
    run.write_config({"dataset": "fashion-mnist", "defense": "at", "part": True, "seed": 3, "eps": 0.1})
    meta = {"model": "small-cnn", "dataset": "fashion-mnist", "num_classes": 10, "in_channels": 1,
            "image_size": 28, "classes": [str(i) for i in range(10)]}
    run.save_checkpoint(2, create_model("small-cnn").state_dict(), run.config(), meta)
    code, out, _ = run_cli(["eval", "--run", str(run.path), "--attacks", "clean,pgd2", "--n", "12"], capsys)
    assert code == 0 and "pgd2" in out
    folder = run.path / "eval" / "epoch_0002"
    result = json.loads((folder / "eval.json").read_text())
    assert result["label"] == "PART" and result["epoch"] == 2 and result["eps"] == pytest.approx(0.1)
    assert result["n"] == 12 and len(result["indices"]) == 12 and len(result["attacks"]["pgd2"]["correct"]) == 12
    assert (folder / "report.md").is_file() and (folder / "report.html").is_file()
    code, _, _ = run_cli(["eval", "--run", str(run.path), "--attacks", "fgsm", "--n", "12"], capsys)
    assert code == 0
    assert list(json.loads((folder / "eval.json").read_text())["attacks"]) == ["clean", "pgd2", "fgsm"]
    code, out, _ = run_cli(["eval", "--run", str(run.path), "--attacks", "pgd2,fgsm", "--n", "12"], capsys)
    assert code == 0 and out.count("kept from an earlier run") == 3  # clean was not asked for: kept too
    code, out, _ = run_cli(["eval", "--run", str(run.path), "--attacks", "pgd2", "--n", "12", "--recompute"], capsys)
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert code == 0 and "kept" not in lines["pgd2"] and "kept" in lines["fgsm"]  # the other results stay
    assert json.loads((folder / "eval.json").read_text())["reused"] == []
    code, _, err = run_cli(["eval", "--run", str(run.path), "--epoch", "5"], capsys)
    assert code == 2 and "no checkpoint for epoch 5; available: [2]" in err


def test_a_report_over_two_experiments_pools_and_compares_only_inside_each(tmp_path):
    """Runs of another dataset are a section of their own: PART is measured against its own AT."""
    from part.training.config import preset

    made = {"cnn-at": ("fmnist-at", "AT", 0.80), "cnn-part": ("fmnist-part", "PART", 0.82),
            "bed-at": ("fmnist-clutter-at", "AT", 0.60), "bed-part": ("fmnist-clutter-part", "PART", 0.61)}
    for run, (name, label, acc) in made.items():
        RunDir(tmp_path / run).write_config(preset(name).to_dict())
        (tmp_path / run / "eval" / "epoch_0010").mkdir(parents=True)
        (tmp_path / run / "eval" / "epoch_0010" / "eval.json").write_text(
            json.dumps(fake(label, {"clean": acc}) | {"checkpoint_sha256": run, "run": "/gone/" + run}))
    text = reports.markdown_report(reports.load_results([tmp_path / r for r in made]), "AT")
    first, second = text.split("\n## Experiment ")[1:]
    assert "fashion-mnist-clutter" in second and "fashion-mnist-clutter" not in first
    assert "| PART | 1 | 82.00 (+2.00) |" in first and "| PART | 1 | 61.00 (+1.00) |" in second
    assert "| 2 |" not in text  # no row pools the two datasets


def test_a_paired_difference_without_significance_is_written_as_an_interval_not_as_equality():
    same = [1, 0] * 500
    d = reports.paired_difference(same, same)
    assert (d["delta_points"], d["p"], d["n"]) == (0.0, 1.0, 1000) and 0.1 < d["ci95_points"] < 0.5
    text = reports.difference_text(d)
    assert text.startswith("+0.00: no detectable difference (±") and "points at 95 %, p = 1.00, n = 1000)" in text
    better = [1] * 40 + same[40:]
    d = reports.paired_difference(better, same)
    assert (d["only_a"], d["only_b"], d["delta_points"]) == (20, 0, 2.0)
    assert reports.difference_text(d) == "+2.00 (p < 0.001, n = 1000)"
    assert d["ci95_points"] > reports.paired_difference(same, same)["ci95_points"]


def test_a_change_is_its_median_with_a_test_whose_direction_is_the_medians():
    # most images go down a little, a few go up a lot: the mean is positive, the median and the test say down
    a = [0.5 - 0.01] * 70 + [0.5 + 0.1] * 30 + [None, 0.4]
    b = [0.5] * 100 + [0.3, None]
    c = reports.paired_change(a, b)
    assert c["mean"] > 0 and c["median"] == pytest.approx(-0.01)
    assert (c["lower"], c["higher"], c["n"], c["left_out"]) == (70, 30, 100, 2) and c["p"] < 0.001
    text = reports.change_text(c)
    assert text.startswith("-0.010 median (lower on 70, higher on 30 of 100 images; sign test p < 0.001")
    assert "2 image(s) without a value in either left out" in text
    assert reports.paired_change([0.1, 0.2], [0.1, 0.2])["p"] == 1.0
    with pytest.raises(ValueError, match="compare the same images"):
        reports.paired_change([0.1], [0.1, 0.2])


@needs_fashion
def test_an_evaluation_with_other_settings_never_replaces_the_stored_one(tmp_path, capsys):
    from models import create_model

    torch.manual_seed(0)
    run = RunDir(tmp_path / "run")
    run.write_config({"dataset": "fashion-mnist", "defense": "at", "part": False, "seed": 0, "eps": 0.1})
    meta = {"model": "small-cnn", "dataset": "fashion-mnist", "num_classes": 10, "in_channels": 1,
            "image_size": 28, "classes": [str(i) for i in range(10)]}
    run.save_checkpoint(1, create_model("small-cnn").state_dict(), run.config(), meta)
    assert run_cli(["eval", "--run", str(run.path), "--attacks", "clean,fgsm", "--n", "16"], capsys)[0] == 0
    stored = run.path / "eval" / "epoch_0001" / "eval.json"
    before = stored.read_bytes()
    # a quick evaluation of the same checkpoint goes to a folder of its own
    assert run_cli(["eval", "--run", str(run.path), "--attacks", "clean", "--n", "8"], capsys)[0] == 0
    quick = json.loads((run.path / "eval" / "epoch_0001-n8" / "eval.json").read_text())
    assert quick["n"] == 8 and stored.read_bytes() == before
    # asked to write into the stored one, it refuses and keeps it
    code, _, err = run_cli(["eval", "--run", str(run.path), "--attacks", "clean", "--n", "8",
                            "--out", str(stored.parent)], capsys)
    assert code == 2 and "holds another evaluation of this checkpoint (16 images" in err and "epoch_0001-n8" in err
    assert stored.read_bytes() == before
    # readers see the merge: each attack from the evaluation on the most images
    merged = reports.load_results([run.path])
    assert len(merged) == 1 and merged[0]["attacks"]["clean"]["n"] == 16 and merged[0]["attacks"]["fgsm"]["n"] == 16
