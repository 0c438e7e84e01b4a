"""Latency of /api/explain for one 28x28 image and one CAM method: over HTTP and in-process.

    .venv/bin/python benchmarks/bench_explain.py [--n 50] [--method gradcam] [--run DIR]

Without --run a tiny PART run is trained first (a few seconds) in a temporary folder. The HTTP
figure is a real `part serve` process on a free loopback port, timed from this process with httpx
(multipart upload, JSON response); the in-process figure calls the same service function the
endpoint calls (decode, CAM, eps-map, rendering), so the difference is the HTTP layer.
Target: HTTP p50 under 100 ms on this CPU.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import torch
from PIL import Image


def tiny_run(root: Path) -> str:
    from part.training.config import preset
    from part.training.trainer import train

    cfg = preset("fmnist-part", subset=256, epochs=2, burn_in_epochs=1, eval_n=32, attack_steps=1, eval_steps=1,
                 probe_count=4, batch_size=64)
    train(cfg, root / "bench-tiny")
    return "bench-tiny"


def sample_png() -> bytes:
    from part.data.datasets import load_dataset

    x, _, _ = load_dataset("fashion-mnist", "test")[0]
    buffer = io.BytesIO()
    Image.fromarray((x[0] * 255).round().byte().numpy()).save(buffer, format="PNG")
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def time_http(root: Path, run: str, image: bytes, method: str, n: int, threads: int) -> list[float]:
    port = free_port()
    env = {**os.environ, "PART_TORCH_THREADS": str(threads)}
    env.pop("PART_TOKEN", None)
    server = subprocess.Popen([sys.executable, "-m", "part.cli", "serve", "--port", str(port), "--checkpoints", str(root)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            deadline = time.time() + 120
            while True:
                try:
                    client.get("/api/health")
                    break
                except httpx.TransportError:
                    if time.time() > deadline or server.poll() is not None:
                        raise SystemExit("the server did not start")
                    time.sleep(0.2)

            def once() -> float:
                t0 = time.perf_counter()
                r = client.post("/api/explain", data={"run": run, "methods": method}, files={"file": ("x.png", image)})
                r.raise_for_status()
                return time.perf_counter() - t0

            for _ in range(5):  # model load, first-call allocations
                once()
            return [once() for _ in range(n)]
    finally:
        server.terminate()
        server.wait(10)


def time_in_process(root: Path, run: str, image: bytes, method: str, n: int, threads: int) -> list[float]:
    from backend.app import create_app
    from backend.services.explain import explain
    from backend.api.schemas import ExplainForm
    from backend.settings import load_settings

    torch.set_num_threads(threads)
    svc = create_app(load_settings(env={}, checkpoints=root), start_jobs=False).state.services
    form = ExplainForm(run=run, methods=method)

    def once() -> float:
        t0 = time.perf_counter()
        explain(svc, form, image)
        return time.perf_counter() - t0

    for _ in range(5):
        once()
    return [once() for _ in range(n)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=50)
    p.add_argument("--method", default="gradcam")
    p.add_argument("--run", help="an existing run folder (default: train a tiny one)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads, both paths")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-explain-"))
    try:
        if args.run:
            root, run = Path(args.run).resolve().parent, Path(args.run).name
        else:
            root, run = tmp, tiny_run(tmp)
        image = sample_png()
        http = time_http(root, run, image, args.method, args.n, args.threads)
        local = time_in_process(root, run, image, args.method, args.n, args.threads)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = {"n": args.n, "method": args.method, "image": "28x28 PNG",
              "http_p50_ms": round(statistics.median(http) * 1000, 2),
              "http_p90_ms": round(percentile(http, 0.9) * 1000, 2),
              "in_process_p50_ms": round(statistics.median(local) * 1000, 2),
              "in_process_p90_ms": round(percentile(local, 0.9) * 1000, 2)}
    print(f"explain, one {args.method} map, 28x28 image, n={args.n}")
    print(f"  HTTP        p50 {result['http_p50_ms']:7.2f} ms   p90 {result['http_p90_ms']:7.2f} ms")
    print(f"  in-process  p50 {result['in_process_p50_ms']:7.2f} ms   p90 {result['in_process_p90_ms']:7.2f} ms")
    print(f"  target: HTTP p50 < 100 ms -> {'met' if result['http_p50_ms'] < 100 else 'NOT met'}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
