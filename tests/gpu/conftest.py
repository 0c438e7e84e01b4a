"""GPU tests: scripts/gpu_check.py as a module (its CIFAR-10 writer and run-folder checks) and a small
generated CIFAR-10 folder."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gpu_check = _load_gpu_check()


@pytest.fixture(scope="session")
def cifar_dir(tmp_path_factory) -> Path:
    """256 training and 64 test images, random, in the cifar-10-batches-py layout."""
    root = tmp_path_factory.mktemp("cifar10")
    gpu_check.write_cifar10(root, n_train=256, n_test=64)
    return root
