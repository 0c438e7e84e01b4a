"""Answer times of the Evaluate and Who-wins views on the shipped runs, once their data is cached.

Starts a real `part serve` on a copy of the shipped runs (default: AT and PART, seeds 0 and 1), asks each
question once to fill the caches, then REPEATS more times and prints median and max seconds per request:
  evaluations  GET /api/evaluations?runs=...      (everything the Evaluate page shows)
  wins         GET /api/evaluations/wins (AT s0 vs PART s0, PGD-20, a page of 4 images)
  pictures     one who-wins page's pictures: per image /api/explain + /api/attack (PGD-20) for both runs,
               4 images, recomputed each time (the dashboard caches them per image)
The JSON line last; the goal is under 2 s for evaluations and wins.

    .venv/bin/python benchmarks/bench_evaluate_views.py [--runs fmnist-at-s0,...] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.backend.test_server_process import Server  # noqa: E402  (the test suite's real-server helper)

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = "fmnist-at-s0,fmnist-part-s0,fmnist-at-s1,fmnist-part-s1"


def timed(call) -> float:
    t0 = time.perf_counter()
    response = call()
    assert response.status_code == 200, response.text[:300]
    return time.perf_counter() - t0


def pictures(c: httpx.Client, wins: dict) -> None:
    for item in wins["only_a"]["items"]:
        for run, epoch in ((wins["run_a"], wins["epoch_a"]), (wins["run_b"], wins["epoch_b"])):
            fields = {"run": run, "epoch": str(epoch), "index": str(item["index"]), "split": "test",
                      "methods": "gradcam", "target": "label"}
            assert c.post("/api/explain", data=fields).status_code == 200
            r = c.post("/api/attack", data=fields | {"attack": "pgd", "steps": "20", "budget": "scalar"})
            assert r.status_code == 200, r.text[:300]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", default=SHIPPED, help="shipped runs to copy (comma-separated)")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    times: dict[str, list[float]] = {"evaluations": [], "wins": [], "pictures": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "checkpoints"
        root.mkdir()
        for run in runs:
            shutil.copytree(ROOT / "checkpoints" / run, root / run, ignore=shutil.ignore_patterns("*.html"))
        server = Server(root, Path(tmp) / "server.log").start()
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=600) as c:
                ask = {"evaluations": lambda: c.get("/api/evaluations", params={"runs": ",".join(runs)}),
                       "wins": lambda: c.get("/api/evaluations/wins", params={
                           "run_a": "fmnist-at-s0", "run_b": "fmnist-part-s0", "attack": "pgd20", "limit": 4})}
                first = {name: timed(call) for name, call in ask.items()}  # fills the caches
                wins = ask["wins"]().json()
                pictures(c, wins)  # loads both checkpoints and the test set once
                for _ in range(args.repeats):
                    for name, call in ask.items():
                        times[name].append(timed(call))
                    t0 = time.perf_counter()
                    pictures(c, wins)
                    times["pictures"].append(time.perf_counter() - t0)
        finally:
            server.process.terminate()
            server.process.wait(10)
    result = {"runs": runs, "repeats": args.repeats, "cpus": os.cpu_count(),
              "load_1min": round(os.getloadavg()[0], 2)}
    for name, values in times.items():
        result[f"{name}_median_s"] = round(statistics.median(values), 3)
        result[f"{name}_max_s"] = round(max(values), 3)
        if name in first:
            result[f"{name}_first_s"] = round(first[name], 3)
        print(f"{name:12s} median {statistics.median(values):.3f} s  max {max(values):.3f} s"
              + (f"  (first, filling the cache: {first[name]:.3f} s)" if name in first else ""))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
