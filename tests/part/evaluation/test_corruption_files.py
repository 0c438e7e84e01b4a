"""Real corruption files: CIFAR-10-C-style .npy stacks and Tiny-ImageNet-C-style folders, written here in
exactly those layouts (small), read through `part eval`'s code, and malformed ones refused by path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from part.evaluation.accuracy import correct_under, fraction
from part.cli import main
from part.evaluation.corruption_files import CorruptionFilesError, evaluate_corruption_files, write_cifar_c
from part.evaluation.evaluate import evaluate
from part.evaluation.reports import markdown_report

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = ROOT / "checkpoints" / "fmnist-at-s0" / "checkpoints" / "epoch_0010.pt"
LUMA = np.array([0.299, 0.587, 0.114])
PER = 20  # images per severity


def stacks(seed: int = 0, rgb: bool = True) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (5 * PER, 28, 28, 3) if rgb else (5 * PER, 28, 28)
    images = {name: rng.integers(0, 256, shape, dtype=np.uint8) for name in ("gaussian_noise", "fog", "pixelate")}
    return images, rng.integers(0, 10, PER)


def grey(block: np.ndarray) -> torch.Tensor:
    x = np.clip(np.rint(block.astype(np.float64) @ LUMA), 0, 255) if block.ndim == 4 else block.astype(np.float64)
    return torch.from_numpy(x)[:, None].float().div(255)


def test_cifar_c_layout_accuracy_per_severity_and_what_was_found(tmp_path, small_cnn):
    images, labels = stacks()
    write_cifar_c(tmp_path, images, labels)
    x = torch.zeros(16, 1, 28, 28)  # the evaluation's test images: only their number and shape matter
    out = evaluate(small_cnn.eval(), (x, torch.zeros(16, dtype=torch.long)), ["corruptions"], eps=0.1,
                   corruption_files=tmp_path)["attacks"]["corruptions"]
    assert out["n"] == 16 and out["params"]["layout"] == "cifar-c"
    assert out["params"]["found"] == ["gaussian_noise", "fog", "pixelate"]  # Table 4's order
    assert len(out["params"]["missing"]) == 16 and "snow" in out["params"]["missing"]
    y = torch.from_numpy(labels[:16])
    for s in range(5):  # severity s+1 is block s; its first 16 images, RGB turned grey with the luma weights
        want = fraction(correct_under(small_cnn, grey(images["fog"][s * PER:s * PER + 16]), y))
        assert out["types"]["fog"]["accuracy"][s] == want
    assert out["accuracy"] == pytest.approx(np.mean(out["mean_by_severity"]))


def test_grey_stacks_and_labels_for_every_image_are_accepted(tmp_path, small_cnn):
    images, labels = stacks(rgb=False)
    write_cifar_c(tmp_path, {"fog": images["fog"]}, np.tile(labels, 5))
    out = evaluate_corruption_files(small_cnn.eval(), tmp_path, channels=1, size=(28, 28))
    assert out["n"] == PER
    want = fraction(correct_under(small_cnn, grey(images["fog"][4 * PER:]), torch.from_numpy(labels)))
    assert out["types"]["fog"]["accuracy"][4] == want


def test_tiny_imagenet_c_layout(tmp_path):
    wnids = ["n01443537", "n01629819", "n01641577"]
    rng = np.random.default_rng(1)
    for s in range(1, 6):
        for k, w in enumerate(wnids):
            folder = tmp_path / "zoom_blur" / str(s) / w
            folder.mkdir(parents=True)
            for i in range(2):
                Image.fromarray(rng.integers(0, 256, (28, 28, 3), dtype=np.uint8)).save(folder / f"val_{3 * i + k}.JPEG")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 28 * 28, 3)).eval()
    out = evaluate_corruption_files(model, tmp_path, n=4, channels=3, size=(28, 28), num_classes=3)
    assert out["params"]["layout"] == "tiny-imagenet-c" and out["params"]["found"] == ["zoom_blur"]
    # file-name order across classes: val_0 (class 0), val_1 (class 1), val_2 (class 2), val_3 (class 0)
    files = [tmp_path / "zoom_blur" / "3" / wnids[i % 3] / f"val_{i}.JPEG" for i in range(4)]
    x = torch.stack([torch.from_numpy(np.array(Image.open(f).convert("RGB"))).permute(2, 0, 1) for f in files]).float() / 255
    assert out["types"]["zoom_blur"]["accuracy"][2] == fraction(correct_under(model, x, torch.tensor([0, 1, 2, 0])))


def _bad(tmp_path: Path, case: str) -> Path:
    images, labels = stacks()
    write_cifar_c(tmp_path, {"fog": images["fog"]}, labels)
    if case == "no labels":
        (tmp_path / "labels.npy").unlink()
    elif case == "float images":
        np.save(tmp_path / "fog.npy", images["fog"].astype(np.float32))
    elif case == "not 5 severities":
        np.save(tmp_path / "fog.npy", images["fog"][:99])
    elif case == "wrong size":
        np.save(tmp_path / "fog.npy", np.zeros((100, 32, 32, 3), np.uint8))
    elif case == "pickled":
        np.save(tmp_path / "fog.npy", np.array([{"a": 1}] * 100, dtype=object), allow_pickle=True)
    elif case == "labels of another length":
        np.save(tmp_path / "labels.npy", np.zeros(7, np.int64))
    elif case == "labels beyond the classes":
        np.save(tmp_path / "labels.npy", np.full(PER, 12, np.int64))
    elif case == "nothing there":
        for f in tmp_path.iterdir():
            f.unlink()
    return tmp_path


@pytest.mark.parametrize("case, file, says", [
    ("no labels", "labels.npy", "labels.npy is missing"),
    ("float images", "fog.npy", "holds float32 of shape (100, 28, 28, 3)"),
    ("not 5 severities", "fog.npy", "99 images, not 5 equal severities"),
    ("wrong size", "fog.npy", "32x32 images; the model takes 28x28"),
    ("pickled", "fog.npy", "is not a readable .npy array"),
    ("labels of another length", "labels.npy", "has 7 labels for 100 images"),
    ("labels beyond the classes", "", "run from 12 to 12; the model has 10 classes"),
    ("nothing there", "", "holds none of the 19 corruptions"),
])
def test_malformed_files_name_the_path_and_the_layout(tmp_path, small_cnn, case, file, says):
    root = _bad(tmp_path, case)
    with pytest.raises(CorruptionFilesError) as err:
        evaluate_corruption_files(small_cnn.eval(), root, channels=1, size=(28, 28), num_classes=10)
    assert says in str(err.value) and str(root / file).rstrip("/") in str(err.value)
    if case not in ("wrong size", "labels beyond the classes"):
        assert "<corruption>.npy" in str(err.value)  # the expected layout


def test_a_missing_folder_and_a_missing_severity(tmp_path, small_cnn):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'nope'} is not a folder; expected cifar-c"):
        evaluate_corruption_files(small_cnn, tmp_path / "nope")
    (tmp_path / "fog" / "1" / "n0").mkdir(parents=True)
    with pytest.raises(CorruptionFilesError, match=f"{tmp_path / 'fog' / '1'} holds no images; expected tiny-imagenet-c"):
        evaluate_corruption_files(small_cnn, tmp_path, channels=1, size=(28, 28))


@pytest.mark.skipif(not SHIPPED.is_file(), reason="the shipped AT run is not in this checkout")
def test_part_eval_reads_the_files_reports_table4_and_says_what_was_found(tmp_path, capsys):
    images, labels = stacks()
    write_cifar_c(tmp_path / "c", images, labels)
    out = tmp_path / "eval"
    argv = ["eval", "--checkpoint", str(SHIPPED), "--attacks", "clean,corruptions", "--n", "16", "--out", str(out),
            "--corruption-files", str(tmp_path / "c"), "--device", "cpu", "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "(cifar-c): found 3 of 19 corruptions; missing: shot_noise" in printed
    result = json.loads((out / "eval.json").read_text())
    assert result["corruption_files"] == str((tmp_path / "c").resolve())
    assert set(result["attacks"]["corruptions"]["types"]) == {"gaussian_noise", "fog", "pixelate"}
    report = (out / "report.md").read_text()
    assert "| Fog |" in report and "| Snow | – |" in report  # Table 4 rows; a corruption not found is a dash
    assert "3 of 19 found; missing: shot_noise" in report
    # a rerun without the files does not pass the files' result off as generated corruptions
    plain = ["eval", "--checkpoint", str(SHIPPED), "--attacks", "clean", "--n", "16", "--out", str(out),
             "--device", "cpu", "--no-progress"]
    assert main(plain) == 0
    again = json.loads((out / "eval.json").read_text())
    assert "corruptions" not in again["attacks"] and "corruption_files" not in again
    assert "read from" not in markdown_report([again])
