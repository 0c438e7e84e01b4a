"""The schemathesis CLI against a real `part serve`: all operations, all phases, every default check.

Bounded (5 examples per operation, one worker: the coverage phase of schemathesis 4 trips over a
CPython AST race with several). The server's datasets point at an empty folder, so the training and
evaluation jobs the stateful phase submits fail at once instead of training.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.backend.test_server_process import Server

CONFIG = Path(__file__).with_name("schemathesis.toml")


def test_the_schemathesis_cli_finds_no_failure(run_root, tmp_path):
    root = tmp_path / "checkpoints"
    shutil.copytree(run_root, root)
    (tmp_path / "no-data").mkdir()
    server = Server(root, tmp_path / "server.log", env={"PART_FASHION_MNIST_DIR": str(tmp_path / "no-data")}).start()
    try:
        cli = Path(sys.executable).with_name("st")
        result = subprocess.run(
            [str(cli), "--config-file", str(CONFIG), "run", f"http://127.0.0.1:{server.port}/openapi.json",
             "--max-examples", "5", "--workers", "1", "--generation-deterministic", "--max-failures", "20",
             "--request-timeout", "60"],
            capture_output=True, text=True, timeout=600, cwd=tmp_path)
        summary = result.stdout[result.stdout.find("SUMMARY"):] or result.stdout[-4000:]
        assert result.returncode == 0, result.stdout[-12000:]
        assert "Tested: 21" in summary and "failure" not in summary.split("Test cases:")[-1].replace(
            "0 failures", ""), summary
    finally:
        server.process.terminate()
        server.process.wait(10)
