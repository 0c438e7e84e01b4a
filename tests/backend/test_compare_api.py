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
    assert "no checkpoint for epoch 5" in body["cells"][1]["message"]
    many = ",".join(["part-tiny"] * 9 + [f"r{i}" for i in range(9)])
    assert client.post("/api/compare", data={"runs": many, "probe": "0"}).status_code == 422
    assert client.post("/api/compare", data={"runs": "part-tiny,ghost", "probe": "0"}).status_code == 404
    assert client.post("/api/compare", data={"runs": "part-tiny", "probe": "0", "epochs": "x"}).status_code == 422
