"""catalog-run: ingest -> validate -> plan -> generate (mapped over chunks) -> quality-check -> publish -> report."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from prefect import flow, unmapped
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import as_completed
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from lightbox import progress
from lightbox.records import RunContext
from lightbox.report import RunSummary
from tasks.report import artifact_key, report_run
from tasks.stages import (
    commit,
    generate_chunk,
    ingest_catalog,
    load_spec,
    plan_run,
    publish_chunk,
    quality_check_chunk,
    validate_catalog,
)

DEFAULT_WORKERS = 4


def new_run_id() -> str:
    rid = flow_run.get_id() or "local"
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{str(rid)[:8]}"


@flow(name="catalog-run", task_runner=ThreadPoolTaskRunner(max_workers=DEFAULT_WORKERS), log_prints=False)
def catalog_run(
    catalog: str,
    brand: str = "brand_specs/acme-home.yaml",
    out: str = "out",
    chunk_size: int = 8,
) -> RunSummary:
    """Render a catalog for one brand spec and publish what passes.

    catalog: catalog URI (CSV, JSON Lines or Parquet; local path, file:// or s3://)
    brand: brand spec YAML
    out: output root (local directory or s3://bucket/prefix)
    chunk_size: products per generate task
    """
    started = time.perf_counter()
    spec = load_spec(brand)
    ctx = RunContext(run_id=new_run_id(), brand_uri=brand, out_uri=out, spec_digest=str(spec.version))

    # 1. Ingest
    catalog_ref = ingest_catalog(catalog, spec, ctx)
    # 2. Validate
    validated = validate_catalog(catalog_ref, spec, ctx)
    # 3. Plan
    plan = plan_run(validated, spec, ctx, chunk_size)
    indexes = [c.index for c in plan.chunks]
    # 4. Generate (mapped over chunks; the task runner bounds concurrency)
    generated = generate_chunk.map(plan.chunks, spec=unmapped(spec), ctx=unmapped(ctx))
    # 5. Quality check
    checked = quality_check_chunk.map(generated, spec=unmapped(spec), ctx=unmapped(ctx), chunk_index=indexes)
    # 6. Publish
    published = publish_chunk.map(checked, spec=unmapped(spec), ctx=unmapped(ctx), chunk_index=indexes)
    outputs = _collect(published, plan.products)
    manifest_uri = commit(outputs, spec, ctx)
    # 7. Report
    return report_run(
        outputs, spec, ctx, catalog=catalog, ingested=validated.ingested, quarantined=validated.quarantined,
        warnings=validated.warnings, skipped=plan.skipped, products=plan.products,
        wall_s=time.perf_counter() - started, manifest_uri=manifest_uri,
    )


def _collect(published, total: int) -> list:  # noqa: ANN001 - futures from .map
    """Wait for the publish futures, updating the progress artifact and any local listener."""
    artifact_id = create_progress_artifact(0.0, key=artifact_key("catalog-run", "progress"), description="products done")
    progress.report(0, total)
    done = 0
    outputs = []
    for fut in as_completed(list(published)):
        chunk_outputs = fut.result()
        outputs.extend(chunk_outputs)
        done += len({o.sku for o in chunk_outputs})  # every product yields one output per channel
        update_progress_artifact(artifact_id, 100.0 * done / total if total else 100.0)
        progress.report(done, total)
    return sorted(outputs, key=lambda o: (o.sku, o.channel))
