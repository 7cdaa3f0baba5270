"""Galleries benchmark: CPU per output image on the example catalog against a baseline revision, side by
side in one run, and how many cuts a catalog whose variants share their photos costs.

    python bench/bench_gallery.py [--baseline REV] [--repeats 2]

1. The example catalog (examples/acme-home, 24 products, one photo each) through the plain loop
   (``lightbox.pipeline.run_plain``) into a fresh output root, alternately with this tree and with
   ``--baseline`` (a git revision checked out into a temporary worktree; default: the last commit before
   galleries), each in its own process that measures its own CPU time around the run. Prints CPU seconds per
   output image for each, and the ratio this tree / baseline (1.00 = the same; the issue allows 1.10).
2. A gallery catalog built from the example's photos (3 products, 3 photos each; two variants share all
   theirs): photos rendered, distinct photos, and cuts made (``cut_out_many`` counted in-process), with
   the outputs published.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BASELINE = "e1205e2"  # main before galleries (2026-12-06)
CHILD = textwrap.dedent("""
    import json, sys, time
    from lightbox.pipeline import run_plain
    t = time.process_time()
    s = run_plain(sys.argv[1], sys.argv[2], sys.argv[3], run_id="bench")
    cpu = time.process_time() - t
    print(json.dumps({"cpu_s": cpu, "generated": s.generated, "published": s.published}))
""")


def run_tree(tree: Path, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    catalog = tree / "examples" / "acme-home" / "catalog.csv"
    spec = tree / "brand_specs" / "acme-home.yaml"
    done = subprocess.run([sys.executable, "-c", CHILD, str(catalog), str(spec), str(out)], cwd=tree, env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def gallery_cuts(tmp: Path) -> dict:
    import lightbox.generate as generate
    from lightbox.pipeline import run_plain
    from tests.support.helpers import GALLERY, make_gallery_catalog

    counted: list[int] = []
    real = generate.cut_out_many

    def counting(images, params, segmenter):
        counted.append(len(images))
        return real(images, params, segmenter)

    generate.cut_out_many = counting
    try:
        s = run_plain(str(make_gallery_catalog(tmp / "gallery")), str(REPO / "brand_specs" / "acme-home.yaml"),
                      str(tmp / "gallery-out"), chunk_size=8)
    finally:
        generate.cut_out_many = real
    photos = sum(len(files) for _, files in GALLERY.values())
    distinct = len({f for _, files in GALLERY.values() for f in files})
    return {"photos": photos, "distinct": distinct, "cut": sum(counted), "published": s.published}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", default=BASELINE)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        base = tmp / "baseline"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(base), args.baseline],
                       check=True, capture_output=True)
        try:
            rows: dict[str, list[dict]] = {"baseline": [], "this tree": []}
            for i in range(args.repeats):
                for name, tree in (("baseline", base), ("this tree", REPO)):
                    rows[name].append(run_tree(tree, tmp / f"out-{name.replace(' ', '-')}-{i}"))
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(base)], check=False,
                           capture_output=True)
        per = {}
        print(f"\nexample catalog, plain loop, {args.repeats} runs each, alternating:")
        print(f"{'tree':<10} {'outputs':>7} {'CPU s (each run)':>24} {'CPU s / output':>15}")
        for name, runs in rows.items():
            outs = runs[0]["generated"]
            per[name] = min(r["cpu_s"] for r in runs) / outs
            each = ", ".join(f"{r['cpu_s']:.1f}" for r in runs)
            print(f"{name:<10} {outs:>7} {each:>24} {per[name]:>15.3f}")
        print(f"ratio this tree / baseline (best runs): {per['this tree'] / per['baseline']:.3f}")
        g = gallery_cuts(tmp)
        print(f"\ngallery catalog: {g['photos']} photos ({g['distinct']} distinct), {g['cut']} cut, "
              f"{g['published']} outputs published")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
