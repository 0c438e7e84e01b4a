"""The run folder: the one contract between the trainer (writer) and the backend (reader).

    RUN/config.json              resolved TrainConfig
    RUN/requested_config.json    the config a job asked for, read by its workers (`part train --config`)
    RUN/status.json              state, phase, epoch, batch, progress, ETA (written atomically)
    RUN/stop_requested           present while the run is asked to stop at its epoch's end (why, as text)
    RUN/metrics.jsonl            one JSON object per finished epoch
    RUN/checkpoints/epoch_NNNN.pt  weights + config + meta, loadable with weights_only=True
    RUN/train_state.pt           optimiser and scheduler of the newest epoch (for resume)
    RUN/mask_cache.pt            the newest training-set CAM cache (PART with mask_every > 0)
    RUN/probes/inputs.pt         the fixed probe test images
    RUN/probes/epoch_NNNN.pt     per epoch: probe CAMs, eps-maps, predictions, probabilities
    RUN/tensorboard/             TensorBoard event files: per-epoch scalars, probe CAMs and eps-maps
    RUN/eval/NAME/               one evaluation (EvalDir): eval.json, report.md, report.html, AutoAttack's state
    ROOT/shipped.json            beside the run folders: the runs shipped with the studio, in named groups
    ROOT/.sweeps/NAME.json       a sweep (part.training.sweeps): its grid and the run id of each cell

An evaluation of a bare checkpoint file (no run around it) goes to CKPT_DIR/eval_<checkpoint name>/.
One folder holds one evaluation (one checkpoint, images, seed and precision; its attacks are added as
they finish): an evaluation of the same checkpoint with other settings never replaces it, it goes to a
folder of its own (RUN/eval/epoch_NNNN-n10, see EvalDir.for_settings), and readers merge a checkpoint's
folders, each attack from the evaluation on the most images (part.evaluation.reports.merge).

Every file is replaced atomically (write to a temporary file, then rename), so a reader never
sees half a file and a killed trainer leaves the last complete epoch behind.

Reading is defensive, because run folders are also written by hand, copied and damaged: a file
that exists but cannot be read (bad JSON, the wrong shape, a pickle where tensors belong, a link
that leaves the folder) raises RunFolderError naming the file and what was expected.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

STATES = ("queued", "running", "completed", "failed", "interrupted", "cancelled")


class RunFolderError(ValueError):
    """A file of a run folder exists but cannot be read as what it should hold."""


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


def write_text(path: Path, text: str) -> None:
    """Write a whole text file or nothing (a temporary file renamed over the target)."""
    _atomic(path, lambda f: f.write(text.encode("utf-8")))


def write_json(path: Path, data: Any, *, indent: int | None = 1) -> None:
    """Atomically; indent=None writes compactly (per-image lists of evaluation reports)."""
    _atomic(Path(path), lambda f: f.write(json.dumps(data, indent=indent).encode()))


def save_torch(path: Path, data: Any) -> None:
    _atomic(Path(path), lambda f: torch.save(data, f))


def load_torch(path: Path) -> Any:
    """Tensors and plain containers only (weights_only): a file that holds code or garbage is refused."""
    if not Path(path).exists():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError, RuntimeError, EOFError, ...: the file is not a tensor file
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RunFolderError(f"{Path(path).name} is not a readable tensor file ({first[:200]})") from None


def _tensor(data: dict, key: str, name: str, dims: int) -> torch.Tensor:
    value = data.get(key)
    if not isinstance(value, torch.Tensor) or value.dim() != dims:
        got = type(value).__name__ if not isinstance(value, torch.Tensor) else f"a {value.dim()}-d tensor"
        raise RunFolderError(f"{name}: '{key}' should be a {dims}-d tensor, got {got}")
    return value


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def file(self, *parts: str) -> Path:
        """RUN/<parts>, refused when a link takes it outside the run folder."""
        path = self.path.joinpath(*parts)
        real, home = path.resolve(), self.path.resolve()  # links anywhere along the path are followed
        if real != home and home not in real.parents:
            raise RunFolderError(f"{'/'.join(parts)} of run {self.path.name} points outside the run folder")
        return path

    def _json(self, *parts: str) -> Any:
        path = self.file(*parts)
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise RunFolderError(f"{'/'.join(parts)} is not valid JSON ({err})") from None

    # -- config and status --
    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    def exists(self) -> bool:
        return self.config_path.exists()

    def config(self) -> dict[str, Any]:
        """The saved TrainConfig as a dict, checked field by field (unknown, newer fields are kept)."""
        if not self.exists():
            raise FileNotFoundError(f"{self.path} is not a run folder: {self.config_path} is missing")
        data = self._json("config.json")
        if not isinstance(data, dict):
            raise RunFolderError(f"config.json holds {_kind(data)}; expected a JSON object (a TrainConfig)")
        from part.training.config import TrainConfig

        known = {f.name for f in dataclasses.fields(TrainConfig)}
        try:
            TrainConfig.from_dict({k: v for k, v in data.items() if k in known}, new=False)
        except (ValueError, TypeError) as err:
            raise RunFolderError(f"config.json is not a valid training config: {err}") from None
        return data

    def write_config(self, config: dict[str, Any]) -> None:
        write_json(self.config_path, config)

    @property
    def requested_config_path(self) -> Path:
        """The resolved config a job hands to its worker processes (`part train --config`)."""
        return self.path / "requested_config.json"

    def write_requested_config(self, config: dict[str, Any]) -> None:
        write_json(self.requested_config_path, config)

    def status(self) -> dict[str, Any]:
        """status.json ({} before the trainer wrote one), checked: a state, a plausible pid, numbers."""
        try:
            data = self._json("status.json")
        except FileNotFoundError:
            return {}
        if not isinstance(data, dict):
            raise RunFolderError(f"status.json holds {_kind(data)}; expected a JSON object")
        if data.get("state") is not None and data["state"] not in STATES:
            raise RunFolderError(f"status.json: state '{str(data['state'])[:40]}' is not one of {', '.join(STATES)}")
        pid = data.get("pid")
        if pid is not None and not (type(pid) is int and pid > 0):  # too large a pid is no process: interrupted
            raise RunFolderError(f"status.json: pid {str(pid)[:40]!r} is not a process id (a whole number >= 1)")
        for key in ("epoch", "epochs", "batch", "batches", "progress", "eta_s", "updated_at", "pid_started_at"):
            value = data.get(key)
            if value is not None and not (isinstance(value, (int, float)) and not isinstance(value, bool)
                                          and math.isfinite(value)):
                raise RunFolderError(f"status.json: {key} {str(value)[:40]!r} is not a number")
        return data

    def progress_files(self) -> list[Path]:
        """The files a running trainer rewrites as it goes (status.json, metrics.jsonl): a reader may keep
        what it read from them until one changes."""
        return [self.path / "status.json", self.path / "metrics.jsonl"]

    def write_status(self, **fields: Any) -> None:
        """Merge `fields` into status.json. A new state clears the old state's message and phase."""
        try:
            old = self.status()
        except RunFolderError:
            old = {}  # the writer owns this file: a damaged one is replaced
        if "state" in fields and fields["state"] != old.get("state"):
            old = {k: v for k, v in old.items() if k not in ("message",)}
        status = {**old, **fields, "updated_at": time.time()}
        write_json(self.path / "status.json", {k: v for k, v in status.items() if v is not None or k == "eta_s"})

    # -- a stop at the next epoch's end (a scheduler's time limit near) --
    def request_stop(self, reason: str) -> None:
        write_text(self.path / "stop_requested", reason + "\n")

    def stop_request(self) -> str | None:
        """Why the run is asked to stop at its epoch's end, or None."""
        try:
            return (self.path / "stop_requested").read_text().strip() or "asked to stop"
        except (FileNotFoundError, IsADirectoryError):
            return None

    def clear_stop(self) -> None:
        (self.path / "stop_requested").unlink(missing_ok=True)

    # -- metrics --
    def metrics(self) -> list[dict[str, Any]]:
        """One object per finished epoch, each with a whole-number `epoch`."""
        path = self.file("metrics.jsonl")
        if not path.exists():
            return []
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise RunFolderError(f"metrics.jsonl cannot be read ({err})") from None
        rows = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise RunFolderError(f"metrics.jsonl line {number} is not valid JSON ({err})") from None
            if not isinstance(row, dict) or type(row.get("epoch")) is not int:
                raise RunFolderError(f"metrics.jsonl line {number} is {_kind(row)}; expected an object "
                                     "with a whole-number 'epoch'")
            rows.append(row)
        return rows

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

    def probe_epochs(self) -> list[int]:
        """Epochs whose probe CAMs are stored (a shipped run may keep them for epochs whose weights it dropped)."""
        found = (re.fullmatch(r"epoch_(\d+)\.pt", p.name) for p in (self.path / "probes").glob("epoch_*.pt"))
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
        path = self.existing_checkpoint(epoch)
        return load_torch(self.file("checkpoints", path.name))

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

    def has_probe_inputs(self) -> bool:
        return (self.path / "probes" / "inputs.pt").exists()

    def load_probe_inputs(self) -> dict:
        """{'x': [N,C,H,W], 'y': [N], 'index': [N], 'classes'?}, checked to agree."""
        name = "probes/inputs.pt"
        data = load_torch(self.file("probes", "inputs.pt"))
        if not isinstance(data, dict):
            raise RunFolderError(f"{name} holds {_kind(data)}; expected a dict of tensors x, y, index")
        x, y, index = _tensor(data, "x", name, 4), _tensor(data, "y", name, 1), _tensor(data, "index", name, 1)
        if not (len(x) == len(y) == len(index)):
            raise RunFolderError(f"{name}: x, y and index hold {len(x)}, {len(y)} and {len(index)} images")
        return data

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / "tensorboard"

    def probes_path(self, epoch: int) -> Path:
        return self.path / "probes" / f"epoch_{epoch:04d}.pt"

    def save_probes(self, epoch: int, data: dict) -> None:
        save_torch(self.probes_path(epoch), data)

    def load_probes(self, epoch: int, count: int | None = None) -> dict:
        """{'cam': [N,H,W], 'probs': [N,K], ...} of one epoch; `count` = the number of probe images."""
        name = f"probes/{self.probes_path(epoch).name}"
        data = load_torch(self.file("probes", self.probes_path(epoch).name))
        if not isinstance(data, dict):
            raise RunFolderError(f"{name} holds {_kind(data)}; expected a dict of tensors cam, probs")
        cam, probs = _tensor(data, "cam", name, 3), _tensor(data, "probs", name, 2)
        if len(cam) != len(probs) or (count is not None and len(cam) != count):
            raise RunFolderError(f"{name} holds {len(cam)} CAMs and {len(probs)} predictions for "
                                 f"{count if count is not None else len(cam)} probe images")
        return data

    # -- evaluation reports --
    def eval_dir(self, name: str) -> "EvalDir":
        """RUN/eval/<name> (refused when a link takes it outside the run)."""
        return EvalDir(self.file(EVAL, name))

    def eval_dir_for(self, name: str, *, n: int, seed: int = 0, amp: str = "off") -> "EvalDir":
        """The folder of an evaluation with these settings: RUN/eval/<name> unless that already holds another
        evaluation (other images, seed or precision), then its own sibling (EvalDir.sibling)."""
        return self.eval_dir(self.eval_dir(name).for_settings(n=n, seed=seed, amp=amp).path.name)  # links checked

    def eval_report_file(self, name: str, file: str) -> Path:
        """RUN/eval/<name>/<file> for a report file (EvalDir.REPORT_TYPES), refused when a link leads out."""
        if file not in EvalDir.REPORT_TYPES:
            raise ValueError(f"'{file[:60]}' is not a report file; accepted: {', '.join(EvalDir.REPORT_TYPES)}")
        return self.file(EVAL, name, file)

    def has_evaluations(self) -> bool:
        return (self.path / EVAL).is_dir()

    @classmethod
    def of_checkpoint(cls, checkpoint: str | Path) -> "RunDir | None":
        """The run a checkpoint file belongs to (RUN/checkpoints/epoch_NNNN.pt), or None for a bare file."""
        path = Path(checkpoint)
        run = cls(path.parent.parent)
        return run if path.parent.name == "checkpoints" and run.exists() else None

    def eval_stamp(self) -> tuple:
        """(name, mtime, size) of every RUN/eval/<name>/eval.json: changes whenever a report does."""
        out = []
        for path in sorted((self.path / EVAL).glob(f"*/{EvalDir.RESULTS}")):
            try:
                st = path.stat()
            except OSError:
                continue
            out.append((path.parent.name, st.st_mtime_ns, st.st_size))
        return tuple(out)

    def eval_reports(self) -> list[tuple[str, dict[str, Any] | None, str | None]]:
        """(name, report, problem) for every RUN/eval/<name>/eval.json; a report that cannot be read
        comes with report None and the reason."""
        out = []
        for path in sorted((self.path / EVAL).glob(f"*/{EvalDir.RESULTS}")):
            name = path.parent.name
            try:
                report = self._json(EVAL, name, EvalDir.RESULTS)
                if not isinstance(report, dict):
                    raise RunFolderError(f"eval/{name}/eval.json holds {_kind(report)}; expected a JSON object")
                out.append((name, report, None))
            except (RunFolderError, OSError) as err:
                out.append((name, None, str(err)))
        return out


EVAL = "eval"


class EvalDir:
    """One evaluation's folder: its results (eval.json, rewritten after every finished attack), its
    reports (report.md, report.html) and AutoAttack's resumable state."""

    RESULTS = "eval.json"
    REPORTS = {"markdown": "report.md", "html": "report.html"}
    REPORT_TYPES = {"report.md": "text/markdown; charset=utf-8", "report.html": "text/html; charset=utf-8"}

    def __init__(self, path: str | Path):
        self.path = Path(path)

    # What makes two results of one checkpoint the same evaluation (their attacks can share one file).
    IDENTITY = ("eps", "n", "indices", "seed", "amp", "attack_path")  # attack_path: --fast's network, or plain

    @classmethod
    def default_for(cls, checkpoint: str | Path, *, n: int = 1000, seed: int = 0, amp: str = "off",
                    fast: bool = False) -> "EvalDir":
        """RUN/eval/epoch_NNNN for a run's checkpoint, CKPT_DIR/eval_<name> for a bare file; a sibling of it
        when it already holds an evaluation with other settings (for_settings)."""
        checkpoint = Path(checkpoint)
        run = RunDir.of_checkpoint(checkpoint)
        base = run.eval_dir(checkpoint.stem) if run is not None else cls(checkpoint.parent / f"eval_{checkpoint.stem}")
        return base.for_settings(n=n, seed=seed, amp=amp, fast=fast)

    def sibling(self, *, n: int, seed: int = 0, amp: str = "off", fast: bool = False) -> "EvalDir":
        """The folder beside this one named by the settings: epoch_0010-n10, epoch_0010-all (n 0: the whole
        test set), epoch_0010-n1000-seed1-bf16, epoch_0010-n1000-fast (`part eval --fast`)."""
        parts = [self.path.name, f"n{n}" if n else "all"]
        parts += [f"seed{seed}"] if seed else []
        parts += [amp] if amp and amp != "off" else []
        parts += ["fast"] if fast else []
        return EvalDir(self.path.with_name("-".join(parts)))

    def for_settings(self, *, n: int, seed: int = 0, amp: str = "off", fast: bool = False) -> "EvalDir":
        """This folder when it is free or holds an evaluation with these settings (its attacks are kept and
        added to), else sibling(): an evaluation never replaces another. `n` is the number asked for (0: all);
        stored results say how many images they had, which is the same unless the test set is smaller."""
        stored = self.results()
        if stored is None:
            return self
        same = (stored.get("seed", 0) == seed and stored.get("amp", "off") == (amp or "off")
                and (n == 0 or stored.get("n") == n) and (stored.get("attack_path", "plain") != "plain") == fast)
        return self if same else self.sibling(n=n, seed=seed, amp=amp, fast=fast)

    def other_evaluation(self, header: dict[str, Any]) -> dict[str, Any] | None:
        """The stored results when they are another evaluation of the checkpoint `header` describes (the
        same checkpoint file, other images, eps, seed or precision), else None. Results of another checkpoint
        file (a run trained again under the same name) are stale, not another evaluation: None."""
        stored = self.results()
        if stored is None or stored.get("checkpoint_sha256") != header.get("checkpoint_sha256"):
            return None
        defaults = {"amp": "off", "seed": 0, "attack_path": "plain"}
        differs = [k for k in self.IDENTITY if stored.get(k, defaults.get(k)) != header.get(k, defaults.get(k))]
        return stored if differs else None

    @classmethod
    def holding(cls, path: str | Path) -> "EvalDir | None":
        """The evaluation a path names: its eval.json file or its folder; None when it is neither."""
        path = Path(path)
        if path.is_file() and path.name == cls.RESULTS:
            return cls(path.parent)
        return cls(path) if (path / cls.RESULTS).is_file() else None

    @property
    def results_path(self) -> Path:
        return self.path / self.RESULTS

    def results(self) -> dict[str, Any] | None:
        """The results so far, or None when there are none (or they cannot be read: they are recomputed)."""
        try:
            data = json.loads(self.results_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None
        return data if isinstance(data, dict) else None

    def write_results(self, result: dict[str, Any]) -> None:
        write_json(self.results_path, result, indent=None)

    def report_paths(self) -> dict[str, Path]:
        return {kind: self.path / name for kind, name in self.REPORTS.items()}

    AUTOATTACK_STATE = "autoattack_state.json"

    def state_dir(self) -> Path:
        """Where a resumable attack keeps its state (AutoAttack: AUTOATTACK_STATE)."""
        return self.path


MANIFEST = "shipped.json"


def read_manifest(root: str | Path) -> dict[str, Any]:
    """ROOT/shipped.json (the shipped runs in named groups, the featured pair), or {} when it is missing or
    unreadable: the manifest only names things, nothing depends on it being there."""
    try:
        data = json.loads((Path(root) / MANIFEST).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# What the paper's tables call a run's method: its defense, plain and pixel-reweighted.
METHOD_LABELS = {"at": ("AT", "PART"), "trades": ("TRADES", "PART-T"), "mart": ("MART", "PART-M")}


def sweep_path(root: str | Path, name: str) -> Path:
    return Path(root) / ".sweeps" / f"{name}.json"


def write_sweep(root: str | Path, record: dict[str, Any]) -> None:
    path = sweep_path(root, record["name"])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, record)


def read_sweep(root: str | Path, name: str) -> dict[str, Any] | None:
    """A sweep's record, None if there is none; RunFolderError if it cannot be read as one."""
    path = sweep_path(root, name)
    if path.is_symlink():
        raise RunFolderError(f"{path.name} is a link; a sweep record must be a file of the checkpoints root")
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as err:
        raise RunFolderError(f"{path.name}: not readable JSON ({err})") from None
    if not (isinstance(data, dict) and isinstance(data.get("cells"), list)):
        raise RunFolderError(f"{path.name} holds {_kind(data)}; expected a sweep record with its cells")
    return data


def sweep_names(root: str | Path) -> list[str]:
    folder = Path(root) / ".sweeps"
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def method_label(defense: str | None, part: bool) -> str:
    """AT, PART, TRADES, PART-T, MART or PART-M (an unknown defense: its name in capitals)."""
    labels = METHOD_LABELS.get(defense or "at")
    return labels[bool(part)] if labels else str(defense).upper()


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null", bool: "a boolean"}.get(
        type(value), f"a {type(value).__name__}")


def check_meta(meta: Any) -> dict[str, Any]:
    """A checkpoint's meta: the model's name, classes, channels and image size, each checked."""
    from models import model_names

    if not isinstance(meta, dict):
        raise RunFolderError(f"meta is {_kind(meta)}; expected an object with model, num_classes, in_channels")
    if meta.get("model") not in model_names():
        raise RunFolderError(f"meta.model {str(meta.get('model'))[:40]!r} is not a known model; "
                             f"accepted: {', '.join(model_names())}")
    if not isinstance(meta.get("dataset"), str):
        raise RunFolderError(f"meta.dataset {str(meta.get('dataset'))[:40]!r} is not a dataset name")
    for key, low, high in (("num_classes", 2, 100_000), ("in_channels", 1, 4), ("image_size", 1, 4096)):
        value = meta.get(key)
        if type(value) is not int or not low <= value <= high:
            raise RunFolderError(f"meta.{key} {str(value)[:40]!r} is not a whole number in {low}..{high}")
    classes = meta.get("classes")
    if classes is not None and not (isinstance(classes, (list, tuple)) and all(isinstance(c, str) for c in classes)
                                    and len(classes) == meta["num_classes"]):
        raise RunFolderError(f"meta.classes should list {meta['num_classes']} class names, got {str(classes)[:60]}")
    return meta


def load_model(checkpoint: str | Path, device: str | torch.device = "cpu"):
    """A model in eval mode and its checkpoint dict (config, meta, epoch) from a checkpoint file.

    Anything that is not a PART Studio checkpoint of a known model raises RunFolderError."""
    from models import create_model

    name = Path(checkpoint).name
    ckpt = load_torch(checkpoint)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict) or "meta" not in ckpt:
        raise RunFolderError(f"{name} is not a PART Studio checkpoint (expected a dict with model weights and meta)")
    try:
        meta = check_meta(ckpt["meta"])
        model = create_model(meta["model"], num_classes=meta["num_classes"], in_channels=meta["in_channels"])
        model.load_state_dict(ckpt["model"])
    except RunFolderError as err:
        raise RunFolderError(f"{name}: {err}") from None
    except (RuntimeError, KeyError, ValueError, TypeError) as err:
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise RunFolderError(f"{name}: the weights do not fit model {meta['model']} ({first})") from None
    return model.to(device).eval(), ckpt
