"""The brand lock on real storage (local disk and S3 through moto's server): one holder at a time, a dead
holder's lease runs out by itself, a live holder that lost its lease knows it, operators can unlock."""

from __future__ import annotations

import threading

import pytest

from lightbox.lock import BrandLock, LockLost, current, force_unlock
from lightbox.storage import Store


class Clock:
    def __init__(self, t: float = 1_800_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t




def test_one_holder_at_a_time_and_release_hands_over(store):
    clock = Clock()
    a, b = BrandLock(store, "acme", "run-a", ttl_s=60, clock=clock), BrandLock(store, "acme", "run-b", ttl_s=60, clock=clock)
    assert a.try_acquire() is None and a.generation == 1
    holder = b.try_acquire()
    assert holder["owner"] == "run-a" and b.generation is None
    a.release()
    assert b.try_acquire() is None and b.generation == 2


def test_a_dead_holders_lease_runs_out_and_a_live_loser_knows(store):
    clock = Clock()
    dead = BrandLock(store, "acme", "run-killed", ttl_s=30, clock=clock)
    assert dead.try_acquire() is None  # then the process is killed: no renewals, no release
    nxt = BrandLock(store, "acme", "run-next", ttl_s=30, clock=clock)
    clock.t += 29
    assert nxt.try_acquire()["owner"] == "run-killed"  # still within its lease
    clock.t += 2
    assert nxt.try_acquire() is None  # lease ran out: taken over, no manual step
    assert not dead.renew() and dead.lost  # had it been alive (paused), it now knows it lost the lock
    with pytest.raises(LockLost):
        dead.ensure_held()
    dead.release()  # never overwrites the new holder's lease
    assert current(store, "acme")[1]["owner"] == "run-next"


def test_racing_contenders_exactly_one_wins(store):
    clock = Clock()
    locks = [BrandLock(store, "acme", f"run-{i}", ttl_s=60, clock=clock) for i in range(6)]
    results: list = [None] * len(locks)
    start = threading.Barrier(len(locks))

    def contend(i: int) -> None:
        start.wait()
        results[i] = locks[i].try_acquire()

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(len(locks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    winners = [lk for lk, r in zip(locks, results, strict=True) if r is None]
    assert len(winners) == 1 and current(store, "acme")[1]["owner"] == winners[0].owner


def test_operators_can_unlock_and_a_live_holder_then_stops(store):
    clock = Clock()
    holder = BrandLock(store, "acme", "run-stuck", ttl_s=3600, clock=clock)
    assert holder.try_acquire() is None
    released = force_unlock(store, "acme", by="ops")
    assert released["owner"] == "run-stuck"
    assert force_unlock(store, "acme") is None  # nothing held any more
    nxt = BrandLock(store, "acme", "run-next", ttl_s=60, clock=clock)
    assert nxt.try_acquire() is None
    assert not holder.renew() and holder.lost


def test_held_renews_in_the_background_and_releases(tmp_path):
    store = Store(str(tmp_path / "out"))
    lock = BrandLock(store, "acme", "run-a", ttl_s=0.6)
    with lock.held():
        first = current(store, "acme")[1]["expires_at"]
        threading.Event().wait(0.5)
        assert current(store, "acme")[1]["expires_at"] > first  # renewed every ttl / 3
        lock.ensure_held()
    assert current(store, "acme")[1]["released"] is True


def test_waiting_says_who_holds_it_and_gives_up_when_told(tmp_path):
    store = Store(str(tmp_path / "out"))
    clock = Clock()
    assert BrandLock(store, "acme", "run-a", ttl_s=600, clock=clock).try_acquire() is None
    told = []

    def sleep(s: float) -> None:
        clock.t += s

    waiting = BrandLock(store, "acme", "run-b", ttl_s=600, clock=clock, sleep=sleep)
    with pytest.raises(Exception, match=r"lock still held by run run-a on .* after 30 s"):
        waiting.acquire(timeout_s=30, on_wait=told.append)
    assert [h["owner"] for h in told] == ["run-a"]


@pytest.mark.slow
def test_a_run_that_hung_past_its_lease_publishes_nothing_more(tmp_path):
    """The fence: a run that stalled (SIGSTOP, a long GC pause, a frozen VM) while another run took its brand
    over checks its lease before every publish and stops writing; what it published before stays."""
    from lightbox.catalog.ingest import read_catalog, to_products
    from lightbox.catalog.validate import validate_catalog
    from lightbox.engines import build_engines
    from lightbox.fetch_policy import FetchPolicy
    from lightbox.generate import generate_chunk
    from lightbox.plan import plan_run
    from lightbox.publish import publish_chunk
    from lightbox.quality import check_chunk
    from lightbox.records import RunContext
    from lightbox.specs import load_brand_spec, spec_channels
    from lightbox.state import RunState
    from tests.conftest import ACME
    from tests.support.helpers import make_catalog

    spec, out = load_brand_spec(ACME), tmp_path / "out"
    store, channels = Store(str(out)), spec_channels(spec)
    catalog = make_catalog(tmp_path / "cat", n_good=2)
    plan = plan_run(to_products(validate_catalog(read_catalog(str(catalog)), spec).valid), spec, {}, chunk_size=1)
    ctx = RunContext(run_id="hung", brand_uri=ACME, out_uri=str(out), fetch=FetchPolicy().for_catalog(str(catalog)))
    lock = BrandLock(store, spec.name, "hung", ttl_s=60)
    assert lock.try_acquire() is None
    staged = [check_chunk(generate_chunk(c, spec, channels, ctx, store, build_engines(spec, None)), spec, channels, store)
              for c in plan.chunks]
    state = RunState.of(store)
    first = publish_chunk(staged[0], store, state, spec.name, "hung", lock_generation=lock.generation)
    assert [o.state for o in first] == ["live"] * 3

    later = Clock(2_000_000_000.0)  # the lease ran out while the run was stalled; another run took the brand
    assert BrandLock(store, spec.name, "next", ttl_s=60, clock=later).try_acquire() is None
    with pytest.raises(LockLost, match="stopped before publishing GOOD-1/amazon_main"):
        publish_chunk(staged[1], store, state, spec.name, "hung", lock_generation=lock.generation)
    assert not (out / "acme-home" / "GOOD-1").exists() and len(list((out / "acme-home" / "GOOD-0").glob("*.jpg"))) == 3
