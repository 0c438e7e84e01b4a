"""Dataset samples for the API: splits load once (lazily) and stay in memory."""

from __future__ import annotations

import threading
from typing import Any

import torch

from backend.api.errors import ApiError, bad_request, not_found
from backend.settings import Settings
from part.data.datasets import DATASETS, DatasetFormatError, DatasetNotFound, load_dataset

SPLITS = ("train", "test")


class DatasetCache:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._splits: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def get(self, name: str, split: str = "test"):
        if name not in DATASETS:
            raise not_found(f"unknown dataset '{name}'; accepted: {', '.join(DATASETS)}")
        if split not in SPLITS:
            raise bad_request(f"split '{split}' is not accepted; accepted: {', '.join(SPLITS)}")
        key = (name, split)
        with self._lock:
            if key not in self._splits:
                try:
                    self._splits[key] = load_dataset(name, split, data_dir=self.settings.dataset_dir(name))
                except DatasetNotFound as err:
                    raise ApiError(404, f"dataset '{name}' is not installed on the server: {err}") from None
                except (DatasetFormatError, ValueError) as err:
                    raise ApiError(422, f"dataset '{name}' cannot be read: {err}") from None
            return self._splits[key]

    def available(self, name: str) -> bool:
        try:
            self.get(name, "test")
            return True
        except ApiError:
            return False

    def sample(self, name: str, split: str, index: int) -> tuple[torch.Tensor, int, list[str]]:
        """(image [C,H,W] in [0,1], label, class names) of one sample."""
        ds = self.get(name, split)
        if not 0 <= index < len(ds):
            raise not_found(f"dataset '{name}' {split} has {len(ds)} samples; index must be 0..{len(ds) - 1}, got {index}")
        x, y, _ = ds[index]
        return x, int(y), list(ds.classes)

    def describe(self, name: str) -> dict[str, Any]:
        info = DATASETS[name]
        out = {"name": name, "description": info.description, "num_classes": info.num_classes,
               "in_channels": info.in_channels, "image_size": info.image_size,
               "default_eps": info.default_eps, "available": self.available(name), "classes": [], "sizes": {}}
        if out["available"]:
            test = self.get(name, "test")
            out["classes"] = list(test.classes)
            out["sizes"] = {"test": len(test)}
        return out
