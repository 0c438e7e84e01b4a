"""GET /api/experiments and the results grouped by experiment: a run of another length is never pooled with
or paired against the others, who wins refuses runs tested on other images, and a damaged run is skipped with
its reason instead of breaking the page for everyone."""

from __future__ import annotations

import json
import shutil

import pytest

from part.evaluation.job import evaluate_checkpoint
from tests.backend.conftest import make_client


@pytest.fixture(scope="module")
def zoo(run_root, tmp_path_factory):
    """part-tiny and at-tiny (one experiment), long-at (at-tiny's files, its config saying 5 epochs: another
    experiment), bed-at (its config on the cluttered testbed), all evaluated on the same 16 images."""
    root = tmp_path_factory.mktemp("experiments") / "checkpoints"
    shutil.copytree(run_root, root)
    for copy, change in (("long-at", {"epochs": 5}), ("bed-at", {"dataset": "fashion-mnist-clutter"})):
        shutil.copytree(root / "at-tiny", root / copy)
        config = json.loads((root / copy / "config.json").read_text()) | change
        (root / copy / "config.json").write_text(json.dumps(config))
    for run in ("part-tiny", "at-tiny", "long-at", "bed-at"):
        evaluate_checkpoint(run=root / run, attacks="clean,pgd2", n=16, device="cpu")
    with make_client(root) as client:
        yield root, client


def test_experiments_list_runs_arms_and_baselines(zoo):
    _, client = zoo
    r = client.get("/api/experiments")
    assert r.status_code == 200, r.text
    found = {tuple(sorted(e["runs"])): e for e in r.json()["experiments"]}
    assert set(found) == {("at-tiny", "part-tiny"), ("long-at",), ("bed-at",)}
    tiny = found[("at-tiny", "part-tiny")]
    assert tiny["baselines"]["part-tiny"] == {"run": "at-tiny", "candidates": ["at-tiny"], "note": ""}
    assert tiny["arms"] == {"AT": ["at-tiny"], "PART": ["part-tiny"]} and sorted(tiny["evaluated"]) == sorted(tiny["runs"])
    assert "2 epochs" in tiny["description"] and "5 epochs" in found[("long-at",)]["description"]


def test_means_and_pairs_stay_inside_an_experiment(zoo):
    _, client = zoo
    r = client.get("/api/evaluations")
    assert r.status_code == 200, r.text
    data = r.json()
    blocks = {tuple(sorted(g["runs"])): g for g in data["experiments"]}
    assert set(blocks) == {("at-tiny", "part-tiny"), ("long-at",), ("bed-at",)}
    assert [(p["run"], p["baseline"]) for p in data["pairs"]] == [("part-tiny", "at-tiny")]
    at = next(m for m in blocks[("at-tiny", "part-tiny")]["methods"] if m["label"] == "AT")
    assert at["runs"] == 1 and at["run_ids"] == ["at-tiny"]  # not pooled with long-at or bed-at
    by_run = {row["run"]: row["experiment"] for row in data["rows"]}
    assert by_run["long-at"] != by_run["at-tiny"] != by_run["bed-at"]
    one = client.get("/api/evaluations", params={"experiments": by_run["long-at"]}).json()
    assert one["runs"] == ["long-at"] and one["pairs"] == []
    bad = client.get("/api/evaluations", params={"experiments": "no-such"})
    assert bad.status_code == 404 and "experiments:" in bad.json()["detail"]


def test_a_pair_is_measured_against_its_baseline_even_when_only_it_is_chosen(zoo):
    _, client = zoo
    data = client.get("/api/evaluations", params={"runs": "part-tiny"}).json()
    assert [(p["run"], p["baseline"]) for p in data["pairs"]] == [("part-tiny", "at-tiny")]


def test_who_wins_refuses_two_test_sets(zoo):
    _, client = zoo
    r = client.get("/api/evaluations/wins", params={"run_a": "at-tiny", "run_b": "bed-at"})
    assert r.status_code == 422 and "different images" in r.json()["detail"]
    assert "fashion-mnist vs fashion-mnist-clutter" in r.json()["detail"]
    assert client.get("/api/evaluations/wins", params={"run_a": "at-tiny", "run_b": "long-at"}).status_code == 200


def test_a_damaged_run_is_skipped_with_its_reason(zoo, tmp_path):
    root, _ = zoo
    copy = tmp_path / "checkpoints"
    shutil.copytree(root, copy)
    (copy / "long-at" / "config.json").write_text("{not json")
    with make_client(copy) as client:
        r = client.get("/api/evaluations")
        assert r.status_code == 200, r.text
        assert [s["run"] for s in r.json()["skipped"]] == ["long-at"]
        assert "config.json" in r.json()["skipped"][0]["problem"]
        listed = client.get("/api/experiments").json()
        assert [p["run"] for p in listed["problems"]] == ["long-at"]
