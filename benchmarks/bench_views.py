"""Response times of the Compare view's requests on the shipped runs, against a real `part serve`.

Copies two shipped runs (default fmnist-at-s0 and fmnist-part-s0: 10 epochs each, stored probes) into a
temporary checkpoint root, starts the server, and times from this process with httpx:
- POST /api/compare: 2 runs x 10 epochs of a probe image, with the metrics (energy on the object per cell,
  the difference row B - A with top-20 % IoU and Spearman), after one warm-up request (model and file
  caches); the probe images are cycled, so no answer is reused;
- POST /api/compare/figure, PNG and PDF: once drawn per probe image ("drawn"), and asked again for the same
  form ("cached": the server keeps the rendered bytes while the checkpoints are unchanged).
Prints p50/p95 per request against the 2 s goal, and the JSON line last.

    .venv/bin/python benchmarks/bench_views.py [--n 20] [--runs fmnist-at-s0,fmnist-part-s0]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.backend.test_server_process import Server  # noqa: E402  (the test suite's real-server helper)

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 2.0


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def timed(client, path: str, data: dict) -> float:
    t0 = time.perf_counter()
    response = client.post(path, data=data)
    elapsed = time.perf_counter() - t0
    assert response.status_code == 200, response.text[:300]
    return elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", default="fmnist-at-s0,fmnist-part-s0", help="two shipped runs: A,B (B - A)")
    p.add_argument("--n", type=int, default=20, help="timed requests per kind")
    args = p.parse_args()
    runs = args.runs.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "checkpoints"
        root.mkdir()
        for run in runs:
            shutil.copytree(ROOT / "checkpoints" / run, root / run)
        server = Server(root, Path(tmp) / "server.log").start()
        server.client.timeout = 120
        try:
            probes = len(server.client.get(f"/api/runs/{runs[0]}/probes").json())
            form = {"runs": ",".join(runs), "pair": ",".join(runs), "top_k": "20"}
            timed(server.client, "/api/compare", {**form, "probe": "0"})  # warm-up: models, probe files
            samples: dict[str, list[float]] = {"compare": [], "figure png drawn": [], "figure pdf drawn": [],
                                               "figure png cached": [], "figure pdf cached": []}
            for k in range(args.n):
                samples["compare"].append(timed(server.client, "/api/compare", {**form, "probe": str(k % probes)}))
            for k in range(min(args.n, probes)):
                for fmt in ("png", "pdf"):
                    data = {**form, "probe": str(k), "format": fmt}
                    samples[f"figure {fmt} drawn"].append(timed(server.client, "/api/compare/figure", data))
                    samples[f"figure {fmt} cached"].append(timed(server.client, "/api/compare/figure", data))
        finally:
            server.process.terminate()
            server.process.wait(10)
    result = {"runs": runs, "epochs": 10, "n": {k: len(v) for k, v in samples.items()}}
    print(f"Compare view on {' vs '.join(runs)} (2 runs x all epochs, stored probes), real server, httpx")
    for name, values in samples.items():
        p50, p95 = statistics.median(values), percentile(values, 0.95)
        result[name.replace(" ", "_") + "_p50_s"] = round(p50, 3)
        result[name.replace(" ", "_") + "_p95_s"] = round(p95, 3)
        print(f"  {name:<20} n={len(values):3d}  p50 {p50:6.3f} s  p95 {p95:6.3f} s  "
              f"goal p95 < {GOAL_S:g} s: {'met' if p95 < GOAL_S else 'NOT met'}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
