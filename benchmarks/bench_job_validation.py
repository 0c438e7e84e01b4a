"""Health under hostile-but-valid job submissions: what validating a job costs the other routes.

Starts a real `part serve` on an empty checkpoints folder; CONCURRENT clients post training jobs
whose bodies are as expensive to check as the API allows (about 8 KB: epochs 100000 and an eps and an
eps_low schedule of 460 steps each, eps falling below eps_low only at the last epoch, so the whole
run has to be checked before the 422) again and again for SECONDS, a 503 retried after its
Retry-After; `/api/health` and `/api/runs` are polled the whole time. Prints the p50/p99/max of both,
the statuses the submissions got, and the JSON line last. Loopback only; it stops by itself.

    .venv/bin/python benchmarks/bench_job_validation.py [--concurrent 8] [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.backend.test_server_process import Server  # noqa: E402  (the test suite's real-server helper)

EPOCHS = 100_000


def hostile_body() -> dict:
    """Valid JSON, valid fields, every schedule step in range; refused (422) only at the last epoch."""
    eps = "step:0.1:" + ":".join(f"{e}=0.1" for e in range(2, 462)) + f":{EPOCHS}=0.01"
    low = "step:0.05:" + ":".join(f"{e}=0.05" for e in range(2, 462))
    return {"kind": "train", "preset": "fmnist-part", "name": "hostile",
            "overrides": {"epochs": EPOCHS, "eps_schedule": eps, "eps_low_schedule": low}}


def _quantiles(values: list[float]) -> dict[str, float]:
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50_s": round(q[49], 4), "p99_s": round(q[98], 4), "max_s": round(max(values), 4), "n": len(values)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--concurrent", type=int, default=8)
    p.add_argument("--seconds", type=float, default=20)
    args = p.parse_args()
    body = hostile_body()
    size = len(json.dumps(body))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "checkpoints"
        root.mkdir()
        server = Server(root, Path(tmp) / "server.log").start()
        base = f"http://127.0.0.1:{server.port}"
        try:
            polls: dict[str, list[float]] = {"/api/health": [], "/api/runs": []}
            stop = threading.Event()

            def poll(path: str) -> None:
                with httpx.Client(base_url=base, timeout=60) as c:
                    while not stop.is_set():
                        t0 = time.perf_counter()
                        assert c.get(path).status_code == 200
                        polls[path].append(time.perf_counter() - t0)
                        time.sleep(0.05)

            def submit(_: int) -> list[tuple[int, float]]:
                out, end = [], time.perf_counter() + args.seconds
                with httpx.Client(base_url=base, timeout=120) as c:
                    while time.perf_counter() < end:
                        t0 = time.perf_counter()
                        r = c.post("/api/jobs", json=body)
                        out.append((r.status_code, time.perf_counter() - t0))
                        if r.status_code == 503:
                            time.sleep(float(r.headers.get("retry-after", 1)))
                return out

            pollers = [threading.Thread(target=poll, args=(path,)) for path in polls]
            for t in pollers:
                t.start()
            time.sleep(1.0)  # a baseline before the load
            t0 = time.perf_counter()
            with ThreadPoolExecutor(args.concurrent) as pool:
                answers = [a for per_client in pool.map(submit, range(args.concurrent)) for a in per_client]
            wall = time.perf_counter() - t0
            time.sleep(0.5)
            stop.set()
            for t in pollers:
                t.join()
        finally:
            server.process.terminate()
            server.process.wait(10)
    codes = [code for code, _ in answers]
    checked = [s for code, s in answers if code == 422]
    result = {"concurrent": args.concurrent, "seconds": args.seconds, "body_bytes": size,
              "submissions": len(answers), "statuses": {str(c): codes.count(c) for c in sorted(set(codes))},
              "submit_422_p50_s": round(statistics.median(checked), 4) if checked else None,
              "health": _quantiles(polls["/api/health"]), "runs": _quantiles(polls["/api/runs"]),
              "wall_s": round(wall, 2)}
    print(f"{args.concurrent} clients posting {size}-byte hostile job bodies for {args.seconds:g} s: "
          f"{len(answers)} answered {result['statuses']}; a 422 took {result['submit_422_p50_s']} s (median)")
    for path, key in (("/api/health", "health"), ("/api/runs", "runs")):
        q = result[key]
        print(f"{path} over {q['n']} polls: p50 {q['p50_s']} s, p99 {q['p99_s']} s, max {q['max_s']} s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
