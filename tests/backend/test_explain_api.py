"""POST /api/explain: heatmaps, eps-maps and mask statistics for uploads, samples and probes."""

import pytest
import torch

from backend.services.render import DISPLAY_SIDE
from part.explain.cam import compute_cam
from part.data.datasets import load_dataset
from part.explain.images import to_tensor
from part.runs import RunDir, load_model
from tests.backend.conftest import explain_upload, png, shirt


def _model(run_root, run="part-tiny", epoch=2):
    return load_model(RunDir(run_root / run).checkpoint_path(epoch))[0]


def test_upload_gives_the_same_heatmap_as_the_library(client, run_root):
    body = explain_upload(client, png(shirt(56)), methods="gradcam").json()
    x = to_tensor(shirt(56), 1, 28)
    model = _model(run_root)
    pred = int(model(x).argmax())
    expected = compute_cam(model, x, torch.tensor([pred]), "gradcam")[0]
    (result,) = body["results"]
    assert body["prediction"]["class_index"] == pred == body["target"] and body["epoch"] == 2
    assert torch.allclose(torch.tensor(result["heatmap"]), expected, atol=1e-4)
    assert abs(sum(body["prediction"]["probabilities"]) - 1) < 1e-3
    assert result["overlay_png"].startswith("data:image/png;base64,")


def test_paper_recipe_eps_map_takes_two_values_and_matches_its_stats(client):
    body = client.post("/api/explain", data={"run": "part-tiny", "index": "7", "recipe": "paper"}).json()
    (result,) = body["results"]
    values = torch.tensor(result["eps_map"], dtype=torch.float64)
    assert set(values.unique().tolist()) <= {0.0875, 0.1}
    full = float((values >= 0.1 - 1e-7).float().mean())
    assert result["mask_stats"]["full_eps_fraction"] == pytest.approx(full, abs=1e-6)
    assert body["input"]["kind"] == "dataset" and body["input"]["label"] == int(load_dataset("fashion-mnist", "test")[7][1])


def test_methods_ensemble_weights_and_recipe_options(client):
    body = client.post("/api/explain", data={
        "run": "part-tiny", "probe": "2", "methods": "gradcam,layercam", "ensemble": "true", "weights": "3,1",
        "target": "label", "recipe": "soft", "tau": "5", "eps": "8/255", "eps_low": "4/255"}).json()
    names = [r["method"] for r in body["results"]]
    assert names == ["gradcam", "layercam", "ensemble(gradcam+layercam)"]
    gradcam, layercam, ensemble = (torch.tensor(r["heatmap"]) for r in body["results"])
    assert torch.allclose(ensemble, 0.75 * gradcam + 0.25 * layercam, atol=2e-4)
    assert body["options"] == {"tau": 5.0} and body["eps"] == pytest.approx(8 / 255)
    assert body["target"] == body["input"]["label"] == 2
    emap = torch.tensor(body["results"][0]["eps_map"], dtype=torch.float64)
    assert emap.min() >= 4 / 255 - 1e-5 and emap.max() <= 8 / 255 + 1e-5


def test_an_earlier_epoch_and_an_image_of_another_size_and_mode(client):
    rgb = shirt(100).convert("RGB")
    body = explain_upload(client, png(rgb, "JPEG"), name="photo.jpg", epoch="1").json()
    assert body["epoch"] == 1 and body["input"]["size"] == 28 and body["input"]["channels"] == 1
    assert len(body["results"][0]["heatmap"]) == 28 and len(body["results"][0]["heatmap"][0]) == 28


@pytest.mark.parametrize("fields, status, words", [
    ({"methods": "fancycam", "probe": "0"}, 422, "accepted: ablationcam"),
    ({"probe": "0", "recipe": "paper", "tau": "2"}, 422, "accepted: threshold"),
    ({"probe": "0", "recipe": "magic"}, 422, "accepted: paper"),
    ({"probe": "0", "eps": "2"}, 422, "0 <= eps <= 1"),
    ({"probe": "0", "eps": "0.05", "eps_low": "0.08"}, 422, "must not exceed"),
    ({"probe": "0", "eps": "abc"}, 422, "8/255"),
    ({"probe": "0", "epoch": "9"}, 404, "available: 1, 2"),
    ({"probe": "9"}, 404, "probe must be 0..3"),
    ({"index": "0", "probe": "0"}, 422, "exactly one image source"),
    ({}, 422, "exactly one image source"),
    ({"index": "0", "target": "label", "dataset": "cifar10"}, 404, "not installed"),
    ({"probe": "0", "target": "12"}, 422, "0..9"),
    ({"probe": "0", "weights": "1,2"}, 422, "ensemble=true"),
    ({"probe": "0", "methods": "gradcam", "ensemble": "true"}, 422, "at least two"),
    ({"probe": "0", "threshold": "nan"}, 422, "threshold"),
    ({"probe": "0", "colour": "red"}, 422, "colour"),
    ({"probe": "0", "run": "../../etc"}, 422, "run ids are"),
])
def test_bad_requests_say_what_is_accepted(client, fields, status, words):
    r = client.post("/api/explain", data={"run": "part-tiny", **fields})
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]


def test_target_label_needs_a_labelled_image(client):
    r = explain_upload(client, png(shirt()), target="label")
    assert r.status_code == 422 and "an upload has no label" in r.json()["detail"]


def test_overlays_are_upscaled_for_display(client):
    import base64
    import io

    from PIL import Image

    body = client.post("/api/explain", data={"run": "part-tiny", "probe": "0"}).json()
    overlay = Image.open(io.BytesIO(base64.b64decode(body["results"][0]["overlay_png"].split(",")[1])))
    assert overlay.size == (DISPLAY_SIDE // 28 * 28,) * 2 and overlay.mode == "RGB"


def _photo(width=300, height=200, background=(235, 235, 230)) -> bytes:
    """A dark garment on a light background, as a phone photo of one would look (not Fashion-MNIST's style)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), background)
    ImageDraw.Draw(image).rectangle((120, 30, 180, 170), fill=(40, 50, 90))
    return png(image)


def test_an_upload_reports_what_the_conversion_did_and_the_model_input(client):
    body = explain_upload(client, _photo(), name="photo.png").json()
    inp = body["input"]
    assert inp["original"] == {"width": 300, "height": 200, "mode": "RGB"} and inp["fit"] is False
    notes = " ".join(inp["notes"])
    assert "shrunk from 300x200 to 28x28" in notes and "squashed" in notes and "greyscale" in notes
    assert inp["fit_steps"] == [] and inp["image_png"].startswith("data:image/png")


def test_fit_to_the_dataset_style_inverts_crops_and_pads(client):
    plain = explain_upload(client, _photo(), name="photo.png").json()["input"]
    fitted = explain_upload(client, _photo(), name="photo.png", fit="true").json()["input"]
    steps = " ".join(fitted["fit_steps"])
    assert fitted["fit"] is True and "inverted the light background" in steps and "cropped to the object" in steps
    assert "padded to a" in steps and not any("squashed" in n for n in fitted["notes"])
    import base64, io
    import numpy as np
    from PIL import Image

    def pixels(url):
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))), dtype=np.float64)[::8, ::8]

    p, f = pixels(plain["image_png"]), pixels(fitted["image_png"])
    assert p[0, 0] > 200 and f[0, 0] < 10  # light corner before; black background after, as Fashion-MNIST
    assert f[14, 14] > 200  # the (inverted) garment fills the centre


def test_each_map_carries_its_energy_on_the_object_and_its_road_score(client):
    body = client.post("/api/explain", data={"run": "part-tiny", "probe": "1", "target": "label",
                                             "methods": "gradcam,layercam"}).json()
    assert 0 < body["object_fraction"] < 1
    for result in body["results"]:
        assert 0 <= result["energy_on_object"] <= 1
        road = result["road"]
        assert road["road_combined"] == pytest.approx((road["road_lerf"] - road["road_morf"]) / 2, abs=1e-5)


def test_the_shuffled_recipe_takes_the_map_of_another_probe_image(client):
    fields = {"run": "part-tiny", "probe": "1", "target": "label", "eps": "0.1", "eps_low": "0.05"}
    own = client.post("/api/explain", data={**fields, "recipe": "paper"}).json()
    other = client.post("/api/explain", data={**fields, "probe": "2", "recipe": "paper"}).json()
    shuffled = client.post("/api/explain", data={**fields, "recipe": "shuffled"}).json()
    assert shuffled["shuffled_with"]["probe"] == 2
    assert shuffled["results"][0]["eps_map"] == other["results"][0]["eps_map"] != own["results"][0]["eps_map"]
    assert shuffled["results"][0]["heatmap"] == own["results"][0]["heatmap"]  # the image's own CAM is still shown


def test_npz_export_holds_maps_masks_and_both_adversarial_examples(client):
    import io
    import json

    import numpy as np

    response = client.post("/api/export/npz", data={"run": "part-tiny", "probe": "0", "target": "label",
                                                    "methods": "gradcam,layercam", "ensemble": "true", "steps": "3"})
    assert response.status_code == 200, response.text
    assert "attachment" in response.headers["content-disposition"]
    npz = np.load(io.BytesIO(response.content))
    assert list(npz["methods"]) == ["gradcam", "layercam", "ensemble(gradcam+layercam)"]
    assert npz["cams"].shape == (3, 28, 28) and npz["eps_maps"].shape == (3, 1, 28, 28)
    assert (npz["masks"] == (npz["eps_maps"] >= 0.1 - 1e-7)).all()
    x = npz["input"]
    assert np.abs(npz["adversarial_scalar"] - x).max() <= 0.1 + 1e-6
    assert (np.abs(npz["adversarial_eps_map"] - x) <= npz["attack_eps_map"] + 1e-6).all()
    assert np.allclose(npz["attack_eps_map"], npz["eps_maps"][2])  # the ensemble's map sets the attack's budget
    meta = json.loads(str(npz["meta"]))
    assert meta["run"] == "part-tiny" and meta["attack_map_from"] == "ensemble(gradcam+layercam)"
    bad = client.post("/api/export/npz", data={"run": "part-tiny", "probe": "0", "source": "scorecam"})
    assert bad.status_code == 422 and "gradcam" in bad.json()["detail"]


def test_the_overlay_draws_the_cam_on_the_scale_the_mask_reads_it(client, run_root):
    import base64
    import io

    import numpy as np
    from PIL import Image

    from backend.services.render import scale_for
    from part.explain.images import jet_overlay

    body = client.post("/api/explain", data={"run": "part-tiny", "probe": "0", "methods": "gradcam,layercam",
                                             "ensemble": "true", "recipe": "paper", "threshold": "0.8"}).json()
    assert "w = 0.8" in body["overlay_scale"]
    x = RunDir(run_root / "part-tiny").load_probe_inputs()["x"][0].float()
    for result in body["results"]:
        shown = torch.tensor(result["importance"])
        full = torch.tensor(result["eps_map"]) >= body["eps"] - 1e-7
        assert torch.equal(shown > 0.5, full), result["method"]  # red-yellow exactly where the budget is eps
        overlay = np.asarray(Image.open(io.BytesIO(base64.b64decode(result["overlay_png"].split(",")[1]))))
        drawn = jet_overlay(x, shown, scale=scale_for(28)).astype(int)
        assert np.abs(overlay.astype(int) - drawn).max() <= 2, result["method"]

