"""One Settings object for the service, read from PART_* environment variables and `part serve` flags.

    PART_CHECKPOINTS        run folders (default ./checkpoints); job state lives in <it>/.jobs
    PART_DATA_DIR           a folder with one sub-folder per dataset (data/fashion-mnist, ...);
                            datasets missing there fall back to part.data.datasets's own lookup
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
    PART_SUBMIT_CONCURRENCY job submissions (POST /api/jobs) checked at once (default 2); more get 503
                            with Retry-After
    PART_ALLOWED_HOSTS      host names, comma-separated, accepted in the Host header besides the loopback
                            ones (localhost, 127.0.0.1, ::1), and in the Origin of requests that change
                            something; "*" accepts any Host. Without PART_TOKEN the Host is always checked
                            (a DNS-rebinding page cannot reach the API); with a token only when this is set
    PART_EXECUTOR           local | slurm: where a job runs unless its request says (default local)
    PART_SLURM_PARTITION, PART_SLURM_ACCOUNT, PART_SLURM_QOS, PART_SLURM_TIME_LIMIT (e.g. 04:00:00),
    PART_SLURM_GPUS_PER_NODE, PART_SLURM_CPUS_PER_TASK, PART_SLURM_MEM (e.g. 32G):
                            the sbatch defaults of a Slurm job (empty or 0: the cluster's own)
    PART_SLURM_EXTRA        more sbatch options, split like a command line (never run by a shell)
    PART_SLURM_DIR          the shared folder for job scripts and exit codes (default <checkpoints>/.jobs/slurm);
                            logs go beside the local jobs' logs, so the checkpoints must be shared too
    PART_SLURM_SIGNAL_S     seconds before the time limit that a job is asked to stop at its epoch's end (120)
    PART_SLURM_REQUEUE      a job stopped by its time limit or preempted queues itself again (default false)
"""

from __future__ import annotations

import ipaddress
import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

# The environment pydantic-settings reads: os.environ, or the mapping load_settings(env=...) was given.
_ENVIRONMENT: ContextVar[Mapping[str, str] | None] = ContextVar("part_environment", default=None)


class _Environment(EnvSettingsSource):
    def _load_env_vars(self) -> Mapping[str, str | None]:
        given = _ENVIRONMENT.get()
        if given is None:
            return super()._load_env_vars()
        return {k if self.case_sensitive else k.lower(): v for k, v in given.items()
                if not (self.env_ignore_empty and v == "")}

LOOPBACK_NAMES = ("localhost",)


class Settings(BaseSettings):
    """Read from PART_<FIELD> environment variables by pydantic-settings; `part serve` flags override them."""

    model_config = SettingsConfigDict(env_prefix="PART_", frozen=True, extra="forbid", env_ignore_empty=True)

    checkpoints: Path = Path("checkpoints")
    data_dir: Path | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    token: str = Field("", repr=False)
    max_upload_bytes: int = Field(10 * 1024 * 1024, ge=1)
    max_upload_pixels: int = Field(25_000_000, ge=1)
    job_concurrency: int = Field(1, ge=1)
    model_concurrency: int = Field(4, ge=1)
    model_cache: int = Field(16, ge=1)
    torch_threads: int = Field(0, ge=0)
    job_poll_s: float = Field(0.5, gt=0)  # how often the job supervisor looks at processes and the queue
    submit_concurrency: int = Field(2, ge=1)
    allowed_hosts: str = Field("", max_length=4096)
    executor: Literal["local", "slurm"] = "local"
    slurm_partition: str = ""
    slurm_account: str = ""
    slurm_qos: str = ""
    slurm_time_limit: str = ""
    slurm_gpus_per_node: int = Field(0, ge=0)
    slurm_cpus_per_task: int = Field(0, ge=0)
    slurm_mem: str = ""
    slurm_extra: str = ""
    slurm_dir: Path | None = None
    slurm_signal_s: int = Field(120, ge=0)
    slurm_requeue: bool = False

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _Environment(settings_cls)  # flags, then the environment; no .env or secret files

    @model_validator(mode="after")
    def _reachable_needs_a_token(self) -> "Settings":
        if not self.token and not is_loopback(self.host):
            raise ValueError(f"host {self.host} is reachable from other machines; set PART_TOKEN "
                             "(a bearer token) or bind to 127.0.0.1")
        return self

    def allowed_host_names(self) -> tuple[str, ...]:
        """PART_ALLOWED_HOSTS as normalised host names ('*' kept as is)."""
        return tuple(dict.fromkeys(normal_host(h) for h in self.allowed_hosts.split(",") if h.strip()))

    def checks_host(self) -> bool:
        """Is the Host header checked? Always without a token; with one, when PART_ALLOWED_HOSTS names hosts."""
        names = self.allowed_host_names()
        return "*" not in names and (not self.token or bool(names))

    @property
    def jobs_dir(self) -> Path:
        return self.checkpoints / ".jobs"

    def data_roots(self) -> list[Path]:
        """The folders a job may read datasets from: PART_DATA_DIR and the default dataset locations."""
        from part.data.datasets import default_data_roots

        roots = ([self.data_dir] if self.data_dir is not None else []) + default_data_roots()
        return list(dict.fromkeys(roots))

    def dataset_dir(self, name: str) -> str | None:
        """The folder for dataset `name` under data_dir, if there is one; else None (part.data.datasets decides)."""
        if self.data_dir is not None and (self.data_dir / name).is_dir():
            return str(self.data_dir / name)
        return None


def normal_host(name: str) -> str:
    """A host name as compared: lower case, without brackets or a trailing dot ('[::1]' -> '::1')."""
    return name.strip().lower().removeprefix("[").removesuffix("]").rstrip(".")


def is_loopback_name(host: str) -> bool:
    """A name only this machine answers to: localhost and its sub-names (RFC 6761), or a loopback address."""
    host = normal_host(host)
    return host == "localhost" or host.endswith(".localhost") or is_loopback(host)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 from a dual-stack socket
    return (mapped or address).is_loopback


def _message(err: ValidationError, from_env: set[str]) -> str:
    """pydantic's errors in the words of this service: the variable (or flag) and its value, then the rule."""
    lines = []
    for e in err.errors():
        msg = e["msg"].removeprefix("Value error, ")
        if not e["loc"]:
            lines.append(msg)
            continue
        name = str(e["loc"][0])
        var = f"PART_{name.upper()}" if name in from_env else name
        lines.append(f"{var}={e['input']!r}: {msg}" if "input" in e else f"{var}: {msg}")
    return "; ".join(lines)


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from the environment (os.environ, or the mapping given), then explicit overrides (CLI flags;
    None is ignored). Folders come back absolute."""
    known = set(Settings.model_fields)
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ValueError(f"unknown setting {', '.join(unknown)}; accepted: {', '.join(sorted(known))}")
    source = os.environ if env is None else env
    from_env = {n for n in known if source.get(f"PART_{n.upper()}", "").strip()} - set(given)
    token = _ENVIRONMENT.set(env)
    try:
        settings = Settings(**given)
    except ValidationError as err:
        raise ValueError(_message(err, from_env)) from None
    finally:
        _ENVIRONMENT.reset(token)
    folders = {k: getattr(settings, k).resolve() for k in ("checkpoints", "data_dir", "slurm_dir") if getattr(settings, k)}
    return settings.model_copy(update=folders)
