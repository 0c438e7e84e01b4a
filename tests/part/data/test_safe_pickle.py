"""Dataset files never run code: CIFAR-10 pickles go through a restricted unpickler that admits the
real layout (Python 2 and Python 3 pickles, NumPy 1 and NumPy 2 names, every protocol) and refuses
planted payloads, naming the file and the global, before anything runs."""
import codecs
import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from part.cli import main
from part.data.datasets import DatasetFormatError, default_data_roots, load_dataset

BATCHES = [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]


# --- the real layout, as the official tarball and NumPy 1 / NumPy 2 under Python 3 write it -------

class Python2Pickler(pickle._Pickler):
    """Writes str and bytes as Python 2 `str` (BINSTRING), as the official CIFAR-10 files hold them."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[str] = dispatch[bytes] = save_py2_str


def python2(obj) -> bytes:
    buffer = io.BytesIO()
    Python2Pickler(buffer, protocol=2).dump({k.decode(): v for k, v in obj.items()})
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


WRITERS = {
    "python2-official": python2,
    "protocol2-py3": lambda obj: pickle.dumps(obj, protocol=2),  # bytes as _codecs.encode(..., 'latin1')
    "numpy1-names": lambda obj: pickle.dumps(obj, protocol=2).replace(b"cnumpy._core.", b"cnumpy.core."),
    "default-protocol": pickle.dumps,
    "protocol5": lambda obj: pickle.dumps(obj, protocol=5),  # arrays through numeric._frombuffer
}


def write_layout(folder: Path, dumps, per_batch=4) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    written = {"train": ([], []), "test": ([], [])}
    for k, name in enumerate(BATCHES):
        x = np.random.default_rng(k).integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        y = [(3 * k + j) % 10 for j in range(per_batch)]
        batch = {b"batch_label": f"batch {k + 1} of 5".encode(), b"labels": y, b"data": x,
                 b"filenames": [f"img_{k}_{j}.png".encode() for j in range(per_batch)]}
        (folder / name).write_bytes(dumps(batch))
        split = "test" if name == "test_batch" else "train"
        written[split][0].append(x)
        written[split][1].extend(y)
    meta = {b"num_cases_per_batch": per_batch, b"label_names": [f"class{k}".encode() for k in range(10)],
            b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(dumps(meta))
    return {s: (np.concatenate(xs).reshape(-1, 3, 32, 32), ys) for s, (xs, ys) in written.items()}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_the_real_layout_loads_under_every_writer(tmp_path, writer):
    written = write_layout(tmp_path / "cifar-10-batches-py", WRITERS[writer])
    for split, n in (("train", 20), ("test", 4)):
        ds = load_dataset("cifar10", split, data_dir=str(tmp_path))
        x, y = written[split]
        assert ds.classes == [f"class{k}" for k in range(10)]
        assert torch.equal(ds.images, torch.from_numpy(x)) and ds.labels.tolist() == y
        assert len(ds) == n


def test_the_python2_writer_writes_what_the_official_files_hold(tmp_path):
    """Guard for the emulation above: Python 2 strings, NumPy 1 global names, no _codecs."""
    raw = python2({b"data": np.zeros((1, 3072), np.uint8), b"labels": [1]})
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in raw and b"_codecs" not in raw
    assert pickle.SHORT_BINSTRING + b"\x04data" in raw
    with pytest.raises(UnicodeDecodeError):
        pickle.loads(python2({b"data": np.full((1, 3072), 200, np.uint8), b"labels": [1]}))  # needs bytes


# --- planted payloads -------------------------------------------------------------------------------

def plant(path):
    Path(path).write_text("the payload ran")


class Reduce:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def batch(**extra):
    return {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1], **extra}


def payloads(marker: Path) -> dict:
    """name -> (file it is planted in, its bytes, the global the error must name)."""
    shell, writes = f"touch {marker}", Reduce(plant, str(marker))
    opens = Reduce(exec, f"open({str(marker)!r}, 'w')")
    rot13 = Reduce(codecs.encode, "x", "rot13")
    return {
        "os.system": ("data_batch_1", pickle.dumps(Reduce(os.system, shell)), "system"),
        "a function writing a file": ("data_batch_3", pickle.dumps(writes), "plant"),
        "builtins.eval": ("test_batch", pickle.dumps(Reduce(eval, f"__import__('os').system({shell!r})")),
                          "builtins.eval"),
        "nested in the labels": ("data_batch_2", pickle.dumps(batch(labels=[0, opens])), "builtins.exec"),
        "nested beside the data, protocol 2": ("data_batch_5", pickle.dumps(batch(x=writes), protocol=2), "plant"),
        "in batches.meta": ("batches.meta", pickle.dumps({b"label_names": Reduce(os.system, shell)}), "system"),
        "protocol 0 INST opcode": ("test_batch", b"(S'" + shell.encode() + b"'\nios\nsystem\n.", "os.system"),
        "a pickle inside the pickle": ("data_batch_4", pickle.dumps(Reduce(pickle.loads, pickle.dumps(writes))),
                                       "loads"),
        "a numpy name that is not data": ("data_batch_1", pickle.dumps(Reduce(np.savetxt, str(marker), np.zeros(1))),
                                          "savetxt"),
        "_codecs.encode with another codec": ("test_batch", pickle.dumps(rot13, protocol=2), "rot13"),
    }


@pytest.mark.parametrize("name", list(payloads(Path("m"))))
def test_a_planted_payload_is_refused_before_it_runs(tmp_path, name):
    marker = tmp_path / "marker"
    folder = tmp_path / "data" / "cifar-10-batches-py"
    write_layout(folder, pickle.dumps)
    planted, raw, refused = payloads(marker)[name]
    (folder / planted).write_bytes(raw)
    split = "test" if planted in ("test_batch", "batches.meta") else "train"
    try:
        load_dataset("cifar10", split, data_dir=str(tmp_path / "data"))
        error = None
    except Exception as e:  # noqa: BLE001 - what is raised is checked after the marker
        error = e
    assert not marker.exists(), f"the payload planted in {planted} ran"
    assert isinstance(error, DatasetFormatError) and isinstance(error, ValueError), repr(error)
    assert str(folder / planted) in str(error) and refused in str(error)
    if name != "_codecs.encode with another codec":
        assert f"{planted} is not a CIFAR-10" in str(error) and "accepted: dicts, lists" in str(error)


def test_the_cli_refuses_a_planted_folder_too(tmp_path, capsys):
    marker = tmp_path / "marker"
    folder = tmp_path / "data" / "cifar-10-batches-py"
    write_layout(folder, pickle.dumps)
    for name in BATCHES:
        (folder / name).write_bytes(pickle.dumps(Reduce(os.system, f"touch {marker}")))
    code = main(["train", "--preset", "cifar10-at", "--set", f"data_dir={tmp_path / 'data'}", "--set", "epochs=1",
                 "--set", "subset=8", "--set", "device=cpu", "--out", str(tmp_path / "run"), "--no-progress"])
    assert code == 2 and not marker.exists()
    assert "data_batch_1 is not a CIFAR-10 batch: it refers to posix.system" in capsys.readouterr().err


def test_a_persistent_reference_is_refused(tmp_path):
    class Persistent(pickle.Pickler):
        def persistent_id(self, obj):
            return "outside" if isinstance(obj, str) and obj == "x" else None

    folder = tmp_path / "cifar-10-batches-py"
    write_layout(folder, pickle.dumps)
    buffer = io.BytesIO()
    Persistent(buffer, protocol=2).dump(batch(labels=["x"]))
    (folder / "test_batch").write_bytes(buffer.getvalue())
    with pytest.raises(DatasetFormatError, match="test_batch is not a CIFAR-10 batch: it holds a persistent reference"):
        load_dataset("cifar10", "test", data_dir=str(tmp_path))


@pytest.mark.parametrize("content,message", [
    ([1, 2, 3], "expected a dict"),
    ({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, "expected a dict"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "accepted 0..9"),
    ({b"data": [[300] * 3072], b"labels": [0]}, "expected a dict"),
])
def test_a_batch_of_the_wrong_shape_is_a_format_error(tmp_path, content, message):
    folder = tmp_path / "cifar-10-batches-py"
    write_layout(folder, pickle.dumps)
    (folder / "test_batch").write_bytes(pickle.dumps(content))
    with pytest.raises(DatasetFormatError, match=f"test_batch.*{message}"):
        load_dataset("cifar10", "test", data_dir=str(tmp_path))


@pytest.mark.parametrize("meta", [[b"a"] * 10, {b"label_names": [b"a"] * 3}, {b"label_names": b"abc"}])
def test_a_wrong_batches_meta_is_a_format_error(tmp_path, meta):
    folder = tmp_path / "cifar-10-batches-py"
    write_layout(folder, pickle.dumps)
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    with pytest.raises(DatasetFormatError, match="batches.meta is not a CIFAR-10 batches.meta"):
        load_dataset("cifar10", "test", data_dir=str(tmp_path))


def test_truncated_and_random_files_are_format_errors(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_layout(folder, pickle.dumps)
    good = (folder / "test_batch").read_bytes()
    for raw in (good[: len(good) // 2], b"", os.urandom(64), b"not a pickle\n"):
        (folder / "test_batch").write_bytes(raw)
        with pytest.raises(DatasetFormatError, match="test_batch is not a CIFAR-10 batch"):
            load_dataset("cifar10", "test", data_dir=str(tmp_path))


# --- the folders a server may read datasets from ------------------------------------------------------

def test_default_data_roots_are_the_default_folders_and_the_variables_that_are_set(tmp_path):
    assert default_data_roots({}) == [Path("/usr/share/datasets/fashion-mnist").resolve()]
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    env = {"PART_CIFAR10_DIR": str(tmp_path / "link"), "PART_SVHN_DIR": "", "PART_DATA_DIR_X": "/x",
           "PART_TINY_IMAGENET_DIR": str(tmp_path / "real"), "PART_IMAGEFOLDER_DIR": str(tmp_path / "imgs")}
    roots = default_data_roots(env)
    assert roots == [Path("/usr/share/datasets/fashion-mnist").resolve(), tmp_path / "real", tmp_path / "imgs"]
    assert all(r.is_absolute() for r in roots)


def test_default_data_roots_read_the_environment_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("PART_FASHION_MNIST_DIR", str(tmp_path))
    assert tmp_path in default_data_roots()
