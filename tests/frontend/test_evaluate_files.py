"""The Evaluate page's corruption-files field: sent with the job only when given, and only with the
corruptions attack."""

from __future__ import annotations

import json

import httpx

from frontend.api import PartApi
from tests.frontend.conftest import no_exceptions, open_page


def test_the_client_sends_the_folder_only_when_given():
    bodies = []

    def answer(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json={"id": "j1"})

    client = PartApi("http://api.test", token="")
    client._http = httpx.Client(base_url="http://api.test", transport=httpx.MockTransport(answer))
    client.submit_eval("run-a", None, "corruptions", 100, corruption_files="/data/CIFAR-10-C")
    client.submit_eval("run-a", 3, "clean", 100, corruption_files=None)
    assert bodies[0] == {"kind": "eval", "run": "run-a", "epoch": None, "attacks": "corruptions", "n": 100,
                         "corruption_files": "/data/CIFAR-10-C"}
    assert "corruption_files" not in bodies[1]


def test_a_folder_without_the_corruptions_attack_is_refused_before_any_job(app, api):
    at = open_page(app, "evaluate")
    before = len(api.get("/api/jobs").json())
    at.multiselect(key="ev-attacks").set_value(["clean"])
    at.text_input(key="ev-corruption-files").set_value("/data/CIFAR-10-C")
    at.button(key="FormSubmitter:eval-form-Start evaluation").click().run()
    no_exceptions(at)
    assert any("read by the corruptions attack" in e.value for e in at.error)
    assert len(api.get("/api/jobs").json()) == before


def test_map_columns_name_whose_maps_and_their_budget():
    from frontend.reports import _column_help
    from part.evaluation.reports import heading  # the headings the backend sends with every attack

    assert heading("pgd20-map@fmnist-part-s0") == "PGD-20 map (fmnist-part-s0)" and heading("mma-map") == "MMA map"
    found = [{"attacks": {"pgd20-map@fmnist-part-s0": {"accuracy": 0.7, "map": {
        "map_run": "fmnist-part-s0", "map_epoch": 10, "recipe": "paper", "eps": 0.1, "eps_low": 0.0875,
        "mean_budget_255": 23.62, "full_eps_fraction": 0.411}}}}]
    text = _column_help("pgd20-map@fmnist-part-s0", found)
    assert "fmnist-part-s0 epoch 10 (paper; eps 25.5/255, eps_low 22.3/255; mean budget 23.62/255" in text
    assert "41.1% of pixel values" in text and _column_help("pgd20", found) == "accuracy (%) under pgd20"


def test_the_map_run_is_sent_only_when_another_run_is_chosen(app, api):
    at = open_page(app, "evaluate")
    options = at.selectbox(key="ev-map-run").options
    assert options[0] == "the evaluated run (its own)" and at.selectbox(key="ev-run").value not in options
    at.multiselect(key="ev-attacks").set_value(["pgd20-map"])
    at.number_input(key="ev-n").set_value(4)
    at.button(key="FormSubmitter:eval-form-Start evaluation").click().run()
    no_exceptions(at)
    job = [j for j in api.get("/api/jobs").json() if j["kind"] == "eval"][0]
    assert job["spec"]["attacks"] == ["pgd20-map"] and "map_run" not in job["spec"]
