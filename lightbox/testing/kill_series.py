"""Kill a real ``lightbox run`` at chosen points, resume it, and audit what is live against ground truth.

Used by ``bench/kill_series.py`` (the full series) and ``tests/flows/test_crash.py`` (a few points). A run is
a ``python -m flows.cli run`` subprocess in its own process group; a watcher polls the output folder every
few milliseconds and SIGKILLs the whole group (as an OOM kill or a node drain does) when the point's
trigger holds. The resume is the same command with no manual step in between (no ``lightbox unlock``).

The audit compares the output with a reference: the same catalog rendered by an uninterrupted run of the
spec in force from the same starting state (outputs are byte-identical across processes; for an update,
the run over the published previous spec, where an output whose new render fails the gate keeps its
previous image). Per point it counts:

- ``lost``: outputs of the reference that are not live;
- ``extra``: live images the reference does not have;
- ``partial``: live images that do not decode completely;
- ``mismatched``: live images whose bytes differ from the reference or from the run state's sha256, and
  reference outputs the state does not list;
- ``rewritten``: live images the resume wrote again although they already held the right bytes;
- ``temp_in_live``: temporary files inside the brand's live folders;
- ``stale_staging``: files left under ``_runs/*/staging`` after the resume.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

POLL_S = 0.005
AUDITED = ("lost", "extra", "partial", "mismatched", "rewritten", "temp_in_live", "stale_staging")


@dataclass
class Watch:
    """What a trigger sees: the brand folder of the killed run and what was live when it started."""

    brand_dir: Path
    expected: int  # outputs of a full run
    started: float
    before: dict[str, tuple[int, int]]  # live image -> (inode, mtime_ns) when the run started
    started_wall: float = 0.0  # time.time() when the run started
    runs_before: frozenset[str] = frozenset()  # runs the state table recorded rows of before the start

    def recorded_runs(self) -> set[str]:
        """Runs with rows in the state table (read-only; the table is the root's SQLite file)."""
        db = self.brand_dir.parent / "_lightbox" / "state.sqlite"
        if not db.exists():
            return set()
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            rows = conn.execute("SELECT DISTINCT run_id FROM lightbox_entries WHERE brand = ?", (self.brand_dir.name,)).fetchall()
        except sqlite3.Error:
            return set()
        finally:
            conn.close()
        return {r for (r,) in rows}

    def recorded(self) -> bool:
        """A chunk of this run committed its rows to the run state."""
        return bool(self.recorded_runs() - self.runs_before)

    def live(self) -> dict[str, tuple[int, int]]:
        return {k: (st.st_ino, st.st_mtime_ns) for k, st in _images(self.brand_dir).items()}

    def written(self) -> int:
        """Live images created or replaced since the run started."""
        return sum(self.before.get(k) != v for k, v in self.live().items())

    def staged(self) -> int:
        return sum(1 for _ in self.brand_dir.glob("_runs/*/staging/*/*.jpg"))

    def exists(self, pattern: str) -> bool:
        """A file matching ``pattern`` written since the run started (a seeded brand has older ones)."""
        return any(p.stat().st_mtime >= self.started_wall for p in self.brand_dir.glob(pattern))


@dataclass
class Point:
    name: str
    trigger: Callable[[Watch], bool]
    update: bool = False  # killed while a changed spec replaces a published brand
    resume_with: str = "same"  # "same" spec as the killed run, or "previous" (the update rolled back)


@dataclass
class Outcome:
    point: str
    fired: bool  # the trigger held before the run ended by itself
    killed_after_s: float
    resume_rc: int
    resume_s: float
    audit: dict[str, int] = field(default_factory=dict)
    note: str = ""

    @property
    def clean(self) -> bool:
        return self.resume_rc == 0 and not any(self.audit.get(k) for k in AUDITED)


def standard_points() -> list[Point]:
    """28 points over a fresh run (start-up, lock, ingest, generate, publish, state commit, export, report) and
    over spec updates of a published brand, resumed with the new spec or rolled back to the previous one."""
    def after(s: float) -> Callable[[Watch], bool]:
        return lambda w: time.monotonic() - w.started >= s

    def staged(share: float) -> Callable[[Watch], bool]:
        return lambda w: w.staged() >= max(1, int(share * w.expected))

    def written(share: float) -> Callable[[Watch], bool]:
        return lambda w: w.written() >= max(1, int(share * w.expected))

    def exists(pattern: str) -> Callable[[Watch], bool]:
        return lambda w: w.exists(pattern)

    fresh = [
        Point("start-up +0.5 s", after(0.5)), Point("start-up +3 s", after(3.0)),
        Point("lock taken", exists("_lock/*.json")), Point("catalog ingested", exists("_runs/*/catalog.parquet")),
        Point("validated", exists("_runs/*/valid.parquet")), Point("generate: first staged", staged(0)),
        Point("generate: 30% staged", staged(0.3)), Point("generate: 70% staged", staged(0.7)),
        Point("publish: first live", written(0)), Point("publish: 25% live", written(0.25)),
        Point("publish: 50% live", written(0.5)), Point("publish: 90% live", written(0.9)),
        Point("publish: first chunk recorded", lambda w: w.recorded()),
        Point("state: manifest exported", exists("manifest.jsonl")),
        Point("report: summary written", exists("_runs/*/summary.json")),
        Point("report: latest-run written", exists("latest-run.json")),
    ]
    update = [
        Point("update: start-up +3 s", after(3.0), update=True), Point("update: first staged", staged(0), update=True),
        Point("update: 50% staged", staged(0.5), update=True), Point("update: first replaced", written(0), update=True),
        Point("update: 30% replaced", written(0.3), update=True), Point("update: 60% replaced", written(0.6), update=True),
        Point("update: first replaced, rolled back", written(0), update=True, resume_with="previous"),
        Point("update: 30% replaced, rolled back", written(0.3), update=True, resume_with="previous"),
        Point("update: 60% replaced, rolled back", written(0.6), update=True, resume_with="previous"),
        Point("update: 90% replaced, rolled back", written(0.9), update=True, resume_with="previous"),
        Point("update: first chunk recorded, rolled back", lambda w: w.recorded(), update=True, resume_with="previous"),
        Point("update: summary written, rolled back", exists("_runs/*/summary.json"), update=True, resume_with="previous"),
    ]
    return fresh + update


def _images(brand_dir: Path) -> dict[str, os.stat_result]:
    """Live images of a brand folder: ``SKU/name.jpg`` (the brand's own ``_`` folders are not live)."""
    found = {}
    for sku in os.scandir(brand_dir) if brand_dir.is_dir() else []:
        if not sku.is_dir() or sku.name.startswith("_") or sku.name.startswith("."):
            continue
        for f in os.scandir(sku.path):
            if f.name.endswith(".jpg"):
                try:
                    found[f"{sku.name}/{f.name}"] = f.stat()
                except FileNotFoundError:
                    continue
    return found


def reference(brand_dir: Path) -> dict[str, str]:
    """sha256 of every live image of a completed run."""
    return {k: hashlib.sha256((brand_dir / k).read_bytes()).hexdigest() for k in _images(brand_dir)}


def audit(brand_dir: Path, expected: dict[str, str], before: dict[str, tuple[int, int, str]]) -> dict[str, int]:
    """Count what is wrong in ``brand_dir`` against ``expected`` (see the module docs); ``before`` is
    :func:`remember` of the brand folder just before the resume started."""
    from lightbox.state import RunState
    from lightbox.storage import Store

    live = _images(brand_dir)
    entries = RunState.of(Store(str(brand_dir.parent))).entries(brand_dir.name)
    by_key = {f"{e['sku']}/{Path(e['uri']).name}": e for e in entries.values()}
    counts = dict.fromkeys(AUDITED, 0)
    counts["lost"] = len(set(expected) - set(live))
    counts["extra"] = len(set(live) - set(expected))
    for key, st in live.items():
        data = (brand_dir / key).read_bytes()
        try:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
        except (OSError, SyntaxError):
            counts["partial"] += 1
            continue
        sha = hashlib.sha256(data).hexdigest()
        entry = by_key.get(key)
        if key in expected and (sha != expected[key] or entry is None or entry["sha256"] != sha):
            counts["mismatched"] += 1
        was = before.get(key)
        if was and (st.st_ino, st.st_mtime_ns) != was[:2] and was[2] == sha == expected.get(key):
            counts["rewritten"] += 1  # it already held the right bytes
    counts["temp_in_live"] = sum(1 for p in brand_dir.rglob("*")
                                 if p.is_file() and ".tmp" in p.name and not p.relative_to(brand_dir).parts[0].startswith("_"))
    counts["stale_staging"] = sum(1 for p in brand_dir.glob("_runs/*/staging/**/*") if p.is_file())
    return counts


def remember(brand_dir: Path) -> dict[str, tuple[int, int, str]]:
    """(inode, mtime, sha256) of every live image: a later (inode, mtime) with the same bytes is a rewrite."""
    return {key: (st.st_ino, st.st_mtime_ns, hashlib.sha256((brand_dir / key).read_bytes()).hexdigest())
            for key, st in _images(brand_dir).items()}


def run_args(catalog: Path, spec: Path, out: Path, chunk_size: int) -> list[str]:
    return [sys.executable, "-m", "flows.cli", "run", str(catalog), "--brand", str(spec), "--out", str(out),
            "--chunk-size", str(chunk_size)]


def kill_and_resume(point: Point, *, repo: Path, catalog: Path, specs: dict[str, Path], references: dict[str, dict[str, str]],
                    brand: str, workdir: Path, env: dict[str, str], chunk_size: int = 2, seeded_with: Path | None = None,
                    timeout_s: float = 600) -> Outcome:
    """One point: (for updates, start from a copy of ``seeded_with``, a completed run of the previous spec)
    run with the spec under test, kill at the trigger, resume, audit against the reference of the spec in
    force. ``specs``/``references`` are keyed "previous" and "new"."""
    out = workdir / "out"
    if point.update:
        shutil.copytree(seeded_with, out)
    brand_dir = out / brand
    spec = specs["new"] if point.update else specs["previous"]
    seen = {k: v[:2] for k, v in remember(brand_dir).items()}
    watch = Watch(brand_dir=brand_dir, expected=len(references["previous"]), started=time.monotonic(), before=seen,
                  started_wall=time.time() - 1.0)  # file times have coarse resolution on some filesystems
    watch.runs_before = frozenset(watch.recorded_runs())
    args = run_args(catalog, spec, out, chunk_size)
    proc = subprocess.Popen(args, cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    fired = False
    deadline = time.monotonic() + timeout_s
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                fired = point.trigger(watch)
            except OSError:  # a file vanished under the watcher: look again
                fired = False
            if fired:
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(POLL_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    killed_after = time.monotonic() - watch.started
    in_force = "previous" if (not point.update or point.resume_with == "previous") else "new"
    before = remember(brand_dir)
    t = time.monotonic()
    resumed = subprocess.run(run_args(catalog, specs[in_force], out, chunk_size), cwd=repo, env=env, capture_output=True,
                             text=True, timeout=timeout_s)
    outcome = Outcome(point=point.name, fired=fired, killed_after_s=round(killed_after, 2), resume_rc=resumed.returncode,
                      resume_s=round(time.monotonic() - t, 1), audit=audit(brand_dir, references[in_force], before))
    if resumed.returncode:
        outcome.note = (resumed.stderr.strip().splitlines() or ["(no output)"])[-1][:300]
    return outcome
