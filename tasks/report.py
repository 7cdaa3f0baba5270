"""Report task: catalog checks (consistency, review gallery), Prefect artifacts (summary table,
quarantine table, markdown report, gallery link), the summary JSON, and the quality alarm's
notification through a Prefect notification block."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from lightbox.records import Output
from lightbox.report import RunSummary
from lightbox.run import Run
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
def report_run(outputs: list[Output], spec: BrandSpec, run: Run, *, deliveries: list[Delivery] | None = None,
               webhooks: WebhookConfig | None = None) -> RunSummary:
    """The catalog checks, the summary (and the run's end told to webhook subscribers), the alarm's alert,
    the summary files, the staging swept, and the run's artifacts."""
    store = Store(run.out_uri)
    summary = run.checked_summary(outputs, store)
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
    run.finish(store, summary)
    create_table_artifact(key=artifact_key(spec.name, "run-summary"), table=summary.table(),
                          description=f"Catalog run {run.run_id}: counts and throughput")
    create_table_artifact(
        key=artifact_key(spec.name, "quarantine"),
        table=[q.model_dump() for q in summary.quarantine + summary.skipped_rows] or [{"row": "", "sku": "", "reason": "none"}],
        description="Rows not rendered, with the reason",
    )
    create_markdown_artifact(key=artifact_key(spec.name, "run-report"), markdown=summary.markdown(),
                             description=f"Catalog run {run.run_id}")
    create_link_artifact(key=artifact_key(spec.name, "review"), link=browser_link(summary.review_uri or ""),
                         link_text=f"Review gallery: {summary.to_review} to review", description="Outputs the gate failed or warned about")
    logger.info(
        "run %s: %d ingested, %d invalid, %d generated, %d failed, %d published (%.2f images/s), consistency %s",
        run.run_id, summary.ingested, summary.invalid, summary.generated, summary.failed, summary.published,
        summary.images_per_s, (summary.consistency or {}).get("score"),
    )
    return summary


@task(name="report-stopped", retries=len(RETRY_DELAYS), retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=retry_transient)
def report_stopped(run: Run, reason: str) -> RunSummary:
    """The report of a run refused before rendering (summary.json, quarantine.csv, the quarantine artifact)."""
    summary = run.stop(Store(run.out_uri), reason)
    create_table_artifact(key=artifact_key(run.brand, "quarantine"), table=[q.model_dump() for q in run.quarantine + run.skipped],
                          description=f"Rows not rendered: {reason}")
    create_markdown_artifact(key=artifact_key(run.brand, "run-report"), markdown=summary.markdown(),
                             description=f"Catalog run {run.run_id} (stopped)")
    return summary
