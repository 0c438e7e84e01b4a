"""GET /api/options is the catalogue the dashboard's forms are built from: each entry must be something
`part` accepts and does what it says, so a form can never offer what the core refuses."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

import models
from part.explain.cam import compute_cam
from part.training.config import TrainConfig, preset
from part.runs import method_label
from part.evaluation.evaluate import parse_attack
from part.explain.eps_maps import eps_map


@pytest.fixture(scope="module")
def catalogue(client) -> dict:
    response = client.get("/api/options")
    assert response.status_code == 200
    return response.json()


def test_every_preset_is_its_resolved_config_and_round_trips(catalogue):
    assert {"fmnist-part", "fmnist-clutter-part", "cifar10-part-t"} <= set(catalogue["presets"])
    for name, entry in catalogue["presets"].items():
        cfg = preset(name)
        assert TrainConfig.from_dict(entry["config"]) == cfg, name  # what a form sends back is the preset
        assert entry["label"] == method_label(cfg.defense, cfg.part)
    assert catalogue["presets"]["fmnist-part-m"]["label"] == "PART-M"
    assert catalogue["defaults"] == {k: list(v) if isinstance(v, tuple) else v
                                     for k, v in dataclasses.asdict(TrainConfig()).items()}


def test_every_cam_method_runs_and_every_recipe_takes_its_listed_options(catalogue, small_cnn):
    x = torch.rand(1, 1, 28, 28)
    vit = models.create_model("vit-tiny")
    assert {m["name"]: m["attention"] for m in catalogue["models"]}["vit-tiny"] is True
    for entry in catalogue["cam_methods"]:
        if entry["needs_attention"]:  # offered only for models with attention; a CNN refuses them
            with pytest.raises(ValueError, match="needs a model with attention"):
                compute_cam(small_cnn, x, torch.tensor([1]), entry["name"])
        cam = compute_cam(vit if entry["needs_attention"] else small_cnn, x, torch.tensor([1]), entry["name"])
        assert cam.shape == (1, 28, 28) and float(cam.min()) >= 0 and float(cam.max()) <= 1, entry
    cam = torch.rand(2, 28, 28)
    for name, entry in catalogue["recipes"].items():
        emap = eps_map(cam, eps=0.1, eps_low=0.05, recipe=name, channels=1, object_mask=cam > 0.5, **entry["options"])
        assert emap.shape[0] == 2 and float(emap.max()) <= 0.1 + 1e-6 and entry["help"], name
        with pytest.raises((TypeError, ValueError)):
            eps_map(cam, eps=0.1, eps_low=0.05, recipe=name, channels=1, not_an_option=1)


def test_models_attacks_and_datasets_are_the_cores(catalogue):
    assert [m["name"] for m in catalogue["models"]] == models.model_names()
    for entry in catalogue["models"]:
        spec = models.get_spec(entry["name"])
        assert (entry["input_size"], entry["description"]) == (spec.input_size, spec.description)
    for entry in catalogue["attacks"]["form"]:
        assert parse_attack(entry["name"]).name == entry["name"] and entry["heading"]
    assert [a["heading"] for a in catalogue["attacks"]["form"] if a["name"] in ("clean", "aa")] == ["Natural", "AA"]
    clutter = next(d for d in catalogue["datasets"] if d["name"] == "fashion-mnist-clutter")
    assert clutter["object_mask"] and clutter["image_size"] == 40
    assert next(d for d in catalogue["datasets"] if d["name"] == "cifar10")["object_mask"] is False


def test_the_featured_pair_comes_from_the_manifest_when_both_runs_exist(checkpoints):
    from tests.backend.conftest import make_client

    (checkpoints / "shipped.json").write_text(json.dumps({"featured": {"pair": ["at-tiny", "part-tiny"]}}))
    with make_client(checkpoints) as c:
        assert c.get("/api/options").json()["featured"] == ["at-tiny", "part-tiny"]
    (checkpoints / "shipped.json").write_text(json.dumps({"featured": {"pair": ["at-tiny", "gone"]}}))
    with make_client(checkpoints) as c:
        assert c.get("/api/options").json()["featured"] is None
    (checkpoints / "shipped.json").write_text("{not json")
    with make_client(checkpoints) as c:
        assert c.get("/api/options").json()["featured"] is None


def test_one_cam_colormap_for_overlays_and_the_dashboards_scales(catalogue):
    """The overlays the API draws and the colour bars the dashboard draws come from one matplotlib colormap."""
    import matplotlib
    import numpy as np

    from part.explain.images import jet_overlay

    stops = catalogue["cam_colours"]
    jet = matplotlib.colormaps["jet"]
    assert stops[0] == "#000080" and stops[-1] == "#800000" and len(stops) == 9
    assert stops == ["#%02x%02x%02x" % tuple(np.rint(np.array(jet(t)[:3]) * 255).astype(int))
                     for t in np.linspace(0, 1, 9)]
    overlay = jet_overlay(torch.zeros(1, 2, 2), torch.tensor([[0.0, 1.0], [0.5, 0.5]]), image_weight=0.0)
    # a black image: the overlay is the colormap itself, scaled to its brightest channel
    expected = np.stack([np.array(jet(v)[:3]) for v in (0.0, 1.0, 0.5, 0.5)]).reshape(2, 2, 3)
    assert np.abs(overlay / 255 - expected / expected.max()).max() <= 1 / 255
