"""Flow overhead benchmark: the catalog-run flow against the same studio-engine work in a plain loop.

    python bench/bench_flow.py [--products 200] [--chunk-size 8] [--workers N]

Both sides render the same catalog (synthetic studio photos, 1200-1600 px, 3 channels per product)
into fresh output roots, in one process, one after the other. The Prefect side runs in ephemeral mode;
its server is started by a warm-up run first, so the figure is the orchestrated run itself. Prints
wall times, images per second and the ratio flow / plain (above 1 means the flow is faster).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lightbox.testing.photos import COLORS, product_photo  # noqa: E402 - after the path set-up above

SHAPES = ["mug", "bottle", "jar", "tumbler", "candle", "kettle", "box", "bowl", "plate", "lamp", "vase"]
CATEGORY = {"mug": "kitchen", "bottle": "kitchen", "jar": "kitchen", "kettle": "kitchen", "box": "decor",
            "tumbler": "tableware", "bowl": "tableware", "plate": "tableware", "candle": "lighting",
            "lamp": "lighting", "vase": "decor"}
COLOURS = [c for c in COLORS if c != "white"]


def make_catalog(root: Path, n: int) -> Path:
    img = root / "images"
    img.mkdir(parents=True)
    rows = []
    for i in range(n):
        rng = np.random.default_rng(i)
        shape, colour = SHAPES[i % len(SHAPES)], COLOURS[i % len(COLOURS)]
        size = (int(rng.integers(1200, 1601)), int(rng.integers(1200, 1601)))
        product_photo(shape, colour, size, rng, transparent=False)[0].save(img / f"p{i:04d}.jpg", "JPEG", quality=90)
        rows.append({"sku": f"BENCH-{i:04d}", "title": f"{shape.title()} {i}", "category": CATEGORY[shape],
                     "image": f"images/p{i:04d}.jpg", "color": colour, "material": "ceramic"})
    path = root / "catalog.csv"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--products", type=int, default=200)
    ap.add_argument("--chunk-size", type=int, default=8)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()

    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="lightbox-bench-home-"))
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
    from prefect.task_runners import ThreadPoolTaskRunner

    from flows.catalog_run import catalog_run
    from lightbox.pipeline import run_plain

    brand = str(REPO / "brand_specs" / "acme-home.yaml")
    work = Path(tempfile.mkdtemp(prefix="lightbox-bench-"))
    try:
        t = time.perf_counter()
        catalog = make_catalog(work / "catalog", args.products)
        print(f"made {args.products} source photos in {time.perf_counter() - t:.1f} s")
        warm = make_catalog(work / "warm", 1)
        flow = catalog_run.with_options(task_runner=ThreadPoolTaskRunner(max_workers=args.workers))
        flow(catalog=str(warm), brand=brand, out=str(work / "out-warm"), chunk_size=1)  # starts the server

        t = time.perf_counter()
        plain = run_plain(str(catalog), brand, str(work / "out-plain"), chunk_size=args.chunk_size)
        plain_s = time.perf_counter() - t
        t = time.perf_counter()
        orchestrated = flow(catalog=str(catalog), brand=brand, out=str(work / "out-flow"), chunk_size=args.chunk_size)
        flow_s = time.perf_counter() - t
        assert plain.published == orchestrated.published, (plain.published, orchestrated.published)
        images = plain.generated
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
        print(f"products: {args.products}, images: {images}, chunk size: {args.chunk_size}, flow workers: {args.workers}")
        print(f"plain loop : {plain_s:7.1f} s  {images / plain_s:6.2f} images/s")
        print(f"prefect flow: {flow_s:7.1f} s  {images / flow_s:6.2f} images/s")
        print(f"ratio flow/plain throughput: {plain_s / flow_s:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
