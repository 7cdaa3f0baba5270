"""The Run object: a run's bookkeeping in one place - its folder's files, the stages' counts, the summary, the
sweep of its staging, a refused run's report, and a validated catalog handed from the command line to the flow."""

import json
from types import SimpleNamespace

import pandas as pd
import pytest

from lightbox.errors import LightboxError
from lightbox.records import Output, QuarantinedRow
from lightbox.run import Run, new_run_id
from lightbox.specs import load_brand_spec
from lightbox.storage import Store
from tests.conftest import ACME


@pytest.fixture
def spec():
    return load_brand_spec(ACME)


def _outputs() -> list[Output]:
    ok = dict(row=1, category="kitchen", state="live", uri="u", sha256="ab" * 32)
    return [
        Output(sku="A", channel="amazon_main", qc="passed", **ok),
        Output(sku="A", channel="shopify_square", qc="warned", **ok),
        Output(sku="B", channel="amazon_main", state="review", qc="failed", row=2, category="kitchen"),
        Output(sku="C", channel="amazon_main", state="failed", qc="not_run", row=3, category="kitchen", error="unreadable"),
        Output(sku="D", channel="amazon_main", state="unchanged", qc="passed", row=4, category="kitchen",
               uri="u", sha256="cd" * 32),
    ]


def test_the_stages_report_into_the_run_and_the_summary_counts_from_it(spec, tmp_path):
    run = Run.start(spec, "catalog.csv", str(tmp_path), run_id="20261206T000000Z-abcdef12", skus=["A", "Z"], clock=lambda: 100.0)
    bad = QuarantinedRow(row=5, sku="E", reason="category 'garden' is not in the brand spec")
    hero = QuarantinedRow(row=6, sku="H", reason="hero row")
    plan = SimpleNamespace(products=4, skipped=[QuarantinedRow(row=7, sku="G", reason="grouped")], unknown_skus=["Z"],
                           absent=["GONE-1"])  # a Plan's counts
    run = run.validated(7, [bad], [], [hero]).planned(plan).noted(runner="threads (2)", manifest_uri="m.jsonl")
    s = run.summary(_outputs(), Store(str(tmp_path)), clock=lambda: 104.0)
    assert (s.ingested, s.invalid, s.skipped, s.products, s.unknown_skus, s.skus_requested) == (7, 1, 2, 4, ["Z"], ["A", "Z"])
    assert s.not_in_catalog == ["GONE-1"]
    assert (s.generated, s.unchanged, s.render_failed, s.qc_failed, s.warned, s.to_review) == (3, 1, 1, 1, 1, 1)
    assert (s.published, s.failed, s.failed_share, s.render_failed_share) == (2, 2, 0.25, 0.25)  # D was live before
    assert (s.wall_s, s.images_per_s, s.runner, s.manifest_uri, s.engine) == (4.0, 0.75, "threads (2)", "m.jsonl", "studio")
    assert s.summary_uri == str(tmp_path / "acme-home" / "_runs" / run.run_id / "summary.json")
    assert s.alarm is (0.25 > spec.quality.max_failed_share)


def test_noted_validates_and_a_run_is_a_frozen_record(spec):
    run = Run.start(spec, "c.csv", "out")
    with pytest.raises(ValueError):
        run.noted(products="many")
    with pytest.raises(ValueError):
        run.noted(unknown_field=1)
    with pytest.raises(ValueError):
        run.products = 3  # type: ignore[misc]
    assert Run.model_validate_json(run.model_dump_json()) == run  # it crosses task boundaries as JSON


def test_finish_writes_the_summary_files_and_sweeps_the_staging(spec, tmp_path):
    store = Store(str(tmp_path))
    run = Run.start(spec, "c.csv", str(tmp_path), run_id=new_run_id())
    store.write_atomic(f"{run.staging}/A/amazon_main.jpg", b"x")
    summary = run.summary([], store)
    assert run.finish(store, summary) == summary.summary_uri
    folder = tmp_path / "acme-home" / "_runs" / run.run_id
    assert json.loads((folder / "summary.json").read_text())["run_id"] == run.run_id
    assert (folder / "quarantine.csv").exists() and not (folder / "staging").exists()
    assert json.loads((tmp_path / "acme-home" / "latest-run.json").read_text())["run_id"] == run.run_id


def test_a_stopped_run_writes_its_report_and_nothing_else(spec, tmp_path):
    store = Store(str(tmp_path))
    bad = [QuarantinedRow(row=i, sku=f"S{i}", reason="no photo") for i in range(1, 4)]
    s = Run.start(spec, "c.csv", str(tmp_path), run_id="r1").validated(4, bad, [], []).stop(store, "3 of 4 rows are invalid")
    assert (s.stopped, s.invalid, s.products, s.generated) == ("3 of 4 rows are invalid", 3, 0, 0)
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["acme-home/_runs/r1/quarantine.csv", "acme-home/_runs/r1/summary.json", "acme-home/latest-run.json"]


def test_a_validated_catalog_is_handed_over_by_reference_and_only_from_its_own_run_folder(spec, tmp_path):
    store = Store(str(tmp_path))
    run = Run.start(spec, "c.csv", str(tmp_path), run_id="20261206T000000Z-abcdef12")
    valid = pd.DataFrame([{"sku": "A", "title": "Mug"}])
    rows = [QuarantinedRow(row=2, sku="B", reason="no photo")]
    uri = run.hand_over(store, run.keep_validated(store, valid, 2, rows, [], [], None))
    got = Run.handed_over(store, "acme-home", uri)
    assert (got.run_id, got.ingested, got.quarantined) == (run.run_id, 2, rows)
    assert pd.read_parquet(got.valid_uri).equals(valid)
    # anything else is refused, naming the parameter
    other = tmp_path / "elsewhere.json"
    other.write_text((tmp_path / "acme-home" / "_runs" / run.run_id / "validated.json").read_text())
    forged = got.model_copy(update={"valid_uri": str(tmp_path / "x.parquet")})
    store.write_atomic("acme-home/_runs/forged/validated.json", forged.model_dump_json().encode())
    for bad in (str(other), uri.replace("acme-home", "other-brand"), "/etc/passwd", str(tmp_path / "acme-home" / "_runs" / "nope" / "validated.json"),
                str(tmp_path / "acme-home" / "_runs" / "forged" / "validated.json"),
                str(tmp_path / "acme-home" / "_runs" / ".." / "validated.json")):
        with pytest.raises(LightboxError, match="^parameter checked: "):
            Run.handed_over(store, "acme-home", bad)
