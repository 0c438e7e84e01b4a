"""The HTTP client of the PART Studio API: one method per endpoint, one exception type for every failure.

The base URL comes from PART_API_URL (default http://127.0.0.1:8000), the bearer token from PART_TOKEN.
Connection errors, timeouts and 4xx/5xx answers all become `ApiError` with a message a person can act on.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
FAST_S, SLOW_S = 10.0, 120.0  # listings vs. CAMs, attacks and grids (CPU-bound on the server)


class ApiError(Exception):
    """Any failure to get an answer: `down` is True when the server could not be reached at all."""

    def __init__(self, message: str, *, status: int | None = None, down: bool = False):
        super().__init__(message)
        self.message, self.status, self.down = message, status, down


def api_url() -> str:
    return os.environ.get("PART_API_URL", "").strip().rstrip("/") or DEFAULT_URL


def start_hint(url: str) -> str:
    """How to start the API this dashboard was pointed at: the port of its URL, not the default's."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    make = "make run" if port == 8000 else f"PART_PORT={port} make run"
    where = "" if parts.hostname in ("127.0.0.1", "localhost", "::1") else f" on {parts.hostname}"
    return f"start it with `{make}`, or `part serve --port {port}`{where} in another terminal"


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return str(detail) if detail else (response.text.strip()[:300] or response.reason_phrase)


class PartApi:
    def __init__(self, base_url: str | None = None, token: str | None = None):
        self.base_url = (base_url or api_url()).rstrip("/")
        token = os.environ.get("PART_TOKEN", "") if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers,
                                  timeout=httpx.Timeout(FAST_S, connect=3.0))

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, *, timeout: float = FAST_S, **kw) -> httpx.Response:
        try:
            response = self._http.request(method, path, timeout=httpx.Timeout(timeout, connect=3.0), **kw)
        except httpx.ConnectError:
            raise ApiError(f"Cannot reach the PART Studio API at {self.base_url}; {start_hint(self.base_url)}.",
                           down=True) from None
        except httpx.TimeoutException:
            raise ApiError(f"The PART Studio API at {self.base_url} did not answer {method} {path} within "
                           f"{timeout:.0f} s; it may be busy with a job. Try again in a moment.", down=True) from None
        except httpx.HTTPError as err:
            raise ApiError(f"Request to {self.base_url}{path} failed: {err}", down=True) from None
        if response.status_code >= 400:
            raise ApiError(f"{_detail(response)} (HTTP {response.status_code} from {method} {path})",
                           status=response.status_code)
        return response

    def _json(self, method: str, path: str, **kw) -> Any:
        return self._request(method, path, **kw).json()

    # -- service --
    def health(self) -> dict:
        return self._json("GET", "/api/health", timeout=5.0)

    def options(self) -> dict:
        """The catalogue: presets, defenses, CAM methods, recipes, models, datasets, attacks (GET /api/options)."""
        return self._json("GET", "/api/options")

    def theory(self, params: dict[str, float]) -> dict:
        """Section 3.3's two-pixel model for x1, x2, w1, w2, b, y, eps1, eps2 (GET /api/theory)."""
        return self._json("GET", "/api/theory", params=params)

    # -- runs and data --
    def runs(self) -> list[dict]:
        return self._json("GET", "/api/runs")

    def run(self, run_id: str) -> dict:
        return self._json("GET", f"/api/runs/{run_id}")

    def probes(self, run_id: str) -> list[dict]:
        return self._json("GET", f"/api/runs/{run_id}/probes", timeout=SLOW_S)

    def datasets(self) -> list[dict]:
        return self._json("GET", "/api/datasets")

    def sample(self, dataset: str, index: int, split: str = "test") -> dict:
        return self._json("GET", f"/api/datasets/{dataset}/samples/{index}", params={"split": split}, timeout=SLOW_S)

    # -- images: explain, attack, compare (multipart forms) --
    def _form(self, path: str, fields: dict[str, Any], upload: tuple[str, bytes] | None) -> dict:
        data = {k: _form_text(v) for k, v in fields.items() if v is not None}
        files = {"file": upload} if upload is not None else None
        return self._json("POST", path, data=data, files=files, timeout=SLOW_S)

    def explain(self, fields: dict[str, Any], upload: tuple[str, bytes] | None = None) -> dict:
        return self._form("/api/explain", fields, upload)

    def attack(self, fields: dict[str, Any], upload: tuple[str, bytes] | None = None) -> dict:
        return self._form("/api/attack", fields, upload)

    def compare(self, fields: dict[str, Any], upload: tuple[str, bytes] | None = None) -> dict:
        return self._form("/api/compare", fields, upload)

    def compare_figure(self, fields: dict[str, Any], upload: tuple[str, bytes] | None = None,
                       fmt: str = "png") -> bytes:
        """The compare grid as Figure 2: PNG or PDF bytes (POST /api/compare/figure)."""
        data = {k: _form_text(v) for k, v in {**fields, "format": fmt}.items() if v is not None}
        files = {"file": upload} if upload is not None else None
        return self._request("POST", "/api/compare/figure", data=data, files=files, timeout=SLOW_S).content

    # -- jobs --
    def jobs(self) -> list[dict]:
        return self._json("GET", "/api/jobs")

    def job(self, job_id: str) -> dict:
        return self._json("GET", f"/api/jobs/{job_id}")

    def job_log(self, job_id: str, tail: int = 4000) -> str:
        return self._request("GET", f"/api/jobs/{job_id}/log", params={"tail": tail}).text

    def submit_train(self, preset: str, overrides: dict[str, Any], name: str | None = None, nproc: int = 1,
                     placement: dict[str, Any] | None = None) -> dict:
        """placement: {"executor": "slurm", "slurm": {...}} to run elsewhere than the server's default."""
        body = {"kind": "train", "preset": preset, "overrides": overrides, "name": name or None, "nproc": nproc,
                **(placement or {})}
        return self._json("POST", "/api/jobs", json=body, timeout=SLOW_S)

    def submit_eval(self, run: str, epoch: int | None, attacks: str, n: int, **options: Any) -> dict:
        """options: corruption_files (a folder on the server), map_run (the run whose CAMs make the eps-maps of
        pgd20-map / mma-map); only the ones given are sent."""
        body = {"kind": "eval", "run": run, "epoch": epoch, "attacks": attacks, "n": n,
                **{k: v for k, v in options.items() if v is not None}}
        return self._json("POST", "/api/jobs", json=body, timeout=SLOW_S)

    def cancel(self, job_id: str) -> dict:
        return self._json("POST", f"/api/jobs/{job_id}/cancel", timeout=SLOW_S)

    def resume(self, job_id: str) -> dict:
        return self._json("POST", f"/api/jobs/{job_id}/resume")

    def delete_job(self, job_id: str) -> None:
        self._request("DELETE", f"/api/jobs/{job_id}")


def _form_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)
