"""Tests for part.data.datasets (on-disk format readers, subsets) and part.data.batching (batches, aligned augmentation)."""
import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from part.data.batching import batches, len_batches, random_crop_flip
from part.data.datasets import DATASETS, DatasetFormatError, DatasetNotFound, SubsetDataset, dataset_names, load_dataset, object_masks

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def rng_images(n, *shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


def check_item(ds, i, c, s):
    x, y, j = ds[i]
    assert x.dtype == torch.float32 and x.shape == (c, s, s)
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert isinstance(y, int) and 0 <= y < ds.num_classes
    assert isinstance(j, int) and j == i


# --- Fashion-MNIST (IDX) --------------------------------------------------------------------------

def write_idx(path, arr, magic, compress=True):
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    payload = header + arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)


def write_fashion(root, n_train=12, n_test=5, compress=True):
    ext = ".gz" if compress else ""
    out = {}
    for prefix, n, seed in (("train", n_train, 1), ("t10k", n_test, 2)):
        x, y = rng_images(n, 28, 28, seed=seed), np.arange(n, dtype=np.uint8) % 10
        write_idx(root / f"{prefix}-images-idx3-ubyte{ext}", x, 2051, compress)
        write_idx(root / f"{prefix}-labels-idx1-ubyte{ext}", y, 2049, compress)
        out[prefix] = (x, y)
    return out


@pytest.mark.parametrize("compress", [True, False])
def test_fashion_mnist_idx(tmp_path, compress):
    written = write_fashion(tmp_path, compress=compress)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        ds = load_dataset("fashion-mnist", split, data_dir=str(tmp_path))
        x, y = written[prefix]
        assert len(ds) == len(x) and ds.num_classes == 10 and ds.in_channels == 1 and ds.image_size == 28
        assert ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot"
        assert ds.images.dtype == torch.uint8 and ds.labels.dtype == torch.int64
        check_item(ds, 3, 1, 28)
        xb, yb = ds.get_batch(torch.arange(len(ds)))
        assert torch.equal(xb, torch.from_numpy(x)[:, None].float() / 255)
        assert yb.tolist() == y.tolist()


def test_fashion_mnist_env_var(tmp_path, monkeypatch):
    write_fashion(tmp_path)
    monkeypatch.setenv("PART_FASHION_MNIST_DIR", str(tmp_path))
    assert len(load_dataset("fashion-mnist", "test")) == 5


def test_fashion_mnist_corrupted(tmp_path):
    write_fashion(tmp_path)
    bad = tmp_path / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + b"\x00" * 20))  # image magic in a label file
    with pytest.raises(DatasetFormatError, match="train-labels-idx1-ubyte.gz"):
        load_dataset("fashion-mnist", "train", data_dir=str(tmp_path))
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(DatasetFormatError, match="train-labels-idx1-ubyte.gz"):
        load_dataset("fashion-mnist", "train", data_dir=str(tmp_path))
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", rng_images(5, 28, 28), 2051)
    truncated = gzip.decompress((tmp_path / "t10k-images-idx3-ubyte.gz").read_bytes())[:-10]
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(truncated))
    with pytest.raises(DatasetFormatError, match="t10k-images-idx3-ubyte.gz.*truncated"):
        load_dataset("fashion-mnist", "test", data_dir=str(tmp_path))


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist():
    train, test = load_dataset("fashion-mnist", "train"), load_dataset("fashion-mnist", "test")
    assert len(train) == 60000 and len(test) == 10000
    assert train.images.shape == (60000, 1, 28, 28)
    assert torch.bincount(train.labels).tolist() == [6000] * 10
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    check_item(test, 9999, 1, 28)


# --- CIFAR-10 (pickle) ----------------------------------------------------------------------------

def write_cifar(root, per_batch=3, meta=True):
    root.mkdir(parents=True, exist_ok=True)
    out = {"train": ([], []), "test": ([], [])}
    names = [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):
        x = rng_images(per_batch, 3072, seed=10 + k)
        y = [(k + j) % 10 for j in range(per_batch)]
        with open(root / name, "wb") as f:
            pickle.dump({b"data": x, b"labels": y, b"batch_label": name.encode()}, f)
        split = "test" if name == "test_batch" else "train"
        out[split][0].append(x)
        out[split][1].extend(y)
    if meta:
        with open(root / "batches.meta", "wb") as f:
            pickle.dump({b"label_names": [f"c{k}".encode() for k in range(10)]}, f)
    return {s: (np.concatenate(xs).reshape(-1, 3, 32, 32), ys) for s, (xs, ys) in out.items()}


@pytest.mark.parametrize("point_at_batches_dir", [False, True])
def test_cifar10_pickle(tmp_path, point_at_batches_dir):
    written = write_cifar(tmp_path / "cifar-10-batches-py")
    root = tmp_path / "cifar-10-batches-py" if point_at_batches_dir else tmp_path
    for split, n in (("train", 15), ("test", 3)):
        ds = load_dataset("cifar10", split, data_dir=str(root))
        assert len(ds) == n and (ds.num_classes, ds.in_channels, ds.image_size) == (10, 3, 32)
        assert ds.classes == [f"c{k}" for k in range(10)]
        check_item(ds, n - 1, 3, 32)
        x, y = written[split]
        xb, yb = ds.get_batch(torch.arange(n))
        assert torch.equal(xb, torch.from_numpy(x).float() / 255)
        assert yb.tolist() == y
        assert torch.equal(ds[1][0], torch.from_numpy(x[1]).float() / 255)


def test_cifar10_default_class_names_and_resize(tmp_path):
    write_cifar(tmp_path / "cifar-10-batches-py", meta=False)
    ds = load_dataset("cifar10", "test", data_dir=str(tmp_path), image_size=16)
    assert ds.classes[0] == "airplane" and ds.image_size == 16
    assert ds.images.shape == (3, 3, 16, 16) and ds.images.dtype == torch.uint8
    check_item(ds, 0, 3, 16)


def test_cifar10_missing(tmp_path):
    with pytest.raises(DatasetNotFound, match=str(tmp_path)) as e:
        load_dataset("cifar10", "train", data_dir=str(tmp_path))
    assert isinstance(e.value, FileNotFoundError)
    assert "cifar-10-batches-py" in str(e.value) and "data_dir" in str(e.value)


# --- SVHN (.mat) ----------------------------------------------------------------------------------

def test_svhn_mat(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    n = 6
    x_nchw = rng_images(n, 3, 32, 32, seed=5)
    y = np.array([[10], [1], [2], [10], [9], [5]], dtype=np.uint8)
    for split in ("train", "test"):
        scipy_io.savemat(str(tmp_path / f"{split}_32x32.mat"),
                         {"X": np.ascontiguousarray(x_nchw.transpose(2, 3, 1, 0)), "y": y})
    ds = load_dataset("svhn", "test", data_dir=str(tmp_path))
    assert len(ds) == n and (ds.num_classes, ds.in_channels, ds.image_size) == (10, 3, 32)
    assert ds.labels.tolist() == [0, 1, 2, 0, 9, 5]
    check_item(ds, 2, 3, 32)
    xb, _ = ds.get_batch(torch.arange(n))
    assert torch.equal(xb, torch.from_numpy(x_nchw).float() / 255)


def test_svhn_missing(tmp_path):
    with pytest.raises(DatasetNotFound, match="train_32x32.mat"):
        load_dataset("svhn", "train", data_dir=str(tmp_path))
    (tmp_path / "train_32x32.mat").write_bytes(b"garbage" * 20)
    with pytest.raises(DatasetFormatError, match="train_32x32.mat"):
        load_dataset("svhn", "train", data_dir=str(tmp_path))


# --- Tiny-ImageNet (JPEG tree) --------------------------------------------------------------------

def write_tiny_imagenet(root):
    from PIL import Image
    base = root / "tiny-imagenet-200"
    wnids = ["n02", "n01", "n03"]  # unsorted on purpose: class index follows sorted order
    (base / "val" / "images").mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (base / "words.txt").write_text("n01\tgoldfish, Carassius auratus\nn02\tcat\nn03\tbus, autobus\n")
    rng = np.random.default_rng(0)
    for w in wnids:
        (base / "train" / w / "images").mkdir(parents=True)
        for j in range(2):
            arr = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
            Image.fromarray(arr).save(base / "train" / w / "images" / f"{w}_{j}.JPEG")
    val = [("val_1.JPEG", "n03"), ("val_0.JPEG", "n01"), ("val_2.JPEG", "n02"), ("val_3.JPEG", "n01")]
    for fname, _ in val:
        Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8), mode="L").save(
            base / "val" / "images" / fname)  # greyscale, as some real ones are
    (base / "val" / "val_annotations.txt").write_text(
        "".join(f"{f}\t{w}\t0\t0\t63\t63\n" for f, w in val))


def test_tiny_imagenet_tree(tmp_path):
    write_tiny_imagenet(tmp_path)
    train = load_dataset("tiny-imagenet", "train", data_dir=str(tmp_path))
    assert len(train) == 6 and train.num_classes == 3 and train.image_size == 64
    assert train.classes == ["goldfish", "cat", "bus"]
    assert train.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert [f.name for f in train.files][:2] == ["n01_0.JPEG", "n01_1.JPEG"]
    check_item(train, 5, 3, 64)
    test = load_dataset("tiny-imagenet", "test", data_dir=str(tmp_path / "tiny-imagenet-200"))
    assert [f.name for f in test.files] == ["val_0.JPEG", "val_1.JPEG", "val_2.JPEG", "val_3.JPEG"]
    assert test.labels.tolist() == [0, 2, 1, 0]
    xb, yb = test.get_batch(torch.tensor([3, 1]))
    assert xb.shape == (2, 3, 64, 64) and xb.dtype == torch.float32 and yb.tolist() == [0, 2]
    assert torch.equal(xb[:, 0], xb[:, 1])  # greyscale converted to RGB
    small = load_dataset("tiny-imagenet", "test", data_dir=str(tmp_path), image_size=32)
    check_item(small, 0, 3, 32)


def test_tiny_imagenet_missing(tmp_path):
    with pytest.raises(DatasetNotFound, match="wnids.txt") as e:
        load_dataset("tiny-imagenet", "train", data_dir=str(tmp_path))
    assert str(tmp_path) in str(e.value)


# --- ImageFolder (PNG tree, lossless) -------------------------------------------------------------

def write_imagefolder(root, test_name="test", sizes=None):
    from PIL import Image
    written, seed = {}, 0
    for split in ("train", test_name):
        for k, cls in enumerate(["dog", "cat"]):  # sorted: cat=0, dog=1
            (root / split / cls).mkdir(parents=True)
            for j in range(2):
                s = (sizes or {}).get((split, cls, j), 8)
                seed += 1
                arr = rng_images(1, s, s, 3, seed=seed)[0]
                path = root / split / cls / f"img{j}.png"
                Image.fromarray(arr).save(path)
                written[path] = arr
    return written


@pytest.mark.parametrize("test_name", ["test", "val"])
def test_imagefolder_tree(tmp_path, test_name):
    written = write_imagefolder(tmp_path, test_name)
    for split in ("train", "test"):
        ds = load_dataset("imagefolder", split, data_dir=str(tmp_path))
        assert ds.classes == ["cat", "dog"] and ds.num_classes == 2
        assert len(ds) == 4 and ds.image_size == 8 and ds.in_channels == 3
        assert ds.labels.tolist() == [0, 0, 1, 1]
        for i in range(len(ds)):
            check_item(ds, i, 3, 8)
            expected = torch.from_numpy(written[ds.files[i]]).permute(2, 0, 1).float() / 255
            assert torch.equal(ds[i][0], expected)
        xb, yb = ds.get_batch(torch.tensor([2, 0]))
        assert torch.equal(xb[0], ds[2][0]) and yb.tolist() == [1, 0]


def test_imagefolder_size_mismatch_and_resize(tmp_path):
    write_imagefolder(tmp_path, sizes={("train", "dog", 1): 12})
    ds = load_dataset("imagefolder", "train", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="image_size"):
        ds.get_batch(torch.arange(len(ds)))
    ds = load_dataset("imagefolder", "train", data_dir=str(tmp_path), image_size=10)
    xb, _ = ds.get_batch(torch.arange(len(ds)))
    assert xb.shape == (4, 3, 10, 10)


def test_imagefolder_missing(tmp_path):
    with pytest.raises(DatasetNotFound, match=str(tmp_path / "train")):
        load_dataset("imagefolder", "train", data_dir=str(tmp_path))


# --- names, errors, subsets -----------------------------------------------------------------------

def test_registry_and_errors(tmp_path):
    assert dataset_names() == list(DATASETS)
    assert {"fashion-mnist", "cifar10", "svhn", "tiny-imagenet", "imagefolder"} <= set(DATASETS)
    assert DATASETS["fashion-mnist"].default_eps == 0.1
    assert DATASETS["cifar10"].default_eps == pytest.approx(8 / 255)
    with pytest.raises(ValueError, match="fashion-mnist.*cifar10.*svhn.*tiny-imagenet.*imagefolder"):
        load_dataset("mnist-but-wrong", "train", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="split"):
        load_dataset("fashion-mnist", "validation", data_dir=str(tmp_path))


def test_fashion_mnist_missing_message(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        load_dataset("fashion-mnist", "train", data_dir=str(tmp_path / "nowhere"))
    msg = str(e.value)
    assert str(tmp_path / "nowhere") in msg and "train-images-idx3-ubyte.gz" in msg
    assert "dataset-fashion-mnist" in msg and "data_dir" in msg


def test_subset(tmp_path):
    write_fashion(tmp_path, n_train=40)
    full = load_dataset("fashion-mnist", "train", data_dir=str(tmp_path))
    a = load_dataset("fashion-mnist", "train", data_dir=str(tmp_path), subset=10)
    b = load_dataset("fashion-mnist", "train", data_dir=str(tmp_path), subset=10)
    assert isinstance(a, SubsetDataset) and len(a) == 10
    originals = [a.original_index(i) for i in range(10)]
    assert originals == [b.original_index(i) for i in range(10)]
    assert originals == sorted(set(originals)) and originals != list(range(10))
    assert (a.num_classes, a.in_channels, a.image_size, a.classes) == \
        (full.num_classes, full.in_channels, full.image_size, full.classes)
    for i in range(10):
        x, y, j = a[i]
        assert j == i and torch.equal(x, full[originals[i]][0]) and y == full[originals[i]][1]
    xb, yb = a.get_batch(torch.tensor([9, 0]))
    assert torch.equal(xb[0], full[originals[9]][0]) and yb[1] == full.labels[originals[0]]
    assert a.labels.tolist() == full.labels[originals].tolist()
    assert sorted(torch.cat([idx for _, _, idx in batches(a, 3, shuffle=True)]).tolist()) == list(range(10))
    whole = load_dataset("fashion-mnist", "train", data_dir=str(tmp_path), subset=1000)
    assert len(whole) == 40


def test_a_subset_gives_object_masks_only_where_its_base_does(tmp_path):
    """`part eval --attacks alignment --n N` on Fashion-MNIST reads masks through a subset: None, not a crash."""
    write_fashion(tmp_path, n_train=40)
    plain = load_dataset("fashion-mnist", "train", data_dir=str(tmp_path), subset=10)
    assert object_masks(plain, torch.arange(3)) is None
    clutter = load_dataset("fashion-mnist-clutter", "train", data_dir=str(tmp_path), subset=10)
    base = load_dataset("fashion-mnist-clutter", "train", data_dir=str(tmp_path))
    assert torch.equal(object_masks(clutter, torch.tensor([2, 0])), object_masks(base, clutter.indices[[2, 0]]))


# --- batching -------------------------------------------------------------------------------------

def test_batches_cover_and_determinism(tmp_path):
    write_fashion(tmp_path, n_train=23)
    ds = load_dataset("fashion-mnist", "train", data_dir=str(tmp_path))
    assert len_batches(ds, 5) == 5 and len_batches(ds, 5, drop_last=True) == 4
    ordered = list(batches(ds, 5, shuffle=False))
    assert torch.cat([b[2] for b in ordered]).tolist() == list(range(23))
    epoch = list(batches(ds, 5, shuffle=True, seed=3))
    assert len(epoch) == 5
    idx = torch.cat([b[2] for b in epoch])
    assert sorted(idx.tolist()) == list(range(23)) and idx.tolist() != list(range(23))
    again = torch.cat([b[2] for b in batches(ds, 5, shuffle=True, seed=3)])
    other = torch.cat([b[2] for b in batches(ds, 5, shuffle=True, seed=4)])
    assert torch.equal(idx, again) and not torch.equal(idx, other)
    for x, y, i in epoch:
        assert x.shape == (len(i), 1, 28, 28) and y.dtype == torch.int64 and i.dtype == torch.int64
        assert torch.equal(y, ds.labels[i]) and torch.equal(x, ds.images[i].float() / 255)
    dropped = list(batches(ds, 5, shuffle=True, seed=3, drop_last=True))
    assert len(dropped) == 4 and all(len(b[2]) == 5 for b in dropped)


def test_batches_generic_dataset():
    class Plain(torch.utils.data.Dataset):
        def __len__(self):
            return 7

        def __getitem__(self, i):
            return torch.full((1, 2, 2), i / 10), i % 2, i

    (x, y, i), = list(batches(Plain(), 10, shuffle=False))
    assert x.shape == (7, 1, 2, 2) and y.tolist() == [0, 1, 0, 1, 0, 1, 0]


# --- augmentation ---------------------------------------------------------------------------------

def test_random_crop_flip_keeps_maps_aligned():
    g = torch.Generator().manual_seed(0)
    B, H, W = 64, 12, 12
    m = torch.rand(B, H, W) + 0.1                       # strictly positive: padding shows as 0
    x = torch.cat([m[:, None], torch.rand(B, 2, H, W)], dim=1)
    m4 = torch.stack([m, 2 * m], dim=1)
    xa, ma, none, m4a = random_crop_flip(x, m, None, m4, padding=3, generator=g)
    assert none is None
    assert xa.shape == x.shape and ma.shape == m.shape and m4a.shape == m4.shape
    assert torch.equal(ma, xa[:, 0]) and torch.equal(m4a[:, 0], ma) and torch.equal(m4a[:, 1], 2 * ma)
    assert (ma == 0).any()                               # some crops reach into the zero padding
    changed = [not torch.equal(xa[b], x[b]) for b in range(B)]
    assert any(changed)
    # each output is a shifted (and maybe mirrored) window of the zero-padded input
    padded = torch.nn.functional.pad(x, (3, 3, 3, 3))
    for b in range(B):
        windows = [padded[b, :, r:r + H, c:c + W] for r in range(7) for c in range(7)]
        assert any(torch.equal(xa[b], w) or torch.equal(xa[b], w.flip(-1)) for w in windows)


def test_random_crop_flip_flip_only_and_determinism():
    x = torch.rand(32, 3, 8, 8)
    xa, = random_crop_flip(x, padding=0, generator=torch.Generator().manual_seed(1))
    flipped = [torch.equal(xa[b], x[b].flip(-1)) for b in range(32)]
    kept = [torch.equal(xa[b], x[b]) for b in range(32)]
    assert all(f or k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)
    xb, = random_crop_flip(x, padding=0, generator=torch.Generator().manual_seed(1))
    assert torch.equal(xa, xb)
    xn, = random_crop_flip(x, padding=0, flip=False)
    assert torch.equal(xn, x)
    with pytest.raises(ValueError):
        random_crop_flip(x, torch.rand(32, 7, 8))


def test_random_crop_flip_bool_map():
    x = torch.rand(4, 1, 6, 6)
    mask = x[:, 0] > 0.5
    xa, ma = random_crop_flip(x, mask, padding=2, generator=torch.Generator().manual_seed(2))
    assert ma.dtype == torch.bool and torch.equal(ma, (xa[:, 0] > 0.5))
