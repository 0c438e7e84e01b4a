"""Dashboard fixtures: tiny real runs with an evaluation report, a real `part serve` on a loopback port,
and AppTest pointed at it through PART_API_URL."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from tests.frontend.servers import APP, backend, cancel_active_jobs, make_runs

TIMEOUT_S = 120  # one script run of a page; the CPU is shared with the job processes


@pytest.fixture(scope="session")
def run_root(tmp_path_factory) -> Path:
    """fmnist-part-tiny (with an evaluation report of epoch 2) and fmnist-at-tiny, 2 epochs each."""
    from part.evaluation.job import evaluate_checkpoint

    root = make_runs(tmp_path_factory.mktemp("checkpoints"))
    evaluate_checkpoint(run=root / "fmnist-part-tiny", attacks="clean,pgd5,corruptions,checks", n=16, device="cpu")
    return root


@pytest.fixture(scope="session")
def api_url(run_root, tmp_path_factory) -> str:
    server, url = backend(run_root, tmp_path_factory.mktemp("logs") / "backend.log")
    yield url
    try:
        cancel_active_jobs(url)
    finally:
        server.stop()


@pytest.fixture
def api(api_url):
    with httpx.Client(base_url=api_url, timeout=60) as client:
        yield client


@pytest.fixture
def app(api_url, monkeypatch):
    """The dashboard's entry script, run once, talking to the test backend."""
    monkeypatch.setenv("PART_API_URL", api_url)
    monkeypatch.delenv("PART_TOKEN", raising=False)
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S)
    return at.run()


def open_page(at: AppTest, name: str) -> AppTest:
    return at.switch_page(f"views/{name}.py").run()


def no_exceptions(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
