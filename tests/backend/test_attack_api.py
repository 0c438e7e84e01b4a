"""POST /api/attack: PGD-k and MMA within a scalar eps or PART's eps-map."""

import base64
import io

import numpy as np
import pytest
import torch
from PIL import Image


def _image(url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))), dtype=np.float64) / 255


def test_pgd_within_the_eps_map(client):
    body = client.post("/api/attack", data={"run": "part-tiny", "probe": "1", "steps": "5", "target": "label"}).json()
    delta, emap = torch.tensor(body["perturbation"], dtype=torch.float64), torch.tensor(body["eps_map"], dtype=torch.float64)
    assert (delta.abs() <= emap + 1e-5).all() and body["perturbation_linf"] <= 0.1 + 1e-6
    assert set(emap.unique().tolist()) <= {0.0875, 0.1} and body["budget"] == "eps-map"
    adversarial, clean = _image(body["adversarial_png"])[::8, ::8], _image(body["input"]["image_png"])[::8, ::8]
    assert adversarial.shape == (28, 28) and (np.abs(adversarial - clean) <= emap.numpy() + 1 / 255).all()
    assert body["label"] == 1 and body["fooled"] == (body["after"]["class_index"] != 1)
    assert body["step_size"] == pytest.approx(0.025)


def test_mma_with_a_scalar_budget(client):
    body = client.post("/api/attack", data={"run": "at-tiny", "index": "3", "attack": "mma", "budget": "scalar",
                                            "eps": "8/255", "steps": "3"}).json()
    assert body["attack"] == "mma" and body["eps_low"] == pytest.approx(8 / 255)
    assert np.allclose(body["eps_map"], 8 / 255, atol=1e-5)
    assert body["perturbation_linf"] <= 8 / 255 + 1e-6
    assert body["mask_stats"]["full_eps_fraction"] == 1.0


def test_no_random_start_is_deterministic(client):
    fields = {"run": "part-tiny", "probe": "3", "steps": "3", "random_start": "false"}
    first, second = (client.post("/api/attack", data=fields).json() for _ in range(2))
    assert first["perturbation"] == second["perturbation"]


@pytest.mark.parametrize("fields, words", [
    ({"attack": "cw"}, "pgd"), ({"steps": "0"}, "steps"), ({"steps": "201"}, "steps"),
    ({"budget": "l2"}, "eps-map"), ({"step_size": "-1"}, "step_size"), ({"methods": " , "}, "methods is empty"),
])
def test_bad_attack_requests(client, fields, words):
    r = client.post("/api/attack", data={"run": "part-tiny", "probe": "0", **fields})
    assert r.status_code == 422 and words in r.json()["detail"], r.text[:300]


def test_the_shuffled_recipe_attacks_within_another_probe_image_map(client):
    fields = {"run": "part-tiny", "probe": "1", "steps": "2", "target": "label", "eps_low": "0.05"}
    shuffled = client.post("/api/attack", data={**fields, "recipe": "shuffled"}).json()
    donor = client.post("/api/attack", data={**fields, "probe": "2", "recipe": "paper"}).json()
    assert shuffled["shuffled_with"]["probe"] == 2 and shuffled["eps_map"] == donor["eps_map"]
