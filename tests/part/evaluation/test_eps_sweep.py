"""Robustness vs eps as an attack: pgd20@0.05,0.1,0.15 parses anywhere an attack list is read, records an
accuracy per eps on the same images, and the gradient-masking checks sweep eps through the same code."""

from __future__ import annotations

import pytest
from part.evaluation import eps_sweep
from part.evaluation.checks import gradient_masking_checks
from part.evaluation.evaluate import evaluate, parse_attack, parse_attacks
from tests.part.evaluation.eval_fixtures import clean_model, fashion, needs_fashion


def test_a_sweep_keeps_its_eps_list_inside_a_comma_separated_attack_list():
    specs = parse_attacks("clean,pgd20@0.15,0.05,8/255,mma")
    assert [s.name for s in specs] == ["clean", "pgd20@0.0313725,0.05,0.15", "mma"]
    assert specs[1].kind == "sweep" and specs[1].steps == 20
    assert parse_attack("pgd@0.1:0.2").name == "pgd20@0.1,0.2"  # ':' separates too; bare pgd is PGD-20
    assert parse_attack("mma50@0.1").name == "mma50@0.1" and parse_attack("fgsm@0.1").steps == 1
    assert parse_attacks(["pgd10@0.1", "0.2"])[0].name == "pgd10@0.1,0.2"


@pytest.mark.parametrize("bad, says", [("pgd20@0,0.1", "outside (0, 1]"), ("pgd20@1.5", "outside (0, 1]"),
                                       ("pgd20@abc", "not a number"), ("aa@0.1", "not an eps sweep"),
                                       ("pgd20@", "names no eps")])
def test_bad_sweeps_are_refused_saying_what_is_accepted(bad, says):
    with pytest.raises(ValueError, match="accepted") as err:
        parse_attack(bad)
    assert says in str(err.value)


@pytest.mark.parametrize("bad, says", [("pgd20@" + "1" + "0" * 400 + "/7", "has 403 characters"),
                                       ("pgd20@" + "9" * 90 + "/3", "outside (0, 1]"), ("pgd20@1/0", "not a number")])
def test_huge_or_undefined_fractions_are_value_errors(bad, says):
    with pytest.raises(ValueError, match="accepted") as err:  # the config's number parser, not OverflowError
        parse_attack(bad)
    assert says in str(err.value)


def test_too_many_points_are_refused():
    with pytest.raises(ValueError, match="limit is 32"):
        eps_sweep.parse_sweep("pgd20@" + ",".join(f"{k / 100:g}" for k in range(1, 40)))


@needs_fashion
def test_the_sweep_record_matches_pgd_at_each_eps_on_the_same_images():
    model, (x, y) = clean_model(), fashion("test", 64)
    result = evaluate(model, (x, y), ["pgd5@0.02,0.1", "pgd5"], eps=0.1, seed=0)
    rec = result["attacks"]["pgd5@0.02,0.1"]
    assert rec["eps"] == [0.02, 0.1] and rec["n"] == 64 and rec["kind"] == "sweep"
    assert [len(c) for c in rec["correct"]] == [64, 64]
    assert rec["accuracies"] == [sum(c) / 64 for c in rec["correct"]]
    assert rec["accuracies"][0] >= rec["accuracies"][1]  # a larger ball never helps the model
    assert "accuracy" not in rec  # not one number: Table 1 leaves it out
    assert abs(rec["accuracies"][1] - result["attacks"]["pgd5"]["accuracy"]) <= 0.05  # other random starts


@needs_fashion
def test_the_checks_sweep_eps_through_correct_by_eps(monkeypatch):
    model, (x, y) = clean_model(), fashion("test", 32)
    seen = []
    original = eps_sweep.correct_by_eps

    def spy(model, x, y, values, attack, **kw):
        seen.append(list(values))
        return original(model, x, y, values, attack, **kw)

    monkeypatch.setattr("part.evaluation.checks.correct_by_eps", spy)
    rec = gradient_masking_checks(model, x, y, eps=0.1, steps=2, random_samples=2, unbounded_steps=2)
    assert seen == [[0.1 * f for f in (0.25, 0.5, 1.0, 2.0, 4.0)]]
    assert rec["eps_curve"]["eps"][1:] == seen[0]


def test_report_md_and_html_show_every_sweep_as_a_robustness_vs_eps_table():
    from part.evaluation.report_html import html_report
    from part.evaluation.reports import markdown_report, sweep_rows

    result = {"label": "PART", "run": "/x/fmnist-part-s0", "epoch": 10, "model": "small-cnn", "dataset": "fashion-mnist",
              "eps": 0.1, "eps_text": "0.1", "n": 100,
              "attacks": {"clean": {"accuracy": 0.83, "n": 100},
                          "pgd20@0.05,0.1": {"sweep": True, "attack": "pgd", "eps": [0.05, 0.1],
                                             "accuracies": [0.6125, 0.4], "n": 100},
                          "fgsm@8/255": {"sweep": True, "attack": "fgsm", "eps": [8 / 255], "accuracies": [0.7], "n": 100}}}
    header, rows = sweep_rows([result])
    assert header == ["Method", "Run", "Epoch", "Attack", "eps", "eps (/255)", "Accuracy (%)", "Images"]
    assert rows == [["PART", "fmnist-part-s0", "10", "PGD-20", "0.05", "12.75", "61.25", "100"],
                    ["PART", "fmnist-part-s0", "10", "PGD-20", "0.1", "25.50", "40.00", "100"],
                    ["PART", "fmnist-part-s0", "10", "FGSM", "0.0313725", "8.00", "70.00", "100"]]
    text = markdown_report([result])
    assert "## Robustness vs eps" in text and "| PART | fmnist-part-s0 | 10 | PGD-20 | 0.05 | 12.75 | 61.25 | 100 |" in text
    page = html_report([result])
    assert "Robustness vs eps" in page and "<td class=\"61.25\">61.25</td>" in page
    without = {**result, "attacks": {"clean": result["attacks"]["clean"]}}
    assert "Robustness vs eps" not in markdown_report([without]) and "Robustness vs eps" not in html_report([without])
