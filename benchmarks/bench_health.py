"""Liveness under a saturated model pool: health latency while many long attacks are requested at once.

Starts a real `part serve` on a copy of one shipped run; CONCURRENT clients post `POST /api/attack`
(MMA, 200 steps) again and again for SECONDS (a refused one retries after Retry-After), while
`/api/health` is polled the whole time. Prints health p50/p99/max, how many attacks
were computed and how many got an immediate 503 (with Retry-After), and the JSON line last.

    .venv/bin/python benchmarks/bench_health.py [--concurrent 96] [--seconds 30] [--run fmnist-part-s0]
"""

from __future__ import annotations

import argparse
import json
import shutil
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

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--concurrent", type=int, default=96)
    p.add_argument("--run", default="fmnist-part-s0")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--seconds", type=float, default=30)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "checkpoints"
        root.mkdir()
        shutil.copytree(ROOT / "checkpoints" / args.run, root / args.run)
        server = Server(root, Path(tmp) / "server.log").start()
        base = f"http://127.0.0.1:{server.port}"
        try:
            health, stop = [], threading.Event()

            def poll():
                with httpx.Client(base_url=base, timeout=60) as c:
                    while not stop.is_set():
                        t0 = time.perf_counter()
                        assert c.get("/api/health").status_code == 200
                        health.append(time.perf_counter() - t0)
                        time.sleep(0.05)

            def attack(k: int) -> list[int]:
                codes, end = [], time.perf_counter() + args.seconds
                with httpx.Client(base_url=base, timeout=600) as c:
                    while time.perf_counter() < end:
                        r = c.post("/api/attack", data={"run": args.run, "probe": str(k % 10), "attack": "mma",
                                                        "steps": str(args.steps)})
                        codes.append(r.status_code)
                        if r.status_code == 503:
                            time.sleep(float(r.headers.get("retry-after", 1)))
                return codes

            poller = threading.Thread(target=poll)
            poller.start()
            t0 = time.perf_counter()
            with ThreadPoolExecutor(args.concurrent) as pool:
                codes = [c for per_client in pool.map(attack, range(args.concurrent)) for c in per_client]
            wall = time.perf_counter() - t0
            time.sleep(0.5)
            stop.set()
            poller.join()
        finally:
            server.process.terminate()
            server.process.wait(10)
    q = statistics.quantiles(health, n=100, method="inclusive")
    result = {"concurrent": args.concurrent, "health_requests": len(health), "health_p50_s": round(q[49], 4),
              "health_p99_s": round(q[98], 4), "health_max_s": round(max(health), 4),
              "attacks_200": codes.count(200), "attacks_503": codes.count(503),
              "other": sorted({c for c in codes if c not in (200, 503)}), "wall_s": round(wall, 2)}
    print(f"{args.concurrent} clients posting MMA-{args.steps} attacks for {args.seconds:g} s: {result['attacks_200']} computed, "
          f"{result['attacks_503']} answered 503 at once, other statuses {result['other'] or 'none'}")
    print(f"/api/health over {len(health)} polls: p50 {result['health_p50_s']} s, p99 {result['health_p99_s']} s, "
          f"max {result['health_max_s']} s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
