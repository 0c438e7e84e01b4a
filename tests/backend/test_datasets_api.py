"""GET /api/datasets and dataset samples."""

import io

import numpy as np
from PIL import Image

from part.data.datasets import load_dataset


def test_datasets_say_which_are_installed(client):
    sets = {d["name"]: d for d in client.get("/api/datasets").json()}
    assert sets["fashion-mnist"]["available"] is True and sets["fashion-mnist"]["sizes"] == {"test": 10000}
    assert sets["fashion-mnist"]["classes"][0] == "T-shirt/top"
    assert {"cifar10", "svhn", "tiny-imagenet"} <= set(sets)


def test_a_sample_is_the_dataset_image_and_label(client):
    x, y, _ = load_dataset("fashion-mnist", "test")[12]
    body = client.get("/api/datasets/fashion-mnist/samples/12").json()
    assert body["label"] == y and body["index"] == 12
    png = client.get("/api/datasets/fashion-mnist/samples/12/image").content
    pixels = Image.open(io.BytesIO(png))
    assert pixels.size == (28, 28)
    assert np.asarray(pixels).tolist() == (x[0] * 255).round().byte().tolist()


def test_sample_pages_and_errors(client):
    page = client.get("/api/datasets/fashion-mnist/samples", params={"offset": 9998, "limit": 5}).json()
    assert [s["index"] for s in page] == [9998, 9999]
    assert client.get("/api/datasets/fashion-mnist/samples/10000").status_code == 404
    unknown = client.get("/api/datasets/mnist/samples/0")
    assert unknown.status_code == 404 and "accepted: fashion-mnist" in unknown.json()["detail"]
    assert client.get("/api/datasets/fashion-mnist/samples/0", params={"split": "val"}).status_code == 422
    assert client.get("/api/datasets/fashion-mnist/samples", params={"limit": 101}).status_code == 422
