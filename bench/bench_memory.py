"""Peak memory of a catalog run, this tree against a baseline checkout, side by side in one run: the example
catalog through the plain loop (``lightbox.pipeline.run_plain``) in a fresh process each, peak RSS and CPU time
from the child's resource usage, and the manifests' image hashes compared (the same bytes, or it says not).

    git worktree add --detach /tmp/base REV
    python bench/bench_memory.py --baseline /tmp/base [--chunk-size 8] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CODE = """
import sys
from lightbox.pipeline import run_plain
s = run_plain(sys.argv[1], sys.argv[2], sys.argv[3], chunk_size=int(sys.argv[4]), run_id="bench")
print(s.generated)
"""


def run(tree: Path, out: Path, chunk_size: int) -> tuple[float, float, dict]:
    """(peak RSS MiB, CPU s, {(sku, channel, photo): sha256}) of one run of the example catalog with ``tree``'s code."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    subprocess.run([sys.executable, "-c", CODE, str(REPO / "examples/acme-home/catalog.csv"),
                    str(REPO / "brand_specs/acme-home.yaml"), str(out), str(chunk_size)],
                   cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    shas = {}
    for line in (out / "acme-home" / "manifest.jsonl").read_text().splitlines():
        e = json.loads(line)
        shas[(e["sku"], e["channel"], e.get("photo", 1))] = e["sha256"]
    return after.ru_maxrss / 1024, cpu, shas  # ru_maxrss: KiB on Linux, the largest child so far


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", required=True, help="a checkout of the baseline revision (git worktree)")
    ap.add_argument("--chunk-size", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs; chunk size {args.chunk_size}")
    rows: dict[str, list[tuple[float, float]]] = {"baseline": [], "this tree": []}
    hashes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            # the baseline first: ru_maxrss of RUSAGE_CHILDREN is the largest child so far, so the smaller run must
            # not come after a larger one - each is measured in its own process group below instead
            for name, tree in (("baseline", Path(args.baseline)), ("this tree", REPO)):
                r = subprocess.run([sys.executable, __file__, "--one", str(tree), str(Path(tmp) / f"{name}-{i}"),
                                    str(args.chunk_size)], capture_output=True, text=True, check=True)
                peak, cpu, shas = json.loads(r.stdout)
                rows[name].append((peak, cpu))
                hashes[name] = shas
    for name, vals in rows.items():
        print(f"{name:10s} peak RSS {min(v[0] for v in vals):7.0f} MiB   CPU {min(v[1] for v in vals):6.1f} s   (best of {len(vals)})")
    base, mine = rows["baseline"], rows["this tree"]
    print(f"this tree / baseline: peak RSS {min(v[0] for v in mine) / min(v[0] for v in base):.2f}, "
          f"CPU {min(v[1] for v in mine) / min(v[1] for v in base):.2f}; same image bytes: {hashes['baseline'] == hashes['this tree']}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--one":
        peak, cpu, shas = run(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
        print(json.dumps([peak, cpu, {"|".join(map(str, k)): v for k, v in shas.items()}]))
    else:
        main()
