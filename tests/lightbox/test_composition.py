"""One composition of the stages (lightbox/composition.py): the plain loop, the unchanged-run shortcut and the
flow (tests/flows/test_catalog_run.py) run the same `compose`, each with its own way of running a stage."""

from __future__ import annotations

import pytest

from lightbox import composition
from lightbox.plan import Plan
from lightbox.run import Run
from lightbox.specs import load_brand_spec
from tests.conftest import ACME
from tests.support.helpers import make_catalog


class Recording:
    """Stages that record what ran, in order (the protocol's own test double: no external system behind it)."""

    def __init__(self, refused: str | None = None) -> None:
        self.calls: list[str] = []
        self.refused = refused

    def validate(self, run):
        self.calls.append("validate")
        return run.validated(3, [], [], []), self.refused

    def stop(self, run, reason):
        self.calls.append(f"stop: {reason}")
        return "stopped"

    def plan(self, run):
        self.calls.append("plan")
        return Plan(chunks=[], skipped=[], retire=["A/amazon_main"])

    def generate(self, chunks):
        self.calls.append("generate")
        return ["g"]

    def check(self, generated):
        self.calls.append(f"check {generated}")
        return ["c"]

    def publish(self, checked):
        self.calls.append(f"publish {checked}")
        return ["p"]

    def collect(self, chunks, generated, checked, published):
        self.calls.append(f"collect {generated} {checked} {published}")
        return []

    def retire(self, run, plan):
        self.calls.append(f"retire {plan.retire}")
        return run.noted(retired=[{"sku": "A"}])

    def report(self, run, plan, outputs):
        self.calls.append(f"report {run.ingested} {run.products} {len(run.retired)}")
        return "done"


@pytest.fixture
def run(tmp_path):
    return Run.start(load_brand_spec(ACME), "c.csv", str(tmp_path), run_id="r")


def test_the_stages_run_in_their_order_each_handing_the_next_its_result(run):
    stages = Recording()
    assert composition.compose(run, stages) == "done"
    assert stages.calls == ["validate", "plan", "generate", "check ['g']", "publish ['c']", "collect ['g'] ['c'] ['p']",
                            "retire ['A/amazon_main']", "report 3 0 1"]  # the run carries its counts to the report


def test_a_refused_catalog_stops_before_anything_is_planned(run):
    stages = Recording(refused="9 of 10 rows are invalid")
    assert composition.compose(run, stages) == "stopped"
    assert stages.calls == ["validate", "stop: 9 of 10 rows are invalid"]


def test_the_plain_loop_publishes_each_chunk_before_it_generates_the_next(tmp_path, monkeypatch):
    """Lazy chunks: a crash in chunk 2 leaves chunk 1 published and recorded, as the loop always did."""
    from lightbox import pipeline

    events: list[str] = []
    real_generate, real_publish = pipeline.generate_chunk, pipeline.publish_chunk

    def generate(chunk, *a, **k):
        events.append(f"generate {chunk.index}")
        return real_generate(chunk, *a, **k)

    def publish(outputs, *a, **k):
        events.append(f"publish {outputs[0].sku}")
        return real_publish(outputs, *a, **k)

    composed: list[str] = []

    def counted(run, stages):
        composed.append(type(stages).__name__)
        return composition.compose(run, stages)

    monkeypatch.setattr(pipeline, "generate_chunk", generate)
    monkeypatch.setattr(pipeline, "publish_chunk", publish)
    monkeypatch.setattr(pipeline, "compose", counted)
    s = pipeline.run_plain(str(make_catalog(tmp_path / "cat", n_good=2)), ACME, str(tmp_path / "out"), chunk_size=1)
    assert s.published == 6 and composed == ["InProcess"]
    assert events == ["generate 0", "publish GOOD-0", "generate 1", "publish GOOD-1"]


def test_the_unchanged_run_shortcut_is_the_same_composition_stopping_at_the_first_render(tmp_path, monkeypatch):
    from lightbox import preflight
    from lightbox.fetch_policy import FetchPolicy
    from lightbox.pipeline import run_plain
    from lightbox.storage import Store

    catalog = make_catalog(tmp_path / "cat", n_good=2)
    out, spec = str(tmp_path / "out"), load_brand_spec(ACME)
    composed: list[str] = []

    def counted(run, stages):
        composed.append(type(stages).__name__)
        return composition.compose(run, stages)

    monkeypatch.setattr(preflight, "compose", counted)

    def shortcut():
        checked = preflight.check_catalog(str(catalog), spec)
        run = Run.start(spec, str(catalog), out)
        return preflight.unchanged_run(run, ACME, spec, Store(out), checked, FetchPolicy(), chunk_size=8)

    first = run_plain(str(catalog), ACME, out)
    s = shortcut()
    assert s is not None and (s.products, s.generated, s.unchanged, s.published) == (2, 0, first.generated, 0)
    assert (s.ingested, s.invalid) == (first.ingested, first.invalid)
    (tmp_path / "cat" / "img" / "good-1.jpg").write_bytes((tmp_path / "cat" / "img" / "good-0.jpg").read_bytes())
    assert shortcut() is None  # a photo changed: the composition stopped at its first render (WouldRender)
    assert composed == ["FingerprintsOnly", "FingerprintsOnly"]
