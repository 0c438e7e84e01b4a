"""Who wins and the evaluations across runs: numbers that agree with the eval.json files on disk, one row
per run and epoch, McNemar p as part.evaluation.reports computes it, report files only from inside the run."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from part.evaluation import reports
from part.evaluation.job import evaluate_checkpoint
from tests.backend.conftest import make_client


@pytest.fixture(scope="module")
def evaluated(run_root, tmp_path_factory):
    """A copy of the tiny runs: both evaluated at epoch 2 on 32 and on 16 images, part-tiny at epoch 1 too."""
    root = tmp_path_factory.mktemp("wins") / "checkpoints"
    shutil.copytree(run_root, root)
    for run in ("part-tiny", "at-tiny"):
        evaluate_checkpoint(run=root / run, attacks="clean,pgd2", n=32, device="cpu")
        evaluate_checkpoint(run=root / run, attacks="clean,pgd2,fgsm", n=16, device="cpu",
                            out=root / run / "eval" / "small_epoch_0002")
    evaluate_checkpoint(run=root / "part-tiny", epoch=1, attacks="clean", n=16, device="cpu")
    with make_client(root) as client:
        yield root, client


def stored(root, run, folder, attack):
    report = json.loads((root / run / "eval" / folder / "eval.json").read_text())
    return report, report["attacks"][attack]["correct"]


def test_who_wins_splits_the_images_as_the_stored_results_say(evaluated):
    root, client = evaluated
    r = client.get("/api/evaluations/wins", params={"run_a": "at-tiny", "run_b": "part-tiny", "limit": 200})
    assert r.status_code == 200, r.text
    w = r.json()
    report, a = stored(root, "at-tiny", "epoch_0002", "pgd2")
    _, b = stored(root, "part-tiny", "epoch_0002", "pgd2")
    assert w["attack"] == "pgd2" and w["n"] == 32 and w["epoch_a"] == w["epoch_b"] == 2  # largest evaluation
    assert w["sources"] == ["epoch_0002", "epoch_0002"]
    only_a = [report["indices"][k] for k in range(32) if a[k] and not b[k]]
    only_b = [report["indices"][k] for k in range(32) if b[k] and not a[k]]
    assert [i["index"] for i in w["only_a"]["items"]] == only_a and w["counts"]["only_a"] == len(only_a)
    assert [i["index"] for i in w["only_b"]["items"]] == only_b and w["counts"]["only_b"] == len(only_b)
    assert sum(w["counts"].values()) == 32
    assert w["p"] == pytest.approx(reports.mcnemar(a, b))
    assert sum(c["only_a"] for c in w["per_class"]) == len(only_a) and sum(c["n"] for c in w["per_class"]) == 32
    assert set(w["attacks"]) == {"pgd2", "clean", "fgsm"}


def test_pages_and_epochs(evaluated):
    root, client = evaluated
    full = client.get("/api/evaluations/wins", params={"run_a": "part-tiny", "run_b": "at-tiny", "attack": "clean",
                                                        "limit": 200}).json()
    page = client.get("/api/evaluations/wins", params={"run_a": "part-tiny", "run_b": "at-tiny", "attack": "clean",
                                                        "offset": 1, "limit": 1}).json()
    assert page["only_a"]["items"] == full["only_a"]["items"][1:2]
    assert page["only_a"]["total"] == full["only_a"]["total"]
    old = client.get("/api/evaluations/wins", params={"run_a": "part-tiny", "run_b": "at-tiny", "epoch_a": 1}).json()
    assert old["epoch_a"] == 1 and old["attack"] == "clean" and old["n"] == 16  # the 16 images both saw


@pytest.mark.parametrize("params, status, says", [
    ({"attack": "mma"}, 404, "accepted: pgd2"),
    ({"epoch_a": 7}, 404, "evaluated epochs: 2"),
    ({"limit": 0}, 422, "limit"),
    ({"run_b": "nope"}, 404, "no run 'nope'"),
])
def test_refusals_name_what_is_accepted(evaluated, params, status, says):
    _, client = evaluated
    r = client.get("/api/evaluations/wins", params={"run_a": "at-tiny", "run_b": "part-tiny", **params})
    assert r.status_code == status and says in r.json()["detail"]


def test_evaluations_merge_per_checkpoint_and_pair_part_with_its_baseline(evaluated):
    root, client = evaluated
    r = client.get("/api/evaluations", params={"runs": "part-tiny,at-tiny"})
    assert r.status_code == 200, r.text
    d = r.json()
    assert [(row["run"], row["epoch"]) for row in d["rows"]] == [("part-tiny", 1), ("part-tiny", 2), ("at-tiny", 2)]
    part2 = d["rows"][1]
    assert part2["attacks"]["pgd2"]["n"] == 32 and part2["attacks"]["fgsm"]["n"] == 16  # each from its largest
    assert part2["eps"] == pytest.approx(0.1) and part2["eps_255"] == pytest.approx(25.5)
    _, a = stored(root, "part-tiny", "epoch_0002", "pgd2")
    report, b = stored(root, "at-tiny", "epoch_0002", "pgd2")
    (pair,) = d["pairs"]
    assert pair["run"] == "part-tiny" and pair["baseline"] == "at-tiny"
    assert pair["attacks"]["pgd2"]["p"] == pytest.approx(reports.mcnemar(a, b))
    assert pair["attacks"]["pgd2"]["delta"] == pytest.approx(100 * (sum(a) - sum(b)) / 32)
    per_class = part2["per_class"]["pgd2"]
    labels = report["labels"]
    assert per_class[labels[0]] == pytest.approx(sum(a[k] for k in range(32) if labels[k] == labels[0])
                                                 / labels.count(labels[0]))
    (part,) = [m for m in d["methods"] if m["label"] == "PART"]
    assert part["baseline"] == "AT" and part["attacks"]["pgd2"]["delta"] == pytest.approx(pair["attacks"]["pgd2"]["delta"])
    assert "correct" not in json.dumps(d)  # per-image lists stay on the server
    for bad in ("", "at-tiny,,part-tiny"):
        r = client.get("/api/evaluations", params={"runs": bad})
        assert r.status_code == 422 and "separated by commas" in r.json()["detail"]


def test_report_files_come_only_from_inside_the_run(evaluated, tmp_path):
    root, client = evaluated
    r = client.get("/api/runs/at-tiny/eval/epoch_0002/report.md")
    assert r.status_code == 200 and r.text == (root / "at-tiny/eval/epoch_0002/report.md").read_text()
    listed = client.get("/api/evaluations", params={"runs": "at-tiny"}).json()["reports"]["at-tiny"]
    assert {"name": "epoch_0002", "files": ["report.md", "report.html"]} in listed
    r = client.get("/api/runs/at-tiny/eval/epoch_0002/eval.json")
    assert r.status_code == 422 and "accepted: report.md, report.html" in r.json()["detail"]
    assert client.get("/api/runs/at-tiny/eval/nothing/report.md").status_code == 404
    outside = tmp_path / "secret.md"
    outside.write_text("not a report")
    linked = root / "at-tiny" / "eval" / "small_epoch_0002" / "report.md"
    linked.unlink()
    os.symlink(outside, linked)
    r = client.get("/api/runs/at-tiny/eval/small_epoch_0002/report.md")
    assert r.status_code == 409 and "outside the run folder" in r.json()["detail"]


def test_an_image_is_attacked_again_from_the_random_start_its_evaluation_drew(evaluated):
    """With the evaluation's seed and the image's position, /api/attack redraws that image's start, so Who
    wins' pictures agree with the stored verdicts, image by image."""
    root, client = evaluated
    report, correct = stored(root, "at-tiny", "epoch_0002", "pgd2")
    fields = {"run": "at-tiny", "epoch": 2, "split": "test", "methods": "gradcam", "attack": "pgd", "steps": 2,
              "budget": "scalar", "seed": report["seed"]}

    again = []
    for k, (index, label) in enumerate(zip(report["indices"], report["labels"])):
        r = client.post("/api/attack", data=fields | {"index": index, "start_position": k})
        assert r.status_code == 200, r.text
        again.append(int(r.json()["after"]["class_index"] == label))
    assert again == correct
    assert client.post("/api/attack", data=fields | {"index": 0, "start_position": -1}).status_code == 422
