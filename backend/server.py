"""`python -m backend` (what `part serve` runs): the API under uvicorn, on 127.0.0.1:8000 by default."""

from __future__ import annotations

import argparse
import sys

from backend.settings import load_settings


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="part serve", description="serve the PART Studio API (docs at /docs)")
    p.add_argument("--host", help="bind address (default $PART_HOST or 127.0.0.1; others need $PART_TOKEN)")
    p.add_argument("--port", type=int, help="port (default $PART_PORT or 8000)")
    p.add_argument("--checkpoints", help="run folder root (default $PART_CHECKPOINTS or ./checkpoints)")
    p.add_argument("--data-dir", dest="data_dir", help="folder with one sub-folder per dataset ($PART_DATA_DIR)")
    p.add_argument("--device", help="auto, cpu or cuda for API inference ($PART_DEVICE)")
    p.add_argument("--jobs", type=int, dest="job_concurrency", help="job processes at once ($PART_JOB_CONCURRENCY)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings(host=args.host, port=args.port, checkpoints=args.checkpoints,
                                 data_dir=args.data_dir, device=args.device, job_concurrency=args.job_concurrency)
    except ValueError as err:
        print(f"part serve: error: {err}", file=sys.stderr)
        return 2
    import uvicorn

    from backend.app import create_app

    print(f"PART Studio API on http://{settings.host}:{settings.port} (docs: /docs), runs in {settings.checkpoints}",
          flush=True)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=args.log_level)
    return 0
