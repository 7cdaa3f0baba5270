"""catalog-run under the Prefect test harness: the DAG, artifacts, reruns, S3 output, failure modes."""

import json
import re
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client

from flows.catalog_run import catalog_run
from lightbox.errors import SpecError
from tests.conftest import ACME, EXAMPLE_CATALOG
from tests.support.helpers import make_catalog

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_harness")]


def _entries(out) -> dict:  # a Path
    """What the run state records for the brand under an output root."""
    from lightbox.state import RunState
    from lightbox.storage import Store

    return RunState.of(Store(str(out))).entries("acme-home")


def _task_names(flow_run_id) -> list[str]:
    import asyncio

    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def read():
        async with get_client() as client:
            runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            return [r.name for r in runs]

    return asyncio.run(read())


@pytest.mark.slow
def test_example_catalog_publishes_every_valid_product_for_every_channel(tmp_path):
    out = tmp_path / "out"
    state = catalog_run(str(EXAMPLE_CATALOG), brand=ACME, out=str(out), chunk_size=6, return_state=True)
    assert state.is_completed(), state.message
    s = state.result()
    assert (s.ingested, s.invalid, s.skipped, s.products) == (28, 2, 2, 24)
    assert s.failed == 0 and s.published == 72
    for sku_dir in sorted((out / "acme-home").glob("ACM-*")):
        assert sorted(p.name for p in sku_dir.iterdir()) == ["amazon_main.jpg", "google_merchant.jpg", "shopify_square.jpg"]
    manifest = {"entries": _entries(out)}
    amazon = [e for e in manifest["entries"].values() if e["channel"] == "amazon_main"]
    assert len(amazon) == 24 and all(e["qc"] in ("passed", "warned") and e["width"] == 2000 for e in amazon)
    summary = json.loads(Path(s.summary_uri).read_text())
    assert summary["quarantine"][0]["sku"] == "ACM/../MUG-099"
    assert {q["reason"] for q in summary["skipped_rows"]} == {"hero: traditional photography"}
    assert summary["runner"].startswith("thread pool of ") and summary["runner"].endswith(" threads")  # where it ran
    names = _task_names(state.state_details.flow_run_id)
    for stage in ("load-brand-spec", "ingest", "validate", "plan", "export-manifest", "report"):
        assert any(n.startswith(stage) for n in names), stage
    assert sum(n.startswith("generate-chunk-") for n in names) == 4  # 24 products / 6 per chunk


@pytest.mark.slow
def test_artifacts_are_created(tmp_path):
    import asyncio

    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    catalog = make_catalog(tmp_path / "cat", n_good=2)
    state = catalog_run(str(catalog), brand=ACME, out=str(tmp_path / "out"), return_state=True)
    assert state.is_completed()

    async def read():
        async with get_client() as client:
            arts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["acme-home-run-summary", "acme-home-run-report", "acme-home-quarantine"]))
            )
            return {a.key: a for a in arts if a.flow_run_id == state.state_details.flow_run_id}

    arts = asyncio.run(read())
    assert set(arts) == {"acme-home-run-summary", "acme-home-run-report", "acme-home-quarantine"}
    table = arts["acme-home-run-summary"].data
    table = json.loads(table) if isinstance(table, str) else table
    assert {"metric": "published", "value": 6} in table
    assert "6** published" in arts["acme-home-run-report"].data


def test_rerun_publishes_nothing_new(tmp_path, monkeypatch):
    """Also: the flow runs the one composition of the stages (lightbox/composition.py), with its stages as tasks."""
    import flows.catalog_run
    from lightbox.composition import compose

    composed: list[str] = []

    def counted(run, stages):
        composed.append(type(stages).__name__)
        return compose(run, stages)

    monkeypatch.setattr(flows.catalog_run, "compose", counted)
    catalog = make_catalog(tmp_path / "cat", n_good=2)
    out = str(tmp_path / "out")
    first = catalog_run(str(catalog), brand=ACME, out=out)
    second = catalog_run(str(catalog), brand=ACME, out=out)
    assert first.published == 6 and second.published == 0 and second.unchanged == 6 and second.generated == 0
    assert composed == ["AsTasks", "AsTasks"]


@pytest.mark.slow
def test_flow_publishes_to_s3(tmp_path, s3_bucket):
    from lightbox.storage import Store

    catalog = make_catalog(tmp_path / "cat", n_good=2)
    s = catalog_run(str(catalog), brand=ACME, out=f"s3://{s3_bucket}/live", chunk_size=1)
    assert s.published == 6
    keys = Store(f"s3://{s3_bucket}/live").list("acme-home")
    assert sum(k.endswith(".jpg") and "/_" not in k for k in keys) == 6


def test_invalid_share_over_threshold_stops_the_run_with_its_report(tmp_path):
    """A deployment run of a refused catalog ends 'InvalidCatalog' with the reason, after writing
    summary.json and quarantine.csv (status column); nothing is rendered, the manifest is not touched."""
    import csv

    import pandas as pd

    catalog = make_catalog(tmp_path / "cat", n_good=2)
    frame = pd.read_csv(catalog, dtype=str, keep_default_na=False)
    frame.loc[0, "sku"] = "bad/sku"
    frame.to_csv(catalog, index=False)  # 1 of 2 rows invalid = 50% > 25%
    state = catalog_run(str(catalog), brand=ACME, out=str(tmp_path / "out"), return_state=True)
    assert state.is_failed() and state.name == "InvalidCatalog"
    assert re.search(r"1 of 2 catalog rows are invalid \(50%\), over .* 25%; quarantine report: .*quarantine.csv", state.message)
    run_dir = next((tmp_path / "out" / "acme-home" / "_runs").glob("*/summary.json")).parent
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["stopped"].startswith("1 of 2 catalog rows are invalid") and summary["generated"] == 0
    with open(run_dir / "quarantine.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["row"], r["sku"], r["status"]) for r in rows] == [("1", "bad/sku", "invalid")]
    assert not (tmp_path / "out" / "acme-home" / "manifest.jsonl").exists() and _entries(tmp_path / "out") == {}
    assert not list((tmp_path / "out" / "acme-home").glob("*/amazon_main.jpg"))


def test_bad_spec_fails_the_run_naming_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nversion: 1\ncategories: {kitchen: default}\nchannels: [nope]\n")
    state = catalog_run("whatever.csv", brand=str(bad), out=str(tmp_path / "out"), return_state=True)
    assert state.is_failed()
    with pytest.raises(SpecError, match=r"bad.yaml: channels\.0: unknown channel 'nope'"):
        state.result()


def test_a_chunk_that_keeps_failing_fails_the_run_after_the_others_publish(tmp_path, monkeypatch):
    import tasks.stages

    real = tasks.stages._generate_chunk

    def flaky(chunk, *args, **kwargs):
        if any(i.product.sku == "GOOD-1" for i in chunk.items):
            raise RuntimeError("disk on fire")
        return real(chunk, *args, **kwargs)

    monkeypatch.setattr(tasks.stages, "_generate_chunk", flaky)
    catalog = make_catalog(tmp_path / "cat", n_good=3)
    out = tmp_path / "out"
    state = catalog_run(str(catalog), brand=ACME, out=str(out), chunk_size=1, return_state=True)
    assert state.is_failed()
    with pytest.raises(Exception, match=r"1 of 3 chunks failed after retries; first: chunk \d: generate failed: RuntimeError: disk on fire"):
        state.result()
    live = sorted(p.parent.name for p in (out / "acme-home").glob("GOOD-*/amazon_main.jpg"))
    assert live == ["GOOD-0", "GOOD-2"]
    manifest = {"entries": _entries(out)}
    assert {e["sku"] for e in manifest["entries"].values()} == {"GOOD-0", "GOOD-2"}
    summary = json.loads(next((out / "acme-home" / "_runs").glob("*/summary.json")).read_text())
    assert {(f["sku"], f["stage"]) for f in summary["failures"]} == {("GOOD-1", "generate")}


@pytest.mark.slow
def test_ai_spec_runs_under_the_gpu_concurrency_limit(tmp_path, ai_spec_path):
    from prefect.client.orchestration import get_client as client_for

    catalog = make_catalog(tmp_path / "cat", n_good=2)
    s = catalog_run(str(catalog), brand=str(ai_spec_path), out=str(tmp_path / "out"), chunk_size=1)
    assert s.published == 6 and s.engine.startswith("diffusers ")
    with client_for(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name("gpu")
    assert limit.limit == 1 and limit.active_slots == 0  # created by the run, every slot released
    manifest = {"entries": _entries(tmp_path / "out")}
    assert sum(e["ai_generated"] for e in manifest["entries"].values()) == 4


@pytest.mark.slow
def test_quality_alarm_ends_in_its_own_state_and_alerts_a_webhook(tmp_path):
    """Too many outputs fail the gate: what passed is published, the run ends 'QualityAlarm', and the
    spec's notification block (a custom webhook) reaches a local HTTP receiver."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    from tests.support.http_server import WebhookReceiver
    from tests.support.helpers import add_thumbnail

    with WebhookReceiver() as rx:
        CustomWebhookNotificationBlock(
            name="lightbox-alerts", url=rx.url,
            json_data={"subject": "{{subject}}", "text": "{{body}}"},
        ).save("lightbox-alerts", overwrite=True)
        spec = tmp_path / "alerting.yaml"
        spec.write_text(Path(ACME).read_text().replace(
            "  max_failed_share: 0.10", "  max_failed_share: 0.10\n  alert_block: custom-webhook/lightbox-alerts"))
        catalog = make_catalog(tmp_path / "cat", n_good=2)
        add_thumbnail(catalog)
        out = tmp_path / "out"
        state = catalog_run(str(catalog), brand=str(spec), out=str(out), return_state=True)
        received = [json.loads(body) for _, body in rx.posts]
        assert state.is_failed() and state.name == "QualityAlarm"
        assert "33% of the run's outputs failed quality checks (limit 10%)" in state.message
        assert len(received) == 1
        assert received[0]["subject"] == "Lightbox quality alarm: acme-home" and "THUMB" not in received[0]["subject"]
        assert "3 outputs failed quality checks (33% of the run's outputs)" in received[0]["text"]
        live = sorted(p.parent.name for p in (out / "acme-home").glob("*/amazon_main.jpg"))
        assert live == ["GOOD-0", "GOOD-1"]  # what passed is published; the thumbnail went to review
        review = list((out / "acme-home" / "_review").glob("*/THUMB-1/*.jpg"))
        assert len(review) == 3
        summary = json.loads(next((out / "acme-home" / "_runs").glob("*/summary.json")).read_text())
        assert summary["alarm"] is True and summary["alert"] == "sent" and summary["consistency"]["score"] is not None


def test_a_catalog_that_cannot_be_read_is_reported_and_named(tmp_path):
    """A deployment run whose catalog vanished (or is not a catalog) ends 'InvalidCatalog' with a report."""
    gone = tmp_path / "gone.csv"
    state = catalog_run(str(gone), brand=ACME, out=str(tmp_path / "out"), return_state=True)
    assert state.is_failed() and state.name == "InvalidCatalog" and "gone.csv" in state.message
    summary = json.loads(next((tmp_path / "out" / "acme-home" / "_runs").glob("*/summary.json")).read_text())
    assert "gone.csv" in summary["stopped"] and summary["ingested"] == 0
