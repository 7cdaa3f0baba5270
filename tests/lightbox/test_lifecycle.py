"""One lifecycle state per output: rendered -> checked -> live | already_live | review (-> live when approved);
failed and unchanged end where they start. Walked through the real stages on a real chunk."""

from __future__ import annotations

import itertools

import pytest

from lightbox.records import STEPS, LifecycleError, Output

STATES = list(STEPS)


@pytest.fixture
def chunk(tmp_path):
    from lightbox.catalog.ingest import read_catalog, to_products
    from lightbox.engines import build_engines
    from lightbox.fetch_policy import FetchPolicy
    from lightbox.generate import generate_chunk
    from lightbox.plan import plan_run
    from lightbox.records import RunContext
    from lightbox.specs import load_brand_spec, spec_channels
    from lightbox.state import RunState
    from lightbox.storage import Store
    from tests.conftest import ACME
    from tests.support.helpers import make_catalog

    catalog = make_catalog(tmp_path / "cat", n_good=1)
    spec, store = load_brand_spec(ACME), Store(str(tmp_path / "out"))
    plan = plan_run(to_products(read_catalog(str(catalog))), spec, {}, chunk_size=8)
    ctx = RunContext(run_id="life", brand_uri=ACME, out_uri=store.root_uri, fetch=FetchPolicy().for_catalog(str(catalog)))
    state = RunState.of(store)
    state.ensure_brand(store, spec.name)
    made = generate_chunk(plan.chunks[0], spec, spec_channels(spec), ctx, store, build_engines(spec, None))
    return spec, store, state, made


def test_an_output_walks_its_life_through_the_stages(chunk):
    from lightbox.publish import APPROVED, approve_output, publish_chunk
    from lightbox.quality import check_chunk
    from lightbox.specs import spec_channels

    spec, store, state, made = chunk
    assert made and {o.state for o in made} == {"rendered"} and all(o.made and not o.live for o in made)
    checked = check_chunk(made, spec, spec_channels(spec), store)
    assert {o.state for o in checked} == {"checked"} and {o.qc for o in checked} <= {"passed", "warned"}
    rejected = checked[0].to("checked", qc="failed", qc_reasons=["[fail] a rule"])  # as the gate leaves a failed one
    published = publish_chunk([rejected, *checked[1:]], store, state, spec.name, "life")
    assert [o.state for o in published] == ["review"] + ["live"] * (len(checked) - 1)
    assert "/_review/life/" in (published[0].uri or "") and not store.exists(store.key_of(checked[0].uri or ""))
    again = publish_chunk(checked[1:], store, state, spec.name, "life")  # a task retry: the same bytes are live
    assert {o.state for o in again} == {"already_live"} and all(o.live for o in again)
    approved = approve_output(published[0], store, store.key_of(checked[0].uri or ""))
    assert approved.state == "live" and approved.qc == "failed" and approved.qc_reasons[-1] == APPROVED
    assert store.exists(store.key_of(approved.uri or ""))


def test_an_output_never_gated_is_never_published(chunk):
    """Publishing skips no step: a rendered output that did not pass through the gate raises, nothing written."""
    from lightbox.publish import publish_chunk

    spec, store, state, made = chunk
    with pytest.raises(LifecycleError, match="is rendered is not published"):
        publish_chunk(made, store, state, spec.name, "life")
    assert not any(store.exists(store.key_of(o.uri or "")) for o in made)
    assert state.entries(spec.name) == {}


@pytest.mark.parametrize(("start", "end"), [(a, b) for a, b in itertools.product(STATES, STATES) if b not in STEPS[a]])
def test_every_step_an_output_does_not_have_raises(start, end):
    o = Output(sku="A", row=1, category="kitchen", channel="amazon_main", state=start)
    with pytest.raises(LifecycleError, match=f"A/amazon_main: an output that is {start} cannot become {end}"):
        o.to(end)


def test_the_steps_it_has():
    o = Output(sku="A", row=1, category="kitchen", channel="amazon_main", state="rendered")
    assert o.to("checked", qc="passed").to("review").to("live").state == "live"
    assert o.to("checked").to("checked", qc="failed").to("already_live").live
    assert Output(sku="A", row=1, category="k", channel="c", state="failed").to("live").state == "live"  # the state said so
    assert not Output(sku="A", row=1, category="k", channel="c", state="unchanged").made
