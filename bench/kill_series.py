"""The kill series: SIGKILL a real `lightbox run` at 28 points, resume it with no manual step, audit.

    python bench/kill_series.py                  # all 28 points on the bundled example catalog
    python bench/kill_series.py --points 5       # the first five
    python bench/kill_series.py --only publish   # points whose name contains "publish"

Points (lightbox.testing.kill_series.standard_points): start-up, lock taken, ingest, validate, generate
(first, 30 %, 70 % staged), publish (first, 25/50/90 % live, first chunk committed to the run state), just
after the manifest export, report; then spec updates of a published brand killed while staging and while replacing live
images, resumed with the new spec or rolled back to the previous one. Every run talks to one `prefect
server` started here on 127.0.0.1 (or $PREFECT_API_URL); the brand lock's lease is $LIGHTBOX_LOCK_TTL_S
(default here 6 s), so a resume after a kill that held it waits at most that long.

Per point it prints when the kill came, the resume's exit code and wall time, and the audit against an
uninterrupted run of the spec in force: lost, extra, partial, mismatched (live bytes vs the reference and the
run state), rewritten (right bytes written again), temporary files in live folders, stale staging. Exit 1 if
any point is not clean.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lightbox.pipeline import run_plain  # noqa: E402 - after the path set-up above
from lightbox.testing.kill_series import AUDITED, kill_and_resume, reference, standard_points  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict[str, str], logs: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=logs.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:  # loopback URL built here
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"prefect server did not start in 120 s; see {logs}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--catalog", default=str(REPO / "examples" / "acme-home" / "catalog.csv"))
    ap.add_argument("--brand", default=str(REPO / "brand_specs" / "acme-home.yaml"))
    ap.add_argument("--points", type=int, default=None, help="run the first N points")
    ap.add_argument("--only", default=None, help="run the points whose name contains this")
    ap.add_argument("--chunk-size", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="lightbox-kills-"))
    env = {**os.environ, "PREFECT_HOME": str(work / "prefect-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "DO_NOT_TRACK": "1", "LIGHTBOX_LOCK_TTL_S": os.environ.get("LIGHTBOX_LOCK_TTL_S", "6"),
           "LIGHTBOX_HOME": str(work / "lightbox-home")}
    server = None
    if not env.get("PREFECT_API_URL"):
        server, env["PREFECT_API_URL"] = start_server(env, work / "server.log")
    try:
        spec_prev = Path(args.brand)
        spec_new = work / "spec-update.yaml"  # the update: another shadow on every image
        text = spec_prev.read_text()
        if "opacity: 0.30" not in text:
            raise SystemExit(f"{spec_prev}: the update changes 'opacity: 0.30'; this spec has none")
        spec_new.write_text(text.replace("opacity: 0.30", "opacity: 0.60"))
        specs = {"previous": spec_prev, "new": spec_new}
        # ground truth: an uninterrupted run of each spec from the state the killed runs start from (the update
        # over the published previous spec: an output whose new render fails the gate keeps its previous image)
        brand = run_plain(args.catalog, str(spec_prev), str(work / "ref-previous"), chunk_size=args.chunk_size,
                          run_id="ref-previous").brand
        shutil.copytree(work / "ref-previous", work / "ref-new")
        run_plain(args.catalog, str(spec_new), str(work / "ref-new"), chunk_size=args.chunk_size, run_id="ref-new")
        refs = {name: reference(work / f"ref-{name}" / brand) for name in specs}
        points = [p for p in standard_points() if not args.only or args.only in p.name][: args.points]
        load = os.getloadavg()
        print(f"{platform.node()}: {os.cpu_count()} cores, load {load[0]:.2f} {load[1]:.2f}; {len(refs['previous'])} outputs "
              f"per run, chunk size {args.chunk_size}, lock TTL {env['LIGHTBOX_LOCK_TTL_S']} s, {len(points)} points")
        print(f"{'point':40} {'killed s':>8} {'resume':>6} {'s':>6}  " + " ".join(f"{k[:9]:>9}" for k in AUDITED))
        outcomes = []
        for i, point in enumerate(points):
            o = kill_and_resume(point, repo=REPO, catalog=Path(args.catalog), specs=specs, references=refs, brand=brand,
                                workdir=work / f"point-{i:02d}", env=env, chunk_size=args.chunk_size,
                                seeded_with=work / "ref-previous")
            outcomes.append(o)
            mark = "" if o.fired else " (ran to the end first)"
            print(f"{point.name[:40]:40} {o.killed_after_s:8.1f} {o.resume_rc:6d} {o.resume_s:6.1f}  "
                  + " ".join(f"{o.audit.get(k, 0):9d}" for k in AUDITED) + mark + (f"  {o.note}" if o.note else ""), flush=True)
        totals = {k: sum(o.audit.get(k, 0) for o in outcomes) for k in AUDITED}
        failed = sum(o.resume_rc != 0 for o in outcomes)
        print(f"\n{len(outcomes)} points ({sum(o.fired for o in outcomes)} killed mid-run): {failed} resumes failed; "
              + ", ".join(f"{v} {k}" for k, v in totals.items()))
        print(f"resume wall time: median {sorted(o.resume_s for o in outcomes)[len(outcomes) // 2]:.1f} s, "
              f"max {max(o.resume_s for o in outcomes):.1f} s; load now {os.getloadavg()[0]:.2f}")
        return 0 if all(o.clean for o in outcomes) else 1
    finally:
        if server:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")


if __name__ == "__main__":
    sys.exit(main())
