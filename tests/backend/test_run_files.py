"""Damaged evaluation reports: a type-wrong eval.json is a problem of its run, listed with the field that is
wrong; GET /api/evaluations and /api/evaluations/wins never answer 500 (or 409) because of it. Property-tested
with hypothesis: any field of a real report replaced by any JSON value."""

from __future__ import annotations

import json
import shutil

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from backend.services.run_files import checked
from part.evaluation.job import evaluate_checkpoint
from tests.backend.conftest import make_client

JSON = st.recursive(st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=True) | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                    max_leaves=6)
FIELDS = ["epoch", "label", "dataset", "n", "eps", "seed", "indices", "labels", "classes", "attacks",
          "attacks.pgd2", "attacks.pgd2.accuracy", "attacks.pgd2.correct", "attacks.pgd2.n", "attacks.clean.correct",
          "attacks.pgd2.params", "attacks.checks", "attacks.corruptions"]


@pytest.fixture(scope="module")
def evaluated(run_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("damaged") / "checkpoints"
    shutil.copytree(run_root, root)
    for run in ("part-tiny", "at-tiny"):
        evaluate_checkpoint(run=root / run, attacks="clean,pgd2", n=16, device="cpu")
    report = root / "at-tiny" / "eval" / "epoch_0002" / "eval.json"
    with make_client(root) as client:
        yield client, report, json.loads(report.read_text())


def put(report: dict, path: str, value) -> dict:
    out = json.loads(json.dumps(report))
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node[key]
    node[last] = value
    return out


@pytest.mark.parametrize("path, value, says", [
    ("labels", None, None), ("labels", "3", "labels"), ("labels", 3.5, "labels"), ("classes", 10, "classes"),
    ("attacks.pgd2.accuracy", "0.5", None), ("attacks.pgd2.accuracy", "high", "accuracy"), ("eps", "0.1", None),
    ("attacks", [1, 2], "attacks"), ("epoch", "ten", "epoch"), ("epoch", [10], "epoch"), ("label", 3, "label"),
    ("attacks.corruptions", {"types": {"fog": {"accuracy": "x"}}}, "corruptions"),
    ("attacks.checks", {"checks": "none"}, "checks"), ("labels", [-1] * 16, "labels"),
])
def test_a_type_wrong_report_is_listed_with_its_field_and_nothing_answers_500(evaluated, path, value, says):
    client, file, good = evaluated
    try:
        file.write_text(json.dumps(put(good, path, value)))
        r = client.get("/api/evaluations")
        assert r.status_code == 200, r.text
        skipped = [s["problem"] for s in r.json()["skipped"] if s["run"] == "at-tiny"]
        ok, wrong = checked(json.loads(file.read_text()))
        if says is None:  # a value pydantic reads as the right type ("0.5" as 0.5) or an allowed null
            assert ok is not None and not skipped
        else:
            assert wrong and says in wrong and any("eval/epoch_0002/eval.json is left out" in p for p in skipped)
        w = client.get("/api/evaluations/wins", params={"run_a": "at-tiny", "run_b": "part-tiny"})
        assert w.status_code in (200, 404), w.text
    finally:
        file.write_text(json.dumps(good))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(FIELDS), value=JSON)
def test_any_field_replaced_by_any_json_never_breaks_the_results_pages(evaluated, path, value):
    client, file, good = evaluated
    try:
        file.write_text(json.dumps(put(good, path, value)))
        for url, params in (("/api/evaluations", None),
                            ("/api/evaluations/wins", {"run_a": "at-tiny", "run_b": "part-tiny"})):
            r = client.get(url, params=params)
            assert r.status_code in (200, 404), (path, value, r.status_code, r.text[:300])
    finally:
        file.write_text(json.dumps(good))
