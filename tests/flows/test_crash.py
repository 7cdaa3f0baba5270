"""A run killed while it holds its brand's lock (SIGKILL of the whole process group, as an OOM kill or a
node drain does) does not block the brand: the next run starts when the lease runs out, with no manual
step, and publishes everything. Against the session's Prefect server, as real `lightbox run` processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ACME, REPO
from tests.e2e.test_service import _wait
from tests.support.helpers import make_catalog

pytestmark = pytest.mark.slow

TTL_S = 8


def _entries(out) -> dict:  # a Path
    """What the run state records for the brand under an output root."""
    from lightbox.state import RunState
    from lightbox.storage import Store

    return RunState.of(Store(str(out))).entries("acme-home")


@pytest.fixture
def env(prefect_harness, tmp_path):
    from prefect.settings import PREFECT_API_URL

    return {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PREFECT_HOME": str(tmp_path / "prefect-home"),
            "LIGHTBOX_LOCK_TTL_S": str(TTL_S)}


def test_a_killed_run_frees_its_brand_within_the_lease(tmp_path, env):
    catalog = make_catalog(tmp_path / "cat", n_good=6)
    out = tmp_path / "out"
    args = [sys.executable, "-m", "flows.cli", "run", str(catalog), "--brand", ACME, "--out", str(out), "--chunk-size", "1"]
    first = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    lease = out / "acme-home" / "_lock" / f"{1:012d}.json"
    try:
        _wait("the first run to take the brand lock", lambda: lease.exists(), 120, every=0.2)
        time.sleep(1.0)  # well into the run: the lease is held and being renewed
        os.killpg(first.pid, signal.SIGKILL)
        killed_at = time.time()
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert json.loads(lease.read_text())["released"] is False  # the dead run never released it

    started = time.time()
    second = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    taken = json.loads((out / "acme-home" / "_lock" / f"{2:012d}.json").read_text())["taken_at"]
    # taken once the dead run's lease ran out, with no `lightbox unlock`: not before, and not long after the later of
    # the lease's end and the second run's start (its start-up on a loaded machine is not the lock's doing)
    assert taken >= killed_at
    assert taken - max(killed_at + TTL_S, started) <= 30, (taken - killed_at, started - killed_at)
    live = sorted(p.parent.name for p in (out / "acme-home").glob("*/amazon_main.jpg"))
    assert live == [f"GOOD-{i}" for i in range(6)]
    assert len(_entries(out)) == 18
    assert not list((out / "acme-home").glob("*/.*.tmp-*"))  # no temporary files in live folders


KILL_POINTS = ("generate: 30% staged", "publish: first chunk recorded", "publish: 50% live", "update: 30% replaced, rolled back")


@pytest.mark.parametrize("point", KILL_POINTS)
def test_killed_at_a_point_and_resumed_nothing_is_lost_duplicated_or_wrong(point, tmp_path, env, references):
    """SIGKILL of a real `lightbox run` (its whole process group) at a point of generate, publish, the state
    commit, or a spec update's publish; the same command again, no manual step: every output of the spec in
    force is live with that spec's bytes (as an uninterrupted run renders them) and the state's hash,
    nothing written twice, no temporary file in a live folder, no staging left."""
    from lightbox.testing.kill_series import AUDITED, kill_and_resume, standard_points

    catalog, specs, refs, seeded = references
    chosen = next(p for p in standard_points() if p.name == point)
    outcome = kill_and_resume(chosen, repo=REPO, catalog=catalog, specs=specs, references=refs, brand="acme-home",
                              workdir=tmp_path / "work", env={**env, "LIGHTBOX_LOCK_TTL_S": "5"}, chunk_size=2,
                              seeded_with=seeded, timeout_s=300)
    assert outcome.fired, f"the run ended before {point}"
    assert outcome.resume_rc == 0, outcome.note
    assert {k: outcome.audit[k] for k in AUDITED} == dict.fromkeys(AUDITED, 0), outcome


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """The catalog, the spec and its update, and what an uninterrupted run of each makes live."""
    from lightbox.pipeline import run_plain
    from lightbox.testing.kill_series import reference

    root = tmp_path_factory.mktemp("kill-refs")
    catalog = make_catalog(root / "cat", n_good=6)
    update = root / "update.yaml"
    update.write_text(open(ACME).read().replace("opacity: 0.30", "opacity: 0.60"))
    specs = {"previous": Path(ACME), "new": update}
    run_plain(str(catalog), ACME, str(root / "previous"), chunk_size=2, run_id="ref-previous")
    shutil.copytree(root / "previous", root / "new")  # the update, uninterrupted, over the published brand
    run_plain(str(catalog), str(update), str(root / "new"), chunk_size=2, run_id="ref-new")
    refs = {name: reference(root / name / "acme-home") for name in specs}
    assert refs["previous"] != refs["new"] and len(refs["previous"]) == 18
    return catalog, specs, refs, root / "previous"


def test_unlock_releases_a_dead_runs_lock_at_once(tmp_path):
    from lightbox.lock import BrandLock, current
    from lightbox.storage import Store

    store = Store(str(tmp_path / "out"))
    assert BrandLock(store, "acme-home", "dead-run", ttl_s=3600).try_acquire() is None
    r = subprocess.run([sys.executable, "-m", "flows.cli", "unlock", "acme-home", "--out", str(tmp_path / "out")], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "acme-home: released the lock of run dead-run" in r.stdout, r.stderr
    assert current(store, "acme-home")[1]["released"] is True
    assert BrandLock(store, "acme-home", "next", ttl_s=60).try_acquire() is None
