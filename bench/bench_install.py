"""The studio install against the full one, side by side in one run: pip's wall time into a fresh virtualenv, the
virtualenv's size, and the first ``lightbox run`` of the example catalog in it (wall time and peak memory of the
run's process tree, sampled every 0.2 s).

    python bench/bench_install.py [--keep DIR]

Both installs come from the same package cache (this machine: local wheel mirrors, torch's CPU wheel on disk), one
after the other; the ratio is what to quote. Prints one line per install and the ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
INSTALLS = {"studio": ".", "full (ai extra)": ".[ai]"}


def size_mb(path: Path) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total / 2**20


def peak_rss_mb(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, float, float]:
    """(exit code, wall s, peak summed RSS in MiB of the process and its children, sampled every 0.2 s)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        root = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()) / 2**20)
            except psutil.Error:
                pass
            time.sleep(0.2)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    rc = proc.wait(timeout=1800)
    done.set()
    t.join()
    return rc, time.perf_counter() - started, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", help="build the virtualenvs here and keep them (default: a temporary folder, removed)")
    args = ap.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="lightbox-install-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"load average before: {os.getloadavg()[0]:.2f}; python {sys.version.split()[0]}; {os.cpu_count()} CPUs")
    rows = {}
    try:
        for name, target in INSTALLS.items():
            venv = work / name.split()[0]
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            started = time.perf_counter()
            subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-c", "constraints.txt", "-e", target], cwd=REPO,
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            pip_s = time.perf_counter() - started
            out = work / f"out-{name.split()[0]}"
            shutil.rmtree(out, ignore_errors=True)
            env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "LIGHTBOX_"))}
            env["PREFECT_HOME"] = str(work / f"prefect-{name.split()[0]}")
            rc, run_s, peak = peak_rss_mb([str(venv / "bin" / "lightbox"), "run", "examples/acme-home/catalog.csv", "--brand",
                                           "brand_specs/acme-home.yaml", "--out", str(out)], REPO, env)
            rows[name] = (pip_s, size_mb(venv), run_s, peak, rc)
            print(f"{name:16s} pip {pip_s:6.1f} s   virtualenv {rows[name][1]:7.0f} MiB   first run {run_s:5.1f} s "
                  f"(exit {rc}), peak RSS {peak:6.0f} MiB")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    (s_pip, s_size, s_run, s_peak, _), (f_pip, f_size, f_run, f_peak, _) = rows.values()
    print(f"studio / full: pip time {s_pip / f_pip:.2f}, size {s_size / f_size:.2f}, first run {s_run / f_run:.2f}, "
          f"peak RSS {s_peak / f_peak:.2f}; load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
