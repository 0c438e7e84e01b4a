"""One Settings object for the service, read from PART_* environment variables and `part serve` flags.

    PART_CHECKPOINTS        run folders (default ./checkpoints); job state lives in <it>/.jobs
    PART_DATA_DIR           a folder with one sub-folder per dataset (data/fashion-mnist, ...);
                            datasets missing there fall back to part.data's own lookup
    PART_DEVICE             auto | cpu | cuda: where the API runs models (default auto)
    PART_HOST, PART_PORT    bind address (default 127.0.0.1:8000)
    PART_TOKEN              bearer token; required for every route but /api/health when set,
                            and the server refuses a non-loopback host without one
    PART_MAX_UPLOAD_BYTES   upload size limit (default 10 MiB)
    PART_MAX_UPLOAD_PIXELS  decoded size limit, width x height (default 25 million)
    PART_JOB_CONCURRENCY    training/evaluation processes at once (default 1)
    PART_MODEL_CONCURRENCY  explain/attack/compare requests computed at once (default 4); more
                            get 503 with Retry-After at once instead of waiting in a queue
    PART_MODEL_CACHE        loaded checkpoints kept in memory (default 16)
    PART_TORCH_THREADS      intra-op threads for API inference (default 0: torch's choice)
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

LOOPBACK_NAMES = ("localhost",)


@dataclass(frozen=True)
class Settings:
    checkpoints: Path = Path("checkpoints")
    data_dir: Path | None = None
    device: str = "auto"
    host: str = "127.0.0.1"
    port: int = 8000
    token: str = field(default="", repr=False)
    max_upload_bytes: int = 10 * 1024 * 1024
    max_upload_pixels: int = 25_000_000
    job_concurrency: int = 1
    model_concurrency: int = 4
    model_cache: int = 16
    torch_threads: int = 0
    job_poll_s: float = 0.5  # how often the job supervisor looks at processes and the queue

    @property
    def jobs_dir(self) -> Path:
        return self.checkpoints / ".jobs"

    def validate(self) -> "Settings":
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"PART_DEVICE '{self.device}' is not accepted; accepted: auto, cpu, cuda")
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} is out of range; accepted: 1..65535")
        for name in ("max_upload_bytes", "max_upload_pixels", "job_concurrency", "model_concurrency", "model_cache"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.token and not is_loopback(self.host):
            raise ValueError(f"host {self.host} is reachable from other machines; set PART_TOKEN "
                             "(a bearer token) or bind to 127.0.0.1")
        return self

    def data_roots(self) -> list[Path]:
        """The folders a job may read datasets from: PART_DATA_DIR and the default dataset locations."""
        from part.data import default_data_roots

        roots = ([self.data_dir] if self.data_dir is not None else []) + default_data_roots()
        return list(dict.fromkeys(roots))

    def dataset_dir(self, name: str) -> str | None:
        """The folder for dataset `name` under data_dir, if there is one; else None (part.data decides)."""
        if self.data_dir is not None and (self.data_dir / name).is_dir():
            return str(self.data_dir / name)
        return None


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 from a dual-stack socket
    return (mapped or address).is_loopback


_ENV = {  # environment variable -> (field, parser)
    "PART_CHECKPOINTS": ("checkpoints", Path),
    "PART_DATA_DIR": ("data_dir", Path),
    "PART_DEVICE": ("device", str),
    "PART_HOST": ("host", str),
    "PART_PORT": ("port", int),
    "PART_TOKEN": ("token", str),
    "PART_MAX_UPLOAD_BYTES": ("max_upload_bytes", int),
    "PART_MAX_UPLOAD_PIXELS": ("max_upload_pixels", int),
    "PART_JOB_CONCURRENCY": ("job_concurrency", int),
    "PART_MODEL_CONCURRENCY": ("model_concurrency", int),
    "PART_MODEL_CACHE": ("model_cache", int),
    "PART_TORCH_THREADS": ("torch_threads", int),
}


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from the environment, then explicit overrides (CLI flags); None overrides are ignored."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for var, (name, parse) in _ENV.items():
        text = env.get(var, "").strip()
        if text:
            try:
                values[name] = parse(text)
            except ValueError:
                raise ValueError(f"{var}='{text}' is not a valid {parse.__name__}") from None
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(Settings)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown setting {', '.join(unknown)}; accepted: {', '.join(sorted(known))}")
    values["checkpoints"] = Path(values.get("checkpoints", "checkpoints")).resolve()
    if values.get("data_dir") is not None:
        values["data_dir"] = Path(values["data_dir"]).resolve()
    return Settings(**values).validate()
