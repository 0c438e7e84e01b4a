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
