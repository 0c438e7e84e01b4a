"""The run folder: the one contract between the trainer (writer) and the backend (reader).

    RUN/config.json              resolved TrainConfig
    RUN/status.json              state, phase, epoch, batch, progress, ETA (written atomically)
    RUN/metrics.jsonl            one JSON object per finished epoch
    RUN/checkpoints/epoch_NNNN.pt  weights + config + meta, loadable with weights_only=True
    RUN/train_state.pt           optimiser and scheduler of the newest epoch (for resume)
    RUN/mask_cache.pt            the newest training-set CAM cache (PART with mask_every > 0)
    RUN/probes/inputs.pt         the fixed probe test images
    RUN/probes/epoch_NNNN.pt     per epoch: probe CAMs, eps-maps, predictions, probabilities

Every file is replaced atomically (write to a temporary file, then rename), so a reader never
sees half a file and a killed trainer leaves the last complete epoch behind.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

STATES = ("queued", "running", "completed", "failed", "interrupted", "cancelled")


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; run folders are read by other users and containers
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any, *, indent: int | None = 1) -> None:
    """Atomically; indent=None writes compactly (per-image lists of evaluation reports)."""
    _atomic(Path(path), lambda f: f.write(json.dumps(data, indent=indent).encode()))


def save_torch(path: Path, data: Any) -> None:
    _atomic(Path(path), lambda f: torch.save(data, f))


def load_torch(path: Path) -> Any:
    if not Path(path).exists():
        raise FileNotFoundError(f"no such file: {path}")
    return torch.load(path, map_location="cpu", weights_only=True)


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    # -- config and status --
    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    def exists(self) -> bool:
        return self.config_path.exists()

    def config(self) -> dict[str, Any]:
        if not self.exists():
            raise FileNotFoundError(f"{self.path} is not a run folder: {self.config_path} is missing")
        return json.loads(self.config_path.read_text())

    def write_config(self, config: dict[str, Any]) -> None:
        write_json(self.config_path, config)

    def status(self) -> dict[str, Any]:
        try:
            return json.loads((self.path / "status.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def write_status(self, **fields: Any) -> None:
        status = {**self.status(), **fields, "updated_at": time.time()}
        write_json(self.path / "status.json", status)

    # -- metrics --
    def metrics(self) -> list[dict[str, Any]]:
        path = self.path / "metrics.jsonl"
        if not path.exists():
            return []
        lines = path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def append_metrics(self, row: dict[str, Any]) -> None:
        rows = [r for r in self.metrics() if r["epoch"] < row["epoch"]] + [row]
        self._write_metrics(rows)

    def truncate_metrics(self, last_epoch: int) -> None:
        self._write_metrics([r for r in self.metrics() if r["epoch"] <= last_epoch])

    def _write_metrics(self, rows: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(r) + "\n" for r in rows)
        _atomic(self.path / "metrics.jsonl", lambda f: f.write(text.encode()))

    # -- checkpoints --
    def checkpoint_path(self, epoch: int) -> Path:
        return self.path / "checkpoints" / f"epoch_{epoch:04d}.pt"

    def epochs(self) -> list[int]:
        found = (re.fullmatch(r"epoch_(\d+)\.pt", p.name) for p in (self.path / "checkpoints").glob("epoch_*.pt"))
        return sorted(int(m.group(1)) for m in found if m)

    def save_checkpoint(self, epoch: int, model_state: dict, config: dict, meta: dict) -> None:
        save_torch(self.checkpoint_path(epoch), {"epoch": epoch, "model": model_state, "config": config, "meta": meta})

    def existing_checkpoint(self, epoch: int | None = None) -> Path:
        """The checkpoint of `epoch` (default: the newest), or an error naming the epochs there are."""
        epochs = self.epochs()
        if not epochs:
            raise FileNotFoundError(f"run {self.path} has no checkpoints yet")
        epoch = epochs[-1] if epoch is None else epoch
        if epoch not in epochs:
            raise FileNotFoundError(f"run {self.path} has no checkpoint for epoch {epoch}; available: {epochs}")
        return self.checkpoint_path(epoch)

    def load_checkpoint(self, epoch: int | None = None) -> dict[str, Any]:
        return load_torch(self.existing_checkpoint(epoch))

    # -- resume state, mask cache, probes --
    def save_train_state(self, state: dict) -> None:
        save_torch(self.path / "train_state.pt", state)

    def load_train_state(self) -> dict | None:
        path = self.path / "train_state.pt"
        return load_torch(path) if path.exists() else None

    def save_mask_cache(self, state: dict) -> None:
        save_torch(self.path / "mask_cache.pt", state)

    def load_mask_cache(self) -> dict | None:
        path = self.path / "mask_cache.pt"
        return load_torch(path) if path.exists() else None

    def save_probe_inputs(self, data: dict) -> None:
        save_torch(self.path / "probes" / "inputs.pt", data)

    def load_probe_inputs(self) -> dict:
        return load_torch(self.path / "probes" / "inputs.pt")

    def save_probes(self, epoch: int, data: dict) -> None:
        save_torch(self.path / "probes" / f"epoch_{epoch:04d}.pt", data)

    def load_probes(self, epoch: int) -> dict:
        return load_torch(self.path / "probes" / f"epoch_{epoch:04d}.pt")


def load_model(checkpoint: str | Path, device: str | torch.device = "cpu"):
    """A model in eval mode and its checkpoint dict (config, meta, epoch) from a checkpoint file."""
    from models import create_model

    ckpt = load_torch(checkpoint)
    if not isinstance(ckpt, dict) or "model" not in ckpt or "meta" not in ckpt:
        raise ValueError(f"{checkpoint} is not a PART Studio checkpoint (expected keys model, meta, config)")
    meta = ckpt["meta"]
    model = create_model(meta["model"], num_classes=meta["num_classes"], in_channels=meta["in_channels"])
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), ckpt
