"""POST /api/compare: the runs x epochs grid, from stored probes or computed."""

import torch

from part.runs import RunDir


def test_probe_grid_is_read_from_the_stored_probes(client, run_root):
    body = client.post("/api/compare", data={"runs": "at-tiny,part-tiny", "probe": "2"}).json()
    assert [(c["run"], c["epoch"], c["source"]) for c in body["cells"]] == [
        ("at-tiny", 1, "stored"), ("at-tiny", 2, "stored"), ("part-tiny", 1, "stored"), ("part-tiny", 2, "stored")]
    stored = RunDir(run_root / "part-tiny").load_probes(2)
    cell = body["cells"][3]
    assert torch.allclose(torch.tensor(cell["heatmap"]), stored["cam"][2].float(), atol=1e-4)
    assert cell["prediction"]["class_index"] == int(stored["pred"][2]) and body["target"] == "label"


def test_a_dataset_sample_equal_to_a_probe_is_stored_and_others_are_computed(client, run_root):
    probe_index = int(RunDir(run_root / "at-tiny").load_probe_inputs()["index"][0])
    stored = client.post("/api/compare", data={"runs": "at-tiny", "index": str(probe_index)}).json()
    assert {c["source"] for c in stored["cells"]} == {"stored"}
    other = client.post("/api/compare", data={"runs": "at-tiny", "index": "5000", "epochs": "2"}).json()
    assert [(c["epoch"], c["source"]) for c in other["cells"]] == [(2, "computed")]


def test_stored_and_computed_cells_agree(client):
    stored = client.post("/api/compare", data={"runs": "part-tiny", "probe": "1", "epochs": "2"}).json()["cells"][0]
    computed = client.post("/api/compare", data={"runs": "part-tiny", "probe": "1", "epochs": "2",
                                                 "method": "gradcam"}).json()["cells"][0]
    assert computed["source"] == "stored"  # gradcam is the run's own method
    layercam = client.post("/api/compare", data={"runs": "part-tiny", "probe": "1", "epochs": "2",
                                                 "method": "layercam"}).json()["cells"][0]
    assert layercam["source"] == "computed" and layercam["methods"] == ["layercam"]
    assert layercam["prediction"]["class_index"] == stored["prediction"]["class_index"]


def test_missing_epochs_are_marked_and_limits_hold(client):
    body = client.post("/api/compare", data={"runs": "part-tiny", "probe": "0", "epochs": "2,5"}).json()
    assert [(c["epoch"], c["available"]) for c in body["cells"]] == [(2, True), (5, False)]
    assert body["missing"] == [{"run": "part-tiny", "epochs": [5], "message":
                                "run 'part-tiny' has checkpoints for epochs 1-2 only; epoch 5 left empty in its row"}]
    many = ",".join(["part-tiny"] * 9 + [f"r{i}" for i in range(9)])
    assert client.post("/api/compare", data={"runs": many, "probe": "0"}).status_code == 422
    assert client.post("/api/compare", data={"runs": "part-tiny,ghost", "probe": "0"}).status_code == 404
    assert client.post("/api/compare", data={"runs": "part-tiny", "probe": "0", "epochs": "x"}).status_code == 422


def test_a_shorter_run_gets_one_note_and_the_rest_of_the_grid(checkpoints):
    from tests.backend.conftest import make_client

    for name in ("checkpoints/epoch_0002.pt", "probes/epoch_0002.pt"):
        (checkpoints / "at-tiny" / name).unlink()
    with make_client(checkpoints) as client:
        body = client.post("/api/compare", data={"runs": "part-tiny,at-tiny", "probe": "0"}).json()
    assert body["epochs"] == [1, 2]  # every run's epochs: the grid stays rectangular
    assert [(c["run"], c["epoch"], c["available"]) for c in body["cells"]] == [
        ("part-tiny", 1, True), ("part-tiny", 2, True), ("at-tiny", 1, True), ("at-tiny", 2, False)]
    assert body["cells"][3]["message"] is None  # said once, below, not per cell
    assert body["missing"] == [{"run": "at-tiny", "epochs": [2], "message":
                                "run 'at-tiny' has checkpoints for epoch 1 only; epoch 2 left empty in its row"}]
    diff = body["difference"]["cells"]
    assert [(c["epoch"], c["available"]) for c in diff] == [(1, True), (2, False)]


def test_energy_on_the_object_is_the_stored_cams_share_on_bright_pixels(client, run_root):
    from part.explain.alignment import energy_on_object, object_mask

    body = client.post("/api/compare", data={"runs": "at-tiny,part-tiny", "probe": "1"}).json()
    run = RunDir(run_root / "part-tiny")
    x = run.load_probe_inputs()["x"][1:2].float()
    cam = run.load_probes(2)["cam"][1:2].float()
    mask = object_mask(x, "fashion-mnist")
    expected = float(energy_on_object(cam, mask)[0])
    cell = body["cells"][3]
    assert (cell["run"], cell["epoch"]) == ("part-tiny", 2)
    assert abs(cell["energy_on_object"] - expected) < 1e-3 and 0 < expected < 1
    assert body["object_mask"]["known"] and abs(body["object_mask"]["fraction"] - float(mask.float().mean())) < 1e-3


def test_the_difference_row_is_b_minus_a_with_iou_and_spearman(client, run_root):
    from part.explain.alignment import spearman, top_k_iou

    body = client.post("/api/compare", data={"runs": "at-tiny,part-tiny", "probe": "1", "top_k": "10"}).json()
    diff = body["difference"]
    assert (diff["run_a"], diff["run_b"], diff["top_k"], diff["method"]) == ("at-tiny", "part-tiny", 10.0, "gradcam")
    a = RunDir(run_root / "at-tiny").load_probes(2)["cam"][1:2].float()
    b = RunDir(run_root / "part-tiny").load_probes(2)["cam"][1:2].float()
    cell = diff["cells"][1]
    assert cell["epoch"] == 2 and cell["difference_png"].startswith("data:image/png;base64,")
    assert torch.allclose(torch.tensor(cell["heatmap"]), (b - a)[0], atol=2e-3)
    assert abs(cell["iou"] - float(top_k_iou(a, b, 10)[0])) < 1e-3
    assert abs(cell["spearman"] - float(spearman(a, b)[0])) < 1e-3
    assert abs(cell["mean_abs"] - float((b - a).abs().mean())) < 1e-3
    assert diff["scale"] >= max(c["max_abs"] for c in diff["cells"]) - 1e-4
    swapped = client.post("/api/compare", data={"runs": "at-tiny,part-tiny", "probe": "1", "top_k": "10",
                                                "pair": "part-tiny,at-tiny"}).json()["difference"]["cells"][1]
    assert torch.allclose(torch.tensor(swapped["heatmap"]), -torch.tensor(cell["heatmap"]), atol=2e-3)
    assert swapped["iou"] == cell["iou"] and swapped["spearman"] == cell["spearman"]


def test_pairs_and_top_k_are_checked(client):
    base = {"runs": "at-tiny,part-tiny", "probe": "0"}
    for pair in ("at-tiny,at-tiny", "at-tiny,ghost", "at-tiny"):
        r = client.post("/api/compare", data={**base, "pair": pair})
        assert r.status_code == 422 and "pair" in r.json()["detail"], (pair, r.text)
    assert "at-tiny" in client.post("/api/compare", data={**base, "pair": "at-tiny,ghost"}).json()["detail"]
    for k in ("0", "101", "nan"):
        assert client.post("/api/compare", data={**base, "top_k": k}).status_code == 422
    two = client.post("/api/compare", data={**base, "method": "gradcam,layercam"})
    assert two.status_code == 422 and "one CAM method" in two.json()["detail"]
    one = client.post("/api/compare", data={"runs": "at-tiny", "probe": "0"}).json()
    assert one["difference"] is None and all(c["energy_on_object"] is not None for c in one["cells"])


def test_no_object_mask_says_so_instead_of_a_number(client, monkeypatch):
    import dataclasses

    from part.data.datasets import DATASETS

    monkeypatch.setitem(DATASETS, "fashion-mnist", dataclasses.replace(DATASETS["fashion-mnist"], object_threshold=None))
    body = client.post("/api/compare", data={"runs": "at-tiny,part-tiny", "probe": "0"}).json()
    assert body["object_mask"]["known"] is False
    assert body["object_mask"]["message"].startswith("no object mask is known for dataset fashion-mnist")
    assert all(c["energy_on_object"] is None for c in body["cells"])
    assert all(c["energy_change"] is None for c in body["difference"]["cells"] if c["available"])


def test_the_figure_exports_as_png_and_pdf(client):
    import io

    from PIL import Image

    base = {"runs": "at-tiny,part-tiny", "probe": "0"}
    png = client.post("/api/compare/figure", data=base)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.headers["content-disposition"] == 'attachment; filename="figure2-at-tiny-vs-part-tiny.png"'
    width, height = Image.open(io.BytesIO(png.content)).size
    one = client.post("/api/compare/figure", data={**base, "runs": "at-tiny", "epochs": "1"}).content
    one_width, one_height = Image.open(io.BytesIO(one)).size
    assert abs((width - one_width) - 200 * (1.25 + 0.08)) <= 2  # one more epoch column (200 dpi)
    assert abs((height - one_height) - 2 * 200 * (1.25 + 0.42)) <= 2  # two more rows: a run and the difference
    pdf = client.post("/api/compare/figure", data={**base, "format": "pdf"})
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content[:5] == b"%PDF-" and pdf.content.rstrip().endswith(b"%%EOF")
    bad = client.post("/api/compare/figure", data={**base, "format": "svg"})
    assert bad.status_code == 422 and "png" in bad.json()["detail"] and "pdf" in bad.json()["detail"]
    empty = client.post("/api/compare/figure", data={**base, "epochs": "7"})
    assert empty.status_code == 404 and "nothing to draw" in empty.json()["detail"]


def test_clutter_runs_take_the_object_mask_from_the_dataset_and_outline_it(checkpoints):
    """On the cluttered testbed the mask is the placed garment (not bright pixels: the clutter is bright
    too); probes and indexed samples have it, an upload does not, and the grid gets its outline."""
    from tests.backend.conftest import TINY, make_client, png, shirt
    from part.explain.alignment import energy_on_object
    from part.training.config import preset
    from part.data.datasets import load_dataset, object_masks
    from part.training.trainer import train

    train(preset("fmnist-clutter-part", burn_in_epochs=0, **{**TINY, "epochs": 1}), checkpoints / "clutter-tiny")
    run = RunDir(checkpoints / "clutter-tiny")
    index = run.load_probe_inputs()["index"][2:3]
    mask = object_masks(load_dataset("fashion-mnist-clutter", "test"), index)
    with make_client(checkpoints) as c:
        body = c.post("/api/compare", data={"runs": "clutter-tiny", "probe": "2"}).json()
        known = body["object_mask"]
        assert known["known"] and known["outline_png"].startswith("data:image/png;base64,")
        assert abs(known["fraction"] - float(mask.float().mean())) < 1e-3 and "placed" in known["message"]
        cam = run.load_probes(1)["cam"][2:3].float()
        assert abs(body["cells"][0]["energy_on_object"] - float(energy_on_object(cam, mask)[0])) < 1e-3
        by_index = c.post("/api/compare", data={"runs": "clutter-tiny", "index": str(int(index[0]))}).json()
        assert by_index["object_mask"]["fraction"] == known["fraction"]
        upload = c.post("/api/compare", data={"runs": "clutter-tiny"},
                        files={"file": ("s.png", png(shirt(40)), "image/png")}).json()["object_mask"]
        assert upload["known"] is False and upload["outline_png"] is None
        assert "own samples only" in upload["message"]


def test_stored_probes_stand_in_for_a_dropped_checkpoint(checkpoints):
    """Shipped runs keep their per-epoch probe CAMs but may drop the weights of early epochs: the run's own
    method still fills those cells from the probes; another method needs the weights and says so."""
    from tests.backend.conftest import make_client

    (checkpoints / "at-tiny" / "checkpoints" / "epoch_0001.pt").unlink()
    with make_client(checkpoints) as client:
        detail = client.get("/api/runs/at-tiny").json()
        assert detail["epochs"] == [2] and detail["probe_epochs"] == [1, 2]
        own = client.post("/api/compare", data={"runs": "at-tiny", "probe": "0"}).json()
        assert [(c["epoch"], c["available"], c["source"]) for c in own["cells"]] == [(1, True, "stored"),
                                                                                       (2, True, "stored")]
        other = client.post("/api/compare", data={"runs": "at-tiny", "probe": "0", "method": "layercam"}).json()
        assert [(c["epoch"], c["available"]) for c in other["cells"]] == [(2, True)]
        assert other["epochs"] == [2]


def test_runs_of_another_input_size_are_said_once_not_per_cell(checkpoints):
    from part.training.config import preset
    from part.training.trainer import train
    from tests.backend.conftest import TINY, make_client

    for name in ("clutter-at-tiny", "clutter-part-tiny"):
        train(preset(f"fmnist-{name.rsplit('-', 1)[0]}", **TINY, burn_in_epochs=1), checkpoints / name, progress=False)
    with make_client(checkpoints) as client:
        body = client.post("/api/compare", data={"runs": "part-tiny,clutter-at-tiny,clutter-part-tiny",
                                                 "probe": "0"}).json()
    assert body["sizes"] == ["clutter-at-tiny and clutter-part-tiny take 40x40 images; this probe image is 28x28 (as part-tiny takes it), so "
                             "their rows stay empty: compare runs of one input size, or put a 40x40 run first"]
    cells = [c for c in body["cells"] if c["run"].startswith("clutter")]
    assert cells and all(c["source"] == "size" and c["input_size"] == [1, 40] and c.get("message") is None
                         for c in cells)
    assert {c["source"] for c in body["cells"] if c["run"] == "part-tiny"} == {"stored"}
