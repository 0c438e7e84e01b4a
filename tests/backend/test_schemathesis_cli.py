"""The schemathesis CLI against a real `part serve`: all operations, all phases, every default check.

Bounded (3 examples per operation, one worker: the coverage phase of schemathesis 4 trips over a
CPython AST race with several). The server's datasets point at an empty folder, so the training and
evaluation jobs the stateful phase submits fail at once instead of training.
"""

from __future__ import annotations

import re
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
             "--max-examples", "3", "--workers", "1", "--generation-deterministic", "--max-failures", "20",
             "--request-timeout", "60"],
            capture_output=True, text=True, timeout=600, cwd=tmp_path)
        summary = result.stdout[result.stdout.find("SUMMARY"):] or result.stdout[-4000:]
        assert result.returncode == 0, result.stdout[-12000:]
        selected = re.search(r"Selected: (\d+)/(\d+)\s+Tested: (\d+)", summary)
        assert selected and len(set(selected.groups())) == 1, summary  # every operation, each tested
        assert int(selected.group(1)) >= 20, summary
        cases = re.search(r"(\d+) generated, (\d+) passed", summary)
        assert cases and cases.group(1) == cases.group(2) and "Errors:" not in summary, summary
    finally:
        server.process.terminate()
        server.process.wait(10)
