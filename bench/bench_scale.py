"""Scale benchmarks, each measured side by side in one invocation (ratios, not absolute claims):

- ``state``: the run state's work for a one-SKU update (read the SKU's rows, commit 3 outputs with the
  incremental catalog checks, read the consistency score) on a brand whose state holds 400,000 entries vs
  3,000.
- ``update``: a whole ``lightbox run --skus ONE`` on a 100,000-product catalog whose state holds 400,000
  entries vs the same update on a 1,000-product catalog (3,000 entries): wall time and peak RSS.
- ``dask``: the same N generated products rendered by a 1-worker and a 2-worker Dask LocalCluster and by
  the thread runner with 2 threads; render throughput from each run's own summary (images / flow wall s).

Runs against one ``prefect server`` on 127.0.0.1 (or $PREFECT_API_URL). Prints the load average.

    python bench/bench_scale.py state
    python bench/bench_scale.py update
    python bench/bench_scale.py dask --products 200
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.kill_series import start_server  # noqa: E402 - after the repo is on the path
from lightbox.records import Output  # noqa: E402
from lightbox.state import RunState  # noqa: E402
from lightbox.storage import Store  # noqa: E402

BRAND = "acme-home"
CHANNELS = ("amazon_main", "shopify_square", "google_merchant")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _output(sku: str, channel: str, rng: random.Random, root: str) -> Output:
    return Output(sku=sku, row=1, category=rng.choice(["mugs", "vases", "bowls", "lamps"]), channel=channel,
                  state="live", qc="passed", uri=f"{root}/{BRAND}/{sku}/{channel}.jpg",
                  sha256=f"{rng.getrandbits(256):064x}", bytes=rng.randint(40_000, 400_000), width=2000, height=2000,
                  fingerprint=f"{rng.getrandbits(128):032x}", engine="studio", engine_version="1", seed=rng.getrandbits(31),
                  alt_text=f"{sku} on white", timings_ms={"render_ms": 300.0, "encode_ms": 20.0},
                  metrics={"phash": f"{rng.getrandbits(768):0192x}", "fill_longest": rng.uniform(0.6, 0.9),
                           "clipped": rng.uniform(0, 0.05), "sharpness": rng.uniform(50, 500), "fidelity": 0.99,
                           "border_mean": [rng.uniform(245, 255) for _ in range(3)]})


def seed_state(out: Path, products: int, entries: int, rng: random.Random) -> float:
    """A state of ``entries`` rows: every product on 3 channels, then retired SKUs (no longer in the
    catalog) up to the count. Returns the seconds it took (committed in chunks of 5,000 outputs)."""
    state = RunState.of(Store(str(out)))
    state.ensure_brand(Store(str(out)), BRAND)
    t = time.perf_counter()
    batch: list[Output] = []
    names = [(f"SKU-{i:06d}", ch) for i in range(products) for ch in CHANNELS]
    names += [(f"OLD-{i:06d}", "amazon_main") for i in range(max(0, entries - len(names)))]
    for sku, ch in names[:entries]:
        batch.append(_output(sku, ch, rng, str(out)))
        if len(batch) == 5000:
            state.record(BRAND, batch, "seed")
            batch = []
    state.record(BRAND, batch, "seed")
    return time.perf_counter() - t


def one_sku_state_work(out: Path, sku: str, rng: random.Random) -> dict[str, float]:
    state = RunState.of(Store(str(out)))
    t0 = time.perf_counter()
    rows = state.entries(BRAND, [sku])
    t1 = time.perf_counter()
    state.record(BRAND, [_output(sku, ch, rng, str(out)) for ch in CHANNELS], "update")
    t2 = time.perf_counter()
    state.consistency(BRAND)
    t3 = time.perf_counter()
    assert len(rows) == 3, rows
    return {"read_ms": (t1 - t0) * 1e3, "commit_ms": (t2 - t1) * 1e3, "checks_ms": (t3 - t2) * 1e3}


def cmd_state(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="lightbox-scale-"))
    rng = random.Random(1)
    print(f"run state, one-SKU update (SQLite at <root>/_lightbox/state.sqlite); load {_load()}")
    results = {}
    for label, products, entries in (("small", 1000, 3000), ("large", 100_000, args.entries)):
        out = work / label
        seeded = seed_state(out, products, entries, rng)
        runs = [one_sku_state_work(out, f"SKU-{i * 997 % products:06d}", rng) for i in range(5)]
        best = {k: min(r[k] for r in runs) for k in runs[0]}
        results[label] = best
        size = sum(p.stat().st_size for p in (out / "_lightbox").glob("state.sqlite*")) / 2**20
        print(f"  {label:<5} {entries:>7} entries (seeded in {seeded:6.1f} s, {size:6.1f} MiB): read {best['read_ms']:6.2f} ms, "
              f"commit 3 outputs + checks index {best['commit_ms']:6.2f} ms, consistency {best['checks_ms']:6.2f} ms (best of 5)")
    small, large = (sum(results[k].values()) for k in ("small", "large"))
    print(f"  state work per one-SKU update: {large:.1f} ms vs {small:.1f} ms = {large - small:+.1f} ms for 133x the entries")
    shutil.rmtree(work, ignore_errors=True)


def _catalog(root: Path, products: int, photo: Path) -> Path:
    """``products`` rows sharing a few real photos (the update fetches one)."""
    root.mkdir(parents=True, exist_ok=True)
    img = root / "images"
    img.mkdir(exist_ok=True)
    for i in range(8):
        shutil.copy(photo, img / f"p{i}.jpg")
    path = root / "catalog.csv"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["sku", "title", "category", "image", "color", "material"])
        w.writeheader()
        for i in range(products):
            w.writerow({"sku": f"SKU-{i:06d}", "title": f"Mug {i}", "category": "kitchen", "image": f"images/p{i % 8}.jpg",
                        "color": "red", "material": "ceramic"})
    return path


def _run_measured(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) of the run process, its stdout: wait4 gives the child's own rusage."""
    t = time.perf_counter()
    with tempfile.TemporaryFile("w+") as so, tempfile.TemporaryFile("w+") as se:
        proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=so, stderr=se, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        so.seek(0)
        se.seek(0)
        out, err = so.read(), se.read()
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"run failed: {err.strip().splitlines()[-3:]}")
    return wall, usage.ru_maxrss / 1024, out


@contextlib.contextmanager
def _workspace() -> Iterator[tuple[Path, dict[str, str]]]:
    """A temporary folder and the environment of the runs: one `prefect server` on 127.0.0.1 (unless
    $PREFECT_API_URL names one), stopped and removed at the end."""
    work = Path(tempfile.mkdtemp(prefix="lightbox-scale-"))
    env = {**os.environ, "PREFECT_HOME": str(work / "prefect-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "DO_NOT_TRACK": "1"}
    server = None
    try:
        if not env.get("PREFECT_API_URL"):
            server, env["PREFECT_API_URL"] = start_server(env, work / "server.log")
        yield work, env
    finally:
        if server:
            server.terminate()
            server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


def cmd_update(args: argparse.Namespace) -> None:
    import numpy as np

    from lightbox.testing.photos import product_photo as photo_of

    with _workspace() as (work, env):
        photo = work / "photo.jpg"
        photo_of("mug", "red", (1400, 1400), np.random.default_rng(3), transparent=False)[0].save(photo, "JPEG", quality=90)
        rng = random.Random(2)
        rows = []
        for label, products, entries in (("1k", 1000, 3000), ("100k", 100_000, args.entries)):
            cat = _catalog(work / label / "cat", products, photo)
            out = work / label / "out"
            seed_state(out, products, entries, rng)
            cmd = [sys.executable, "-m", "flows.cli", "run", str(cat), "--brand", "brand_specs/acme-home.yaml",
                   "--out", str(out), "--skus", "SKU-000500"]
            _run_measured(cmd, env)  # warm: imports, the server's first flow run
            measured = [_run_measured(cmd, env) for _ in range(args.repeat)]
            wall = min(m[0] for m in measured)
            rss = max(m[1] for m in measured)
            rows.append((label, products, entries, wall, rss))
            print(f"  {label:>5} catalog, {entries:>7} state entries: run --skus ONE {wall:6.2f} s wall (best of "
                  f"{args.repeat}), peak RSS {rss:7.1f} MiB", flush=True)
        (_, _, _, w1, r1), (_, _, _, w2, r2) = rows
        print(f"one-SKU update, 100k vs 1k catalog: {w2 - w1:+.2f} s wall, peak RSS x{r2 / r1:.2f}; load {_load()}")


_HALF = """
import json, sys, time
from lightbox.pipeline import run_plain
t = time.time()
s = run_plain(sys.argv[1], "brand_specs/acme-home.yaml", sys.argv[2], chunk_size=int(sys.argv[3]))
print(json.dumps({"start": t, "end": time.time(), "generated": s.generated}))
"""


def _ceiling(work: Path, cat: Path, chunk_size: int, env: dict[str, str]) -> float:
    """The machine's own two-process scaling for this work, with no Prefect and no Dask: the catalog's two
    halves rendered by ``run_plain`` in two processes one after the other, then in two at once. Returns
    (serial wall) / (parallel wall), timed inside the processes (imports excluded)."""
    with cat.open() as f:
        header, *rows = f.read().splitlines()
    halves = []
    for i, part in enumerate((rows[::2], rows[1::2])):
        half = cat.parent / f"half{i}.csv"
        half.write_text("\n".join([header, *part]) + "\n")
        halves.append(half)

    def launch(tag: str, which: list[int]) -> list[subprocess.Popen]:
        return [subprocess.Popen([sys.executable, "-c", _HALF, str(halves[i]), str(work / f"ceiling-{tag}-{i}"), str(chunk_size)],
                                 cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                for i in which]

    def times(procs: list[subprocess.Popen]) -> list[dict]:
        out = []
        for p in procs:
            stdout, _ = p.communicate(timeout=3600)
            if p.returncode:
                raise SystemExit("ceiling run failed")
            out.append(json.loads(stdout.strip().splitlines()[-1]))
        return out

    serial = times(launch("serial", [0])) + times(launch("serial", [1]))  # one at a time
    both = times(launch("parallel", [0, 1]))  # both at once
    serial_s = sum(r["end"] - r["start"] for r in serial)
    parallel_s = max(r["end"] for r in both) - min(r["start"] for r in both)
    images = sum(r["generated"] for r in both)
    print(f"  ceiling: the two halves in plain processes, one after the other {serial_s:.1f} s, at once "
          f"{parallel_s:.1f} s ({images} images): x{serial_s / parallel_s:.2f}; load {_load()}", flush=True)
    return serial_s / parallel_s


def cmd_dask(args: argparse.Namespace) -> None:
    from bench.bench_flow import make_catalog

    with _workspace() as (work, env):
        cat = make_catalog(work / "cat", args.products)
        print(f"{args.products} generated products, chunk size {args.chunk_size}, {os.cpu_count()} CPUs; load {_load()}", flush=True)
        ceiling = _ceiling(work, cat, args.chunk_size, env)
        rates = {}
        for label, extra in (("threads:2", ["--workers", "2"]), ("dask local:1", ["--cluster", "local:1"]),
                             ("dask local:2", ["--cluster", "local:2"])):
            out = work / label.replace(" ", "-").replace(":", "")
            cmd = [sys.executable, "-m", "flows.cli", "run", str(cat), "--brand", "brand_specs/acme-home.yaml",
                   "--out", str(out), "--chunk-size", str(args.chunk_size), *extra]
            wall, _, _ = _run_measured(cmd, env)
            summary = json.loads(next(out.glob(f"{'acme-home'}/_runs/*/summary.json")).read_text())
            rates[label] = summary["generated"] / summary["wall_s"]
            print(f"  {label:<13} {summary['generated']} images in {summary['wall_s']:7.1f} s flow wall "
                  f"({rates[label]:.2f} images/s; process wall {wall:.1f} s); load {_load()}", flush=True)
        print(f"dask local:2 / local:1 throughput: x{rates['dask local:2'] / rates['dask local:1']:.2f} (the machine's own "
              f"two-process ceiling for this work: x{ceiling:.2f}); dask local:2 / threads:2: "
              f"x{rates['dask local:2'] / rates['threads:2']:.2f}; load {_load()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    s = sub.add_parser("state")
    s.add_argument("--entries", type=int, default=400_000)
    u = sub.add_parser("update")
    u.add_argument("--entries", type=int, default=400_000)
    u.add_argument("--repeat", type=int, default=3)
    d = sub.add_parser("dask")
    d.add_argument("--products", type=int, default=200)
    d.add_argument("--chunk-size", type=int, default=8)
    args = ap.parse_args()
    {"state": cmd_state, "update": cmd_update, "dask": cmd_dask}[args.what](args)


if __name__ == "__main__":
    main()
