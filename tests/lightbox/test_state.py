"""The run state table: per-chunk commits, per-SKU reads, migration of the v1 manifest, incremental catalog
checks measured against a full recomputation, concurrent writers (SQLite and a real PostgreSQL)."""

from __future__ import annotations

import json
import multiprocessing
import random
import shutil

import pytest

from lightbox.pipeline import run_plain
from lightbox.testing.oracles import consistency, near_duplicates
from lightbox.records import Output
from lightbox.layout import BrandLayout
from lightbox.state import RunState, StateError
from lightbox.storage import Store
from tests.conftest import ACME, fresh_database
from tests.support.helpers import make_catalog


def _output(sku: str, channel: str, phash: str, *, category: str = "mugs", fill: float = 0.8, clipped: float = 0.01,
            border: tuple[float, float, float] = (250.0, 248.0, 245.0), sha: str = "0" * 64) -> Output:
    return Output(sku=sku, row=1, category=category, channel=channel, state="live", qc="passed",
                  uri=f"/x/{sku}/{channel}.jpg", sha256=sha, bytes=10,
                  metrics={"phash": phash, "fill_longest": fill, "clipped": clipped, "border_mean": list(border)})


def _flip(phash: str, bits: list[int]) -> str:
    v = int(phash, 16)
    for b in bits:
        v ^= 1 << b
    return f"{v:0192x}"


def _catalog_like(rng: random.Random, n: int) -> list[Output]:
    """n SKUs on two channels; every 7th SKU re-uses another's photo (a few bits apart: a near-duplicate),
    every 11th is 16+ bits from one (not one)."""
    outs, hashes = [], []
    for i in range(n):
        base = f"{rng.getrandbits(768):0192x}"
        if i % 7 == 6:
            base = _flip(hashes[i - 3], rng.sample(range(768), rng.randint(0, 15)))
        elif i % 11 == 10:
            base = _flip(hashes[i - 5], rng.sample(range(768), 16 + rng.randint(0, 4)))
        hashes.append(base)
        for ch in ("amazon_main", "shopify_square"):
            outs.append(_output(f"SKU-{i:04d}", ch, base, category=rng.choice(["mugs", "lamps", "rugs"]),
                                fill=rng.uniform(0.6, 0.9), clipped=rng.uniform(0, 0.05),
                                border=(rng.uniform(240, 255), rng.uniform(240, 255), rng.uniform(240, 255))))
    return outs


def _full(state: RunState, brand: str) -> dict:
    """The reference: the whole catalog computed from every entry (the pre-table way)."""
    entries = state.entries(brand)
    by_channel: dict[str, list] = {}
    for e in entries.values():
        by_channel.setdefault(e["channel"], []).append(e)
    return {**consistency(entries), "near_duplicates": near_duplicates(by_channel)}


def _same_checks(incremental: dict, full: dict) -> None:
    assert incremental["score"] == pytest.approx(full["score"], abs=1e-4)
    for ch, c in full["channels"].items():
        got = incremental["channels"][ch]
        assert got["images"] == c["images"] and got["score"] == pytest.approx(c["score"], abs=1e-4)
        for part, p in c["parts"].items():
            assert got["parts"][part]["spread"] == pytest.approx(p["spread"], abs=2e-3)
    pairs = lambda c: sorted((p["channel"], *sorted((p["a"], p["b"])), p["bits"]) for p in c["near_duplicates"])  # noqa: E731
    assert pairs(incremental) == pairs(full)


def test_incremental_checks_equal_a_full_recomputation_through_updates(tmp_path):
    rng = random.Random(7)
    state = RunState(f"sqlite:///{tmp_path}/state.sqlite")
    outs = _catalog_like(rng, 120)
    for i in range(0, len(outs), 16):  # committed chunk by chunk, as publish does
        state.record("acme", outs[i:i + 16], "run-1")
    first = state.consistency("acme")
    assert len(first["near_duplicates"]) >= 2 * 15  # the re-used photos, on both channels
    _same_checks(first, _full(state, "acme"))
    # an update: some products re-shot (new hashes and metrics), one photo re-used by another SKU, one undone
    changed = [_output(o.sku, o.channel, f"{rng.getrandbits(768):0192x}", fill=0.5, category="mugs") for o in outs[:20]]
    copy = _output("SKU-0100", "amazon_main", outs[40].metrics["phash"])
    state.record("acme", [*changed, copy], "run-2")
    second = state.consistency("acme")
    _same_checks(second, _full(state, "acme"))
    assert any({p["a"], p["b"]} == {"SKU-0100", outs[40].sku} for p in second["near_duplicates"])
    # committing the same outputs again (a retried chunk) changes nothing
    state.record("acme", [*changed, copy], "run-2")
    assert state.consistency("acme") == second


def test_a_one_sku_read_returns_that_sku_only_and_brands_and_roots_are_apart(tmp_path):
    url = f"sqlite:///{tmp_path}/state.sqlite"
    a, b = RunState(url, "s3://bucket/a"), RunState(url, "s3://bucket/b")
    a.record("acme", [_output(f"S{i}", "amazon_main", f"{i:0192x}") for i in range(50)], "r1")
    a.record("other", [_output("S1", "amazon_main", "1" * 192)], "r1")
    b.record("acme", [_output("S1", "amazon_main", "2" * 192)], "r1")
    assert set(a.entries("acme", ["S7"])) == {"S7/amazon_main"}
    assert a.entries("acme", ["S1"])["S1/amazon_main"]["metrics"]["phash"] == f"{1:0192x}"
    assert b.entries("acme", ["S1"])["S1/amazon_main"]["metrics"]["phash"] == "2" * 192
    assert a.count("acme") == 50 and a.count("other") == 1 and b.count("acme") == 1
    assert [e["sku"] for e in a.query("acme", sku="S3")] == ["S3"]


@pytest.mark.slow
def test_a_v1_manifest_is_migrated_on_first_use_and_kept_aside(tmp_path):
    catalog = make_catalog(tmp_path / "cat")
    out = tmp_path / "out"
    run_plain(str(catalog), ACME, str(out))
    store = Store(str(out))
    entries = RunState.of(store).entries("acme-home")
    # the same outputs as a v1 deployment left them: one manifest.json, no state table, no exports
    shutil.rmtree(out / "_lightbox")
    for key in BrandLayout("acme-home").exports:
        store.delete(key)
    v1 = {"version": 1, "brand": "acme-home", "entries": entries}
    (out / "acme-home" / "manifest.json").write_text(json.dumps(v1))
    again = run_plain(str(catalog), ACME, str(out))
    assert again.unchanged == 9 and again.published == 0  # nothing re-rendered: the v1 state was taken over
    assert RunState.of(store).entries("acme-home") == entries
    assert not (out / "acme-home" / "manifest.json").exists()
    assert json.loads((out / "acme-home" / "_lightbox" / "manifest.v1.json").read_text()) == v1
    lines = (out / "acme-home" / "manifest.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["key"] for line in lines) == sorted(entries)


def test_exports_restore_the_state_elsewhere(tmp_path):
    """Another machine (no state table here) starts from the root's last export, not from nothing."""
    catalog = make_catalog(tmp_path / "cat", n_good=2)
    out = tmp_path / "out"
    run_plain(str(catalog), ACME, str(out))
    store = Store(str(out))
    entries = RunState.of(store).entries("acme-home")
    shutil.rmtree(out / "_lightbox")
    assert RunState.of(store).ensure_brand(store, "acme-home") == 6
    assert RunState.of(store).entries("acme-home") == entries
    import pandas as pd

    frame = pd.read_parquet(out / "acme-home" / "manifest.parquet")
    assert sorted(frame["key"]) == sorted(entries) and set(frame["qc"]) <= {"passed", "warned"}


def _writer(url: str, root: str, brand: str, n: int) -> None:
    state = RunState(url, root)
    for i in range(0, n, 5):
        state.record(brand, [_output(f"S{j}", "amazon_main", f"{j:0192x}") for j in range(i, i + 5)], "r")


def _concurrent_brands(url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(url, "s3://b/root", f"brand-{k}", 60)) for k in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    state = RunState(url, "s3://b/root")
    assert [state.count(f"brand-{k}") for k in range(3)] == [60, 60, 60]
    assert all(state.consistency(f"brand-{k}")["channels"]["amazon_main"]["images"] == 60 for k in range(3))


@pytest.mark.slow
def test_concurrent_writers_of_different_brands_on_sqlite(tmp_path):
    _concurrent_brands(f"sqlite:///{tmp_path}/state.sqlite")


@pytest.mark.slow
def test_concurrent_writers_and_the_run_on_postgresql(postgres, tmp_path, monkeypatch):
    if postgres is None:
        pytest.skip("no PostgreSQL server here (set LIGHTBOX_TEST_PG_URL)")
    url = fresh_database(postgres, "lightbox_state_test").replace("postgresql+asyncpg://", "postgresql+psycopg://")
    _concurrent_brands(url)
    monkeypatch.setenv("LIGHTBOX_STATE_URL", url)
    catalog = make_catalog(tmp_path / "cat", n_good=2)
    first = run_plain(str(catalog), ACME, str(tmp_path / "out"), chunk_size=1)
    again = run_plain(str(catalog), ACME, str(tmp_path / "out"), chunk_size=1)
    assert first.published == 6 and again.unchanged == 6
    assert not (tmp_path / "out" / "_lightbox").exists()  # the state is in PostgreSQL, not beside the outputs
    assert RunState.of(Store(str(tmp_path / "out"))).count("acme-home") == 6


def test_a_state_that_cannot_be_reached_fails_naming_it_without_its_password(tmp_path):
    with pytest.raises(StateError) as err:
        RunState("postgresql+psycopg://lightbox:s3cr3t-pw@127.0.0.1:1/nothing")
    assert "127.0.0.1:1" in str(err.value) and "s3cr3t-pw" not in str(err.value)
    from lightbox.retry import is_transient

    assert is_transient(err.value)  # a database that is down fails the chunk's task, which is retried


def test_a_large_catalog_gets_bigger_chunks_not_thousands_of_task_runs():
    from lightbox.plan import MAX_CHUNKS, plan_run
    from lightbox.records import Product
    from lightbox.specs import load_brand_spec

    spec = load_brand_spec(ACME)
    products = [Product(sku=f"S{i:05d}", row=i + 2, title="Mug", category="mugs", images=["x.jpg"]) for i in range(10_000)]
    plan = plan_run(products, spec, {}, chunk_size=8)
    assert len(plan.chunks) <= MAX_CHUNKS and plan.products == 10_000
    assert sorted(i.product.sku for c in plan.chunks for i in c.items) == [p.sku for p in products]  # none lost
    small = plan_run(products[:100], spec, {}, chunk_size=8)
    assert len(small.chunks) == 13  # small catalogs keep the asked size


def test_a_sku_scoped_run_validates_the_rows_of_its_skus(tmp_path):
    """A catalog-update event for one SKU reads the catalog but validates (and is refused on) only the rows
    of that SKU: other products' invalid rows are the nightly run's business. A duplicated requested SKU is
    still caught."""
    import pandas as pd

    from lightbox.preflight import check_catalog, rejection
    from lightbox.specs import load_brand_spec

    spec = load_brand_spec(ACME)
    catalog = make_catalog(tmp_path / "cat", n_good=4)
    frame = pd.read_csv(catalog, dtype=str, keep_default_na=False)
    frame.loc[0, "sku"] = "bad/sku"
    frame.loc[1, "category"] = "nope"
    frame = pd.concat([frame, frame.iloc[[3]]])  # GOOD-3 twice
    frame.to_csv(catalog, index=False)
    whole = check_catalog(str(catalog), spec)
    assert rejection(whole, spec)  # 4 of 5 rows invalid: a catalog run is refused
    one = check_catalog(str(catalog), spec, skus=["GOOD-2"])
    assert one.total == 1 and len(one.valid) == 1 and rejection(one, spec) is None
    dup = check_catalog(str(catalog), spec, skus=["GOOD-3"])
    assert len(dup.valid) == 0 and all("appears more than once" in q.reason for q in dup.quarantined)
