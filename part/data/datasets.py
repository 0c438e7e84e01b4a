"""Dataset layer: readers for Fashion-MNIST, CIFAR-10, SVHN, Tiny-ImageNet and ImageFolder trees, the
dataset registry, and fixed subsets. Batching and augmentation are in part.data.batching."""
from __future__ import annotations

import gzip
import math
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from part.data.clutter import DEFAULT_CANVAS, ClutterDataset
from part.data.safe_pickle import RefusedPickle, load_plain_pickle

__all__ = [
    "DATASETS", "DEFAULT_DATASET", "DatasetInfo", "DatasetNotFound", "DatasetFormatError",
    "InMemoryDataset", "ImageFileDataset", "SubsetDataset", "data_dir_env", "dataset_names",
    "default_data_roots", "load_dataset", "mask_dataset_names", "object_masks",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck"]


class DatasetNotFound(FileNotFoundError):
    """The dataset files are not where they were looked for."""


class DatasetFormatError(ValueError):
    """A dataset file exists but is corrupted or not in the expected format."""


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int      # 0: depends on the data (imagefolder)
    in_channels: int
    image_size: int       # 0: depends on the data (imagefolder)
    default_eps: float    # standard L-inf evaluation budget
    description: str
    object_threshold: float | None = None  # object mask = pixels brighter than this; None: no mask is known
    masks_in_data: bool = False  # the dataset itself gives each sample's object mask (object_masks(indices))


DATASETS: dict[str, DatasetInfo] = {info.name: info for info in [
    DatasetInfo("fashion-mnist", 10, 1, 28, 0.1, "Fashion-MNIST, 28x28 greyscale, 60k/10k", object_threshold=0.1),
    DatasetInfo("fashion-mnist-clutter", 10, 1, DEFAULT_CANVAS, 0.1,
                "Fashion-MNIST garments placed at random on a 40x40 canvas (image_size sets it) among dimmed "
                "fragments of other garments, with each garment's silhouette as its object mask; 60k/10k",
                masks_in_data=True),
    DatasetInfo("cifar10", 10, 3, 32, 8 / 255, "CIFAR-10, 32x32 RGB, 50k/10k"),
    DatasetInfo("svhn", 10, 3, 32, 8 / 255, "SVHN digits, 32x32 RGB, 73k/26k"),
    DatasetInfo("tiny-imagenet", 200, 3, 64, 8 / 255, "Tiny-ImageNet-200, 64x64 RGB, 100k/10k (val)"),
    DatasetInfo("imagefolder", 0, 3, 0, 8 / 255, "any <dir>/{train,test}/<class>/<image> tree"),
]}
DEFAULT_DATASET = "fashion-mnist"
_DEFAULT_DIRS = {"fashion-mnist": "/usr/share/datasets/fashion-mnist"}
_MADE_FROM = {"fashion-mnist-clutter": "fashion-mnist"}  # derived datasets read their source's files


def dataset_names() -> list[str]:
    return list(DATASETS)


def mask_dataset_names() -> list[str]:
    """The datasets that give every sample's exact object mask (`object_masks`), e.g. for the oracle recipe."""
    return [name for name, info in DATASETS.items() if info.masks_in_data]


def data_dir_env(name: str) -> str:
    """The environment variable naming the folder of dataset `name`: PART_CIFAR10_DIR, ..."""
    return "PART_" + name.upper().replace("-", "_") + "_DIR"


def default_data_roots(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The folders datasets are read from when no data_dir is given, resolved, without repeats.

    The default folders (the Debian Fashion-MNIST package's) and every PART_<NAME>_DIR that is set
    in `environ` (os.environ by default). The ./data fallback is left out: it depends on the working
    directory.
    """
    environ = os.environ if environ is None else environ
    found = list(_DEFAULT_DIRS.values()) + [environ[data_dir_env(n)] for n in DATASETS
                                            if environ.get(data_dir_env(n))]
    roots: list[Path] = []
    for folder in found:
        path = Path(folder).expanduser().resolve()
        if path not in roots:
            roots.append(path)
    return roots


# ---------------------------------------------------------------------------------------------
# Dataset classes
# ---------------------------------------------------------------------------------------------

class InMemoryDataset(Dataset):
    """Images held as a uint8 tensor [N,C,H,W], labels as int64 [N]."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: Sequence[str], name: str = ""):
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[2] != images.shape[3]:
            raise ValueError(f"images must be uint8 [N,C,S,S], got {images.dtype} {tuple(images.shape)}")
        if len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels = images.contiguous(), labels.long()
        self.name, self.classes = name, list(classes)
        self.num_classes, self.in_channels, self.image_size = len(self.classes), images.shape[1], images.shape[2]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.images[i].float().div_(255), int(self.labels[i]), int(i)

    def get_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        indices = torch.as_tensor(indices, dtype=torch.long)
        return self.images[indices].float().div_(255), self.labels[indices]


class ImageFileDataset(Dataset):
    """Images loaded lazily from files with PIL, as RGB, optionally resized to image_size."""

    def __init__(self, files: Sequence[Path], labels: Sequence[int], classes: Sequence[str],
                 image_size: int = 0, resize: bool = False, name: str = ""):
        if not files:
            raise ValueError("no image files given")
        self.files, self.labels = [Path(f) for f in files], torch.as_tensor(labels, dtype=torch.long)
        self.name, self.classes, self.resize = name, list(classes), resize
        self.num_classes, self.in_channels = len(self.classes), 3
        if image_size <= 0:  # take the size from the first image; every image must match it
            with Image.open(self.files[0]) as im:
                w, h = im.size
            if w != h:
                raise ValueError(f"{self.files[0]}: image is {w}x{h}, not square; pass image_size to resize")
            image_size = w
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.files)

    def _load(self, i: int) -> torch.Tensor:
        s, path = self.image_size, self.files[i]
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.size != (s, s):
                if not self.resize:
                    raise ValueError(f"{path}: image is {im.size[0]}x{im.size[1]}, expected {s}x{s}; "
                                     "pass image_size to resize all images")
                im = im.resize((s, s), Image.Resampling.BILINEAR)
            arr = np.array(im, dtype=np.uint8)
        return torch.from_numpy(arr).permute(2, 0, 1).contiguous()

    def __getitem__(self, i: int):
        return self._load(i).float().div_(255), int(self.labels[i]), int(i)

    def get_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        indices = torch.as_tensor(indices, dtype=torch.long)
        x = torch.stack([self._load(int(i)) for i in indices]) if len(indices) else \
            torch.empty(0, 3, self.image_size, self.image_size, dtype=torch.uint8)
        return x.float().div_(255), self.labels[indices]


class SubsetDataset(Dataset):
    """A view of `base` restricted to `indices`; returns subset indices 0..len-1."""

    def __init__(self, base: Dataset, indices: torch.Tensor):
        self.base, self.indices = base, torch.as_tensor(indices, dtype=torch.long)
        for attr in ("name", "classes", "num_classes", "in_channels", "image_size"):
            setattr(self, attr, getattr(base, attr))
        self.labels = base.labels[self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def original_index(self, i: int) -> int:
        return int(self.indices[i])

    def __getitem__(self, i: int):
        x, y, _ = self.base[self.original_index(i)]
        return x, y, int(i)

    def get_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.base.get_batch(self.indices[torch.as_tensor(indices, dtype=torch.long)])

    def object_masks(self, indices: torch.Tensor) -> torch.Tensor | None:
        """The base's object masks of these samples, or None where the base gives none (Fashion-MNIST, CIFAR-10)."""
        return object_masks(self.base, self.indices[torch.as_tensor(indices, dtype=torch.long)])


def object_masks(ds: Dataset, indices: torch.Tensor) -> torch.Tensor | None:
    """[N,H,W] bool object masks of samples `indices` where the dataset gives them, else None."""
    return ds.object_masks(indices) if hasattr(ds, "object_masks") else None


# ---------------------------------------------------------------------------------------------
# Format readers
# ---------------------------------------------------------------------------------------------

def _read_idx(path: Path, magic: int) -> np.ndarray:
    """Parse an IDX file of unsigned bytes (magic 2049: labels, 2051: images)."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as e:
        raise DatasetFormatError(f"{path}: cannot read IDX file ({e})") from e
    ndim = magic & 0xFF
    if len(raw) < 4 + 4 * ndim or int.from_bytes(raw[:4], "big") != magic:
        found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
        raise DatasetFormatError(f"{path}: not an IDX file with magic number {magic} (found {found}); "
                                 "the file is corrupted or of the wrong kind")
    dims = [int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4)]
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != math.prod(dims):
        raise DatasetFormatError(f"{path}: header says {dims} ({math.prod(dims)} bytes) "
                                 f"but the file holds {data.size} data bytes; it is truncated or corrupted")
    return data.reshape(dims).copy()


def _load_fashion_mnist(root: Path, split: str) -> InMemoryDataset:
    prefix = "train" if split == "train" else "t10k"
    names = [f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"]
    paths = []
    for n in names:
        found = [root / (n + ext) for ext in (".gz", "") if (root / (n + ext)).is_file()]
        if not found:
            raise DatasetNotFound(
                f"Fashion-MNIST not found in {root}: expected train-images-idx3-ubyte.gz, "
                "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz "
                "(or the same without .gz). Install the Debian package `dataset-fashion-mnist` "
                "(apt-get install dataset-fashion-mnist), set PART_FASHION_MNIST_DIR or pass data_dir")
        paths.append(found[0])
    images, labels = _read_idx(paths[0], 2051), _read_idx(paths[1], 2049)
    if len(images) != len(labels) or (labels.size and labels.max() >= 10):
        raise DatasetFormatError(f"{paths[1]}: {len(labels)} labels (max {labels.max(initial=0)}) "
                                 f"do not fit {len(images)} images of 10 classes")
    return InMemoryDataset(torch.from_numpy(images)[:, None], torch.from_numpy(labels).long(),
                           FASHION_MNIST_CLASSES, "fashion-mnist")


def _read_cifar_pickle(path: Path, what: str):
    """One CIFAR-10 python file, read without running code from it (see part.data.safe_pickle)."""
    try:
        return load_plain_pickle(path, what)
    except RefusedPickle as e:
        raise DatasetFormatError(str(e)) from None
    except (pickle.UnpicklingError, EOFError, IndexError, KeyError, ValueError, TypeError,
            OverflowError, MemoryError) as e:
        raise DatasetFormatError(f"{path} is not {what} ({e!r})") from e


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    d = _read_cifar_pickle(path, "a CIFAR-10 batch")
    try:
        data = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        lab = np.asarray(d[b"labels"], dtype=np.int64).reshape(-1)
    except (KeyError, ValueError, TypeError, IndexError, OverflowError) as e:
        raise DatasetFormatError(f"{path} is not a CIFAR-10 batch: expected a dict with b'data' "
                                 f"[N,3072] uint8 and b'labels' ({e!r})") from e
    if len(lab) != len(data) or (lab.size and (lab.min() < 0 or lab.max() >= 10)):
        raise DatasetFormatError(f"{path}: {len(data)} images but {len(lab)} labels "
                                 f"(range {lab.min(initial=0)}..{lab.max(initial=0)}; accepted 0..9)")
    return data, lab


def _cifar_classes(path: Path) -> list[str]:
    meta = _read_cifar_pickle(path, "a CIFAR-10 batches.meta")
    names = meta.get(b"label_names", CIFAR10_CLASSES) if isinstance(meta, dict) else None
    if not isinstance(names, (list, tuple)) or len(names) != 10 or \
            not all(isinstance(n, (bytes, str)) for n in names):
        raise DatasetFormatError(f"{path} is not a CIFAR-10 batches.meta: expected a dict whose "
                                 "b'label_names' lists 10 class names")
    return [n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in names]


def _load_cifar10(root: Path, split: str) -> InMemoryDataset:
    base = root / "cifar-10-batches-py" if (root / "cifar-10-batches-py").is_dir() else root
    files = [f"data_batch_{k}" for k in range(1, 6)] if split == "train" else ["test_batch"]
    missing = [f for f in files if not (base / f).is_file()]
    if missing:
        raise DatasetNotFound(
            f"CIFAR-10 not found: missing {', '.join(str(base / f) for f in missing)}. Expected "
            f"{root}/cifar-10-batches-py/data_batch_1..5, test_batch (torchvision's python layout; "
            "download cifar-10-python.tar.gz on a machine with internet and extract it there), "
            "or pass data_dir / set PART_CIFAR10_DIR")
    batches = [_cifar_batch(base / f) for f in files]
    meta = base / "batches.meta"
    classes = _cifar_classes(meta) if meta.is_file() else CIFAR10_CLASSES
    return InMemoryDataset(torch.from_numpy(np.concatenate([x for x, _ in batches])),
                           torch.from_numpy(np.concatenate([y for _, y in batches])), classes, "cifar10")


def _load_svhn(root: Path, split: str) -> InMemoryDataset:
    import scipy.io
    path = root / f"{split}_32x32.mat"
    if not path.is_file():
        raise DatasetNotFound(
            f"SVHN not found: expected {path} (torchvision's layout: {root}/train_32x32.mat, "
            "test_32x32.mat from http://ufldl.stanford.edu/housenumbers/; copy them there), "
            "or pass data_dir / set PART_SVHN_DIR")
    try:
        mat = scipy.io.loadmat(str(path))
        x, y = np.asarray(mat["X"], dtype=np.uint8), np.asarray(mat["y"], dtype=np.int64).reshape(-1)
    except Exception as e:  # loadmat raises many kinds of errors on a damaged file
        raise DatasetFormatError(f"{path}: not an SVHN .mat file ({e!r})") from e
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != len(y):
        raise DatasetFormatError(f"{path}: X has shape {x.shape}, expected [32,32,3,{len(y)}]")
    y[y == 10] = 0
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(3, 2, 0, 1)))
    return InMemoryDataset(images, torch.from_numpy(y), [str(d) for d in range(10)], "svhn")


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def _load_tiny_imagenet(root: Path, split: str, image_size: int) -> ImageFileDataset:
    base = root / "tiny-imagenet-200" if (root / "tiny-imagenet-200").is_dir() else root
    if not (base / "wnids.txt").is_file():
        raise DatasetNotFound(
            f"Tiny-ImageNet not found: expected {root}/tiny-imagenet-200/ with wnids.txt, "
            "train/<wnid>/images/*.JPEG, val/images/*.JPEG and val/val_annotations.txt "
            "(extract tiny-imagenet-200.zip there), or pass data_dir / set PART_TINY_IMAGENET_DIR")
    wnids = sorted({w.strip() for w in (base / "wnids.txt").read_text().split() if w.strip()})
    index = {w: k for k, w in enumerate(wnids)}
    words = {}
    if (base / "words.txt").is_file():
        for line in (base / "words.txt").read_text().splitlines():
            wnid, _, text = line.partition("\t")
            words[wnid.strip()] = text.split(",")[0].strip()
    files, labels = [], []
    if split == "train":
        for w in wnids:
            folder = base / "train" / w / "images"
            found = _image_files(folder) if folder.is_dir() else []
            files += found
            labels += [index[w]] * len(found)
    else:
        ann = base / "val" / "val_annotations.txt"
        if not ann.is_file():
            raise DatasetNotFound(f"Tiny-ImageNet val annotations not found: expected {ann}")
        rows = sorted(line.split("\t")[:2] for line in ann.read_text().splitlines() if line.strip())
        for fname, wnid in rows:
            if wnid not in index:
                raise DatasetFormatError(f"{ann}: {fname} has wnid {wnid} not listed in wnids.txt")
            files.append(base / "val" / "images" / fname)
            labels.append(index[wnid])
    if not files:
        raise DatasetNotFound(f"Tiny-ImageNet {split} images not found under {base}")
    return ImageFileDataset(files, labels, [words.get(w, w) for w in wnids],
                            image_size or 64, resize=image_size > 0, name="tiny-imagenet")


def _load_imagefolder(root: Path, split: str, image_size: int) -> ImageFileDataset:
    candidates = [root / "train"] if split == "train" else [root / "test", root / "val"]
    split_dir = next((d for d in candidates if d.is_dir()), None)
    if split_dir is None:
        raise DatasetNotFound(
            f"ImageFolder split '{split}' not found: expected {' or '.join(map(str, candidates))} "
            "holding one sub-folder of images per class (<dir>/train/<class>/*, <dir>/test/<class>/*); "
            "pass data_dir / set PART_IMAGEFOLDER_DIR")
    # Class list from train/ when present, so that train and test labels agree.
    class_root = root / "train" if (root / "train").is_dir() else split_dir
    classes = sorted(d.name for d in class_root.iterdir() if d.is_dir())
    files, labels = [], []
    for d in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        if d.name not in classes:
            raise DatasetFormatError(f"{d}: class '{d.name}' does not exist in {class_root}")
        found = _image_files(d)
        files += found
        labels += [classes.index(d.name)] * len(found)
    if not files:
        raise DatasetNotFound(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {split_dir}/<class>/")
    return ImageFileDataset(files, labels, classes, image_size, resize=image_size > 0, name="imagefolder")


# ---------------------------------------------------------------------------------------------
# Entry point, batching, augmentation
# ---------------------------------------------------------------------------------------------

def _resize_uint8(images: torch.Tensor, size: int, chunk: int = 1024) -> torch.Tensor:
    out = torch.empty(len(images), images.shape[1], size, size, dtype=torch.uint8)
    for s in range(0, len(images), chunk):
        y = F.interpolate(images[s:s + chunk].float(), size=(size, size), mode="bilinear",
                          antialias=True, align_corners=False)
        out[s:s + chunk] = y.round_().clamp_(0, 255).to(torch.uint8)
    return out


def load_dataset(name: str, split: str, data_dir: str | None = None, subset: int = 0,
                 image_size: int = 0) -> Dataset:
    """Load split "train" or "test" of dataset `name` (see DATASETS).

    The folder is `data_dir`, else the environment variable PART_<NAME>_DIR (e.g. PART_CIFAR10_DIR,
    PART_FASHION_MNIST_DIR), else /usr/share/datasets/fashion-mnist for Fashion-MNIST and ./data
    otherwise (derived datasets such as fashion-mnist-clutter read their source's folder). `subset > 0`
    keeps a fixed (seed 0) random subset of that many samples; `image_size > 0` resizes every image to
    that side length (for fashion-mnist-clutter: sets the canvas).
    """
    key = name.lower().replace("_", "-")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; accepted names: {', '.join(DATASETS)}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    source = _MADE_FROM.get(key, key)
    if data_dir is None:
        data_dir = (os.environ.get(data_dir_env(key)) or os.environ.get(data_dir_env(source))
                    or _DEFAULT_DIRS.get(source, "data"))
    root = Path(data_dir).expanduser()
    if key == "fashion-mnist-clutter":  # image_size is the canvas here, not a resize
        ds = ClutterDataset(_load_fashion_mnist(root, split), split, image_size or DEFAULT_CANVAS)
    elif key in ("tiny-imagenet", "imagefolder"):
        reader = _load_tiny_imagenet if key == "tiny-imagenet" else _load_imagefolder
        ds: Dataset = reader(root, split, image_size)
    else:
        ds = {"fashion-mnist": _load_fashion_mnist, "cifar10": _load_cifar10, "svhn": _load_svhn}[key](root, split)
        if image_size > 0 and image_size != ds.image_size:
            ds = InMemoryDataset(_resize_uint8(ds.images, image_size), ds.labels, ds.classes, ds.name)
    if 0 < subset < len(ds):
        perm = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))
        ds = SubsetDataset(ds, perm[:subset].sort().values)
    return ds
