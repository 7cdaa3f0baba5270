"""Report task: Prefect artifacts (summary table, quarantine table, markdown) and the summary JSON."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from lightbox.records import Output, QuarantinedRow
from lightbox.report import RunSummary, engine_note, summarise, write_summary
from lightbox.specs import BrandSpec
from lightbox.storage import Store
from lightbox.records import RunContext
from tasks._policy import RETRY_DELAYS, retry_transient


def artifact_key(brand: str, what: str) -> str:
    """Artifact keys: lowercase letters, digits and dashes."""
    return "".join(c if c.isalnum() else "-" for c in f"{brand}-{what}".lower())


@task(name="report", retries=len(RETRY_DELAYS), retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=retry_transient)
def report_run(
    outputs: list[Output], spec: BrandSpec, ctx: RunContext, *, catalog: str, ingested: int,
    quarantined: list[QuarantinedRow], warnings: list[QuarantinedRow], skipped: list[QuarantinedRow],
    products: int, wall_s: float, manifest_uri: str,
) -> RunSummary:
    store = Store(ctx.out_uri)
    summary = summarise(
        run_id=ctx.run_id, brand=spec.name, spec_version=spec.version, catalog=catalog, store=store,
        ingested=ingested, quarantine=quarantined, warnings=warnings, skipped=skipped, products=products,
        outputs=outputs, wall_s=wall_s, manifest_uri=manifest_uri, engine_note=engine_note(spec, ctx.ai_fallback),
    )
    write_summary(store, summary)
    store.delete_prefix(f"{spec.name}/_runs/{ctx.run_id}/staging")
    create_table_artifact(key=artifact_key(spec.name, "run-summary"), table=summary.table(),
                          description=f"Catalog run {ctx.run_id}: counts and throughput")
    create_table_artifact(
        key=artifact_key(spec.name, "quarantine"),
        table=[q.model_dump() for q in summary.quarantine + summary.skipped_rows] or [{"row": "", "sku": "", "reason": "none"}],
        description="Rows not rendered, with the reason",
    )
    create_markdown_artifact(key=artifact_key(spec.name, "run-report"), markdown=summary.markdown(),
                             description=f"Catalog run {ctx.run_id}")
    logger = get_run_logger()
    logger.info(
        "run %s: %d ingested, %d invalid, %d generated, %d failed, %d published (%.2f images/s)",
        ctx.run_id, summary.ingested, summary.invalid, summary.generated, summary.failed, summary.published,
        summary.images_per_s,
    )
    if summary.failed_share > spec.quality.max_failed_share:
        logger.warning("failed share %.1f%% is over the spec's %.1f%%", 100 * summary.failed_share, 100 * spec.quality.max_failed_share)
    return summary
