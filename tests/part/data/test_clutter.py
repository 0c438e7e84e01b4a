"""The cluttered Fashion-MNIST testbed: deterministic per index across processes, and its object mask is
the placed garment's silhouette. Built on a small real-format IDX file, like the other reader tests."""

import gzip
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from part.data import clutter
from part.data.datasets import DATASETS, load_dataset, object_masks
from part.evaluation.evaluate import evaluate


def _idx(path: Path, array: np.ndarray, magic: int) -> None:
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


@pytest.fixture(scope="module")
def fmnist_dir(tmp_path_factory) -> Path:
    """40 train and 20 test 'garments': blobs of varied shape and brightness on black, in IDX files."""
    root = tmp_path_factory.mktemp("fmnist")
    rng = np.random.default_rng(3)
    for prefix, n in (("train", 40), ("t10k", 20)):
        images = np.zeros((n, 28, 28), np.uint8)
        for k in range(n):
            h, w = rng.integers(10, 26, 2)
            top, left = (28 - h) // 2, (28 - w) // 2
            images[k, top:top + h, left:left + w] = rng.integers(60, 256, (h, w))
            images[k, top + h // 2, left:left + w // 3] = 5  # a dark seam inside: not on the silhouette
        _idx(root / f"{prefix}-images-idx3-ubyte.gz", images, 2051)
        _idx(root / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10, 2049)
    return root


def _digest(root: Path, split: str, index: int, canvas: int) -> str:
    code = ("import hashlib,torch;from part.data.datasets import load_dataset,object_masks;"
            f"ds=load_dataset('fashion-mnist-clutter','{split}',data_dir='{root}',image_size={canvas});"
            f"x,_=ds.get_batch(torch.tensor([{index}]));m=object_masks(ds,torch.tensor([{index}]));"
            "print(hashlib.sha256(x.numpy().tobytes()+m.numpy().tobytes()).hexdigest())")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_same_index_same_image_and_mask_in_another_process_and_order(fmnist_dir):
    ds = load_dataset("fashion-mnist-clutter", "train", data_dir=str(fmnist_dir))
    later_first = ds.get_batch(torch.tensor([7, 3]))[0]  # made in another order than below
    fresh = load_dataset("fashion-mnist-clutter", "train", data_dir=str(fmnist_dir))
    x, _ = fresh.get_batch(torch.tensor([3]))
    assert torch.equal(x[0], later_first[1])
    here = hashlib.sha256(x.numpy().tobytes() + object_masks(fresh, torch.tensor([3])).numpy().tobytes()).hexdigest()
    assert _digest(fmnist_dir, "train", 3, clutter.DEFAULT_CANVAS) == here
    # another index, split or canvas is another image
    assert not torch.equal(fresh.get_batch(torch.tensor([4]))[0][0, :, :28, :28], x[0, :, :28, :28])
    test = load_dataset("fashion-mnist-clutter", "test", data_dir=str(fmnist_dir))
    assert not torch.equal(test.get_batch(torch.tensor([3]))[0], x)


def test_object_mask_is_the_placed_silhouette(fmnist_dir):
    plain = load_dataset("fashion-mnist", "train", data_dir=str(fmnist_dir))
    ds = load_dataset("fashion-mnist-clutter", "train", data_dir=str(fmnist_dir), image_size=48)
    assert ds.image_size == 48 and DATASETS["fashion-mnist-clutter"].masks_in_data
    index = torch.arange(len(ds))
    x, y = ds.get_batch(index)
    masks = object_masks(ds, index)
    garments = plain.get_batch(index)[0][:, 0]
    assert x.shape == (40, 1, 48, 48) and masks.shape == (40, 48, 48) and torch.equal(y, plain.labels)
    tolerance = 5 * clutter.NOISE_STD
    for k in range(len(ds)):
        silhouette = garments[k] > clutter.OBJECT_THRESHOLD
        rows, cols = masks[k].nonzero(as_tuple=True)
        top, left = int(rows.min()) - int(silhouette.nonzero()[:, 0].min()), \
            int(cols.min()) - int(silhouette.nonzero()[:, 1].min())
        placed = torch.zeros(48, 48, dtype=torch.bool)
        placed[top:top + 28, left:left + 28] = silhouette
        assert torch.equal(masks[k], placed)  # the silhouette, shifted, nothing else
        # inside it the image is the garment (plus noise), not the clutter
        inside = (x[k, 0][masks[k]] - garments[k][silhouette]).abs()
        assert float(inside.max()) <= tolerance
    # clutter lies outside the garment: some bright background pixels exist beyond the noise
    assert float(x[:, 0][~masks].max()) > 0.2


def test_subset_and_canvas_errors(fmnist_dir):
    sub = load_dataset("fashion-mnist-clutter", "test", data_dir=str(fmnist_dir), subset=5)
    full = load_dataset("fashion-mnist-clutter", "test", data_dir=str(fmnist_dir))
    for i in range(5):
        original = sub.original_index(i)
        assert torch.equal(sub.get_batch(torch.tensor([i]))[0], full.get_batch(torch.tensor([original]))[0])
        assert torch.equal(object_masks(sub, torch.tensor([i])), object_masks(full, torch.tensor([original])))
    with pytest.raises(ValueError, match="canvas must be 28..256"):
        load_dataset("fashion-mnist-clutter", "test", data_dir=str(fmnist_dir), image_size=20)
    assert object_masks(load_dataset("fashion-mnist", "test", data_dir=str(fmnist_dir)), torch.arange(2)) is None


def test_a_subset_of_a_dataset_without_masks_has_none(fmnist_dir):
    """`part eval --n 1000` on a Fashion-MNIST run takes a subset: asking it for masks must say none, not fail."""
    sub = load_dataset("fashion-mnist", "test", data_dir=str(fmnist_dir), subset=5)
    assert len(sub) == 5 and object_masks(sub, torch.arange(3)) is None


def test_alignment_measures_energy_on_the_dataset_masks(fmnist_dir, small_cnn):
    ds = load_dataset("fashion-mnist-clutter", "test", data_dir=str(fmnist_dir))
    result = evaluate(small_cnn, ds, "alignment", n=6, batch_size=4)["attacks"]["alignment"]
    assert result["n"] == 6 and 0 <= result["energy"] <= 1
    assert "placed" in result["object_mask"]
    fraction = float(object_masks(ds, torch.arange(6)).float().flatten(1).mean(1).mean())
    assert result["object_fraction"] == pytest.approx(fraction, abs=1e-4)
