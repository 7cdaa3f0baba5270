"""Report task: catalog checks (consistency, review gallery), Prefect artifacts (summary table,
quarantine table, markdown report, gallery link), the summary JSON, and the quality alarm's
notification through a Prefect notification block."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.runtime import flow_run
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from lightbox.layout import BrandLayout
from lightbox.preflight import write_stopped_run
from lightbox.records import Output, QuarantinedRow, RunContext
from lightbox.report import RunSummary, catalog_checks, engine_note, summarise, write_summary
from lightbox.specs import BrandSpec
from lightbox.storage import Store
from lightbox.webhooks import Delivery, Notifier, WebhookConfig, event
from tasks._policy import RETRY_DELAYS, retry_transient


def run_event(summary: RunSummary) -> dict:
    """The ``run.completed`` webhook: counts, where to look, and the quality verdict."""
    data = {k: getattr(summary, k) for k in ("run_id", "catalog", "products", "generated", "unchanged", "published",
                                             "to_review", "failed", "invalid", "alarm", "manifest_uri", "summary_uri",
                                             "review_uri", "unknown_skus", "flow_run_id")}
    data["state"] = "QualityAlarm" if summary.alarm else "Completed"
    return event("run.completed", summary.brand, summary.run_id, data)


def artifact_key(brand: str, what: str) -> str:
    """Artifact keys: lowercase letters, digits and dashes."""
    return "".join(c if c.isalnum() else "-" for c in f"{brand}-{what}".lower())


def browser_link(uri: str) -> str:
    return uri if "://" in uri else f"file://{uri}"


def send_alert(block_name: str, summary: RunSummary) -> str:
    """Tell the spec's notification block about the alarm; never raises (the report is written anyway)."""
    from prefect.blocks.core import Block

    try:
        block = Block.load(block_name)
        block.notify(
            body=(f"{summary.brand}: {summary.qc_failed} outputs failed quality checks ({summary.failed_share:.0%} of the run's outputs) "
                  f"in run {summary.run_id}; {summary.published} published. Review: {summary.review_uri}"),
            subject=f"Lightbox quality alarm: {summary.brand}",
        )
        return "sent"
    except Exception as e:  # a broken alert channel must not hide the alarm itself
        return f"failed: {type(e).__name__}: {e}"


@task(name="report", retries=len(RETRY_DELAYS), retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=retry_transient)
def report_run(
    outputs: list[Output], spec: BrandSpec, ctx: RunContext, *, catalog: str, ingested: int,
    quarantined: list[QuarantinedRow], warnings: list[QuarantinedRow], skipped: list[QuarantinedRow],
    products: int, wall_s: float, manifest_uri: str, skus: list[str] | None = None, unknown_skus: list[str] | None = None,
    deliveries: list[Delivery] | None = None, webhooks: WebhookConfig | None = None, cdn_invalidation: str | None = None,
    runner: str | None = None, retired: tuple[list[dict], list[str]] = ([], []),
) -> RunSummary:
    store = Store(ctx.out_uri)
    cons, previous, review_uri = catalog_checks(store, spec.name, ctx.run_id, outputs)
    summary = summarise(
        run_id=ctx.run_id, brand=spec.name, spec_version=spec.version, catalog=catalog, store=store,
        ingested=ingested, quarantine=quarantined, warnings=warnings, skipped=skipped, products=products,
        outputs=outputs, wall_s=wall_s, manifest_uri=manifest_uri, engine_note=engine_note(spec, ctx.ai_fallback),
        consistency=cons, consistency_previous=previous, review_uri=review_uri,
        max_failed_share=spec.quality.max_failed_share,
    )
    summary = summary.model_copy(update={
        "flow_run_id": str(flow_run.get_id()) if flow_run.get_id() else None, "skus_requested": skus,
        "unknown_skus": unknown_skus or [], "cdn_invalidation": cdn_invalidation, "runner": runner,
        "retired": retired[0], "retire_failures": retired[1],
    })
    deliveries = list(deliveries or [])
    if webhooks and webhooks.subscribers:  # the run's end, told before the report is written so failures are in it
        deliveries += Notifier(webhooks).deliver_all([run_event(summary)])
    summary.webhooks_sent = sum(d.ok for d in deliveries)
    summary.webhook_failures = [d.model_dump() for d in deliveries if not d.ok]
    logger = get_run_logger()
    if summary.alarm:
        logger.error("quality alarm: failed share %.1f%% is over the spec's %.1f%%",
                     100 * summary.failed_share, 100 * spec.quality.max_failed_share)
        if spec.quality.alert_block:
            summary.alert = send_alert(spec.quality.alert_block, summary)
            logger.warning("alert via %s: %s", spec.quality.alert_block, summary.alert)
    write_summary(store, summary)
    store.delete_prefix(BrandLayout(spec.name).staging(ctx.run_id))
    create_table_artifact(key=artifact_key(spec.name, "run-summary"), table=summary.table(),
                          description=f"Catalog run {ctx.run_id}: counts and throughput")
    create_table_artifact(
        key=artifact_key(spec.name, "quarantine"),
        table=[q.model_dump() for q in summary.quarantine + summary.skipped_rows] or [{"row": "", "sku": "", "reason": "none"}],
        description="Rows not rendered, with the reason",
    )
    create_markdown_artifact(key=artifact_key(spec.name, "run-report"), markdown=summary.markdown(),
                             description=f"Catalog run {ctx.run_id}")
    create_link_artifact(key=artifact_key(spec.name, "review"), link=browser_link(review_uri),
                         link_text=f"Review gallery: {summary.to_review} to review", description="Outputs the gate failed or warned about")
    logger.info(
        "run %s: %d ingested, %d invalid, %d generated, %d failed, %d published (%.2f images/s), consistency %s",
        ctx.run_id, summary.ingested, summary.invalid, summary.generated, summary.failed, summary.published,
        summary.images_per_s, (cons or {}).get("score"),
    )
    return summary


@task(name="report-stopped", retries=len(RETRY_DELAYS), retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=retry_transient)
def report_stopped(spec: BrandSpec, ctx: RunContext, *, catalog: str, ingested: int, quarantined: list[QuarantinedRow],
                   warnings: list[QuarantinedRow], skipped: list[QuarantinedRow], reason: str, wall_s: float) -> RunSummary:
    """The report of a run refused before rendering (summary.json, quarantine.csv, the quarantine artifact)."""
    summary = write_stopped_run(Store(ctx.out_uri), spec, ctx.run_id, catalog, ingested=ingested, quarantined=quarantined,
                                warnings=warnings, skipped=skipped, reason=reason, wall_s=wall_s)
    create_table_artifact(key=artifact_key(spec.name, "quarantine"), table=[q.model_dump() for q in quarantined + skipped],
                          description=f"Rows not rendered: {reason}")
    create_markdown_artifact(key=artifact_key(spec.name, "run-report"), markdown=summary.markdown(),
                             description=f"Catalog run {ctx.run_id} (stopped)")
    return summary
