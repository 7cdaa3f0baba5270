"""The catalog-run stages as Prefect tasks. Each calls one plain function of ``lightbox`` and passes
references (URIs, SKUs, small records) on; pixels and models never cross a task boundary."""

from __future__ import annotations

import io

import pandas as pd
from prefect import get_run_logger, task
from prefect.concurrency.sync import concurrency
from prefect.runtime import task_run

from lightbox.catalog.ingest import only_skus, read_catalog, to_products
from lightbox.catalog.validate import local_file
from lightbox.catalog.validate import validate_catalog as _validate
from lightbox.cdn import CdnConfig, invalidate
from lightbox.engines import build_engines, prepare_ai, uses_ai
from lightbox.generate import generate_chunk as _generate_chunk
from lightbox.generate import output_key
from lightbox.imaging.segmentation import prepare_segmentation
from lightbox.plan import Plan
from lightbox.preflight import reason_lines, rejection
from lightbox.plan import plan_run as _plan_run
from lightbox.publish import approve_output
from lightbox.publish import sweep_stale as _sweep_stale
from lightbox.publish import publish_chunk as _publish_chunk
from lightbox.publish import retire as _retire
from lightbox.quality import check_chunk
from lightbox.records import Chunk, Output, RunContext, Validated
from lightbox.report import retired_rows
from lightbox.run import Run
from lightbox.specs import BrandSpec, load_brand_spec, spec_channels
from lightbox.state import RunState
from lightbox.storage import Store
from lightbox.webhooks import Delivery, Notifier, WebhookConfig, product_events
from tasks._policy import RETRY_DELAYS, StorageAttempt, ensure_concurrency_limit, retry_transient

RETRIES = dict(retries=len(RETRY_DELAYS), retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=retry_transient)


def _attempt(store: Store) -> StorageAttempt:
    """This attempt of the running task (see :class:`StorageAttempt`)."""
    return StorageAttempt(store, str(task_run.get_id() or "local"))


@task(name="load-brand-spec", **RETRIES)
def load_spec(brand_uri: str) -> BrandSpec:
    spec = load_brand_spec(brand_uri)
    get_run_logger().info("brand spec %s v%d: channels %s", spec.name, spec.version, ", ".join(spec.channels))
    return spec


@task(name="prepare-engine")
def prepare_engine(spec: BrandSpec) -> str | None:
    """Load the AI pipelines once (fails the run at start when the model cannot load and the spec's
    fallback is 'fail'); make sure the GPU concurrency limit exists. Returns a fallback reason or None."""
    logger = get_run_logger()
    reason = prepare_ai(spec)
    if reason:
        logger.warning("AI engine unavailable: %s", reason)
    elif uses_ai(spec):
        ensure_concurrency_limit(spec.diffusion.concurrency_limit, spec.diffusion.concurrency_slots)
        logger.info("AI engine ready: %s", spec.diffusion.model)
    return reason


@task(name="prepare-cutout")
def prepare_cutout(spec: BrandSpec) -> str | None:
    """Load the spec's segmentation models once (fails the run at start, naming the model and where it
    looked, when one cannot load and its fallback is 'fail'). Returns a fallback reason or None."""
    logger = get_run_logger()
    reason = prepare_segmentation(spec)
    if reason:
        logger.warning("segmentation model unavailable: %s", reason)
    for cfg in spec.segmentation_models():
        if not reason:
            logger.info("segmentation model ready: %s", cfg.path)
    return reason


@task(name="sweep-stale", **RETRIES)
def sweep_stale(spec: BrandSpec, ctx: RunContext) -> dict[str, int]:
    """The brand's run state on first use (imports a v1 manifest or the last export), then the staging of
    earlier runs of this brand (killed ones never removed theirs) and stale temporary files; runs while this
    run holds the brand lock, so none of them is alive."""
    store = Store(ctx.out_uri)
    imported = RunState.of(store).ensure_brand(store, spec.name)
    swept = _sweep_stale(store, spec.name, ctx.run_id)
    logger = get_run_logger()
    if imported:
        logger.info("run state: imported %d entries of %s from its storage", imported, spec.name)
    if any(swept.values()):
        logger.info("swept the staging of %d earlier runs, %d stale temporary files", swept["staging"], swept["temp_files"])
    return {**swept, "imported": imported}


@task(name="ingest", **RETRIES)
def ingest_catalog(run: Run, layout: str | None = None) -> str:
    """Read the run's catalog (any supported export) into the run folder as a normalised Parquet file - only the
    rows of the SKUs it asks for (a catalog-update event); returns its URI."""
    frame = only_skus(read_catalog(run.catalog, layout=layout), run.skus_requested)
    uri = run.write_frame(Store(run.out_uri), "catalog.parquet", frame)
    notes = frame.attrs.get("notes") or []
    get_run_logger().info("ingested %d products from %s (%s layout; %d rows skipped or invalid there)",
                          len(frame), run.catalog, frame.attrs.get("layout", "lightbox"),
                          sum(n["kind"] != "warning" for n in notes))
    return uri


@task(name="validate", **RETRIES)
def validate_catalog(catalog_ref: str, spec: BrandSpec, run: Run) -> Validated:
    """pandera + Great Expectations. Above the spec's invalid-share threshold the result says why the
    catalog is refused (the flow writes the report, then stops)."""
    store = Store(run.out_uri)
    frame = pd.read_parquet(io.BytesIO(store.read(store.key_of(catalog_ref))))
    result = _validate(frame, spec, exists=local_file)
    logger = get_run_logger()
    for q in result.quarantined:
        logger.warning("quarantined row %d (%s): %s", q.row, q.sku, q.reason)
    for q in result.skipped:
        logger.info("skipped row %d (%s): %s", q.row, q.sku, q.reason)
    rejected = rejection(result, spec)
    if rejected:
        for line in reason_lines(result.quarantined):
            logger.error("invalid: %s", line)
    return run.keep_validated(store, result.valid, result.total, result.quarantined, result.warnings, result.skipped, rejected)


@task(name="plan", **RETRIES)
def plan_run(validated: Validated, spec: BrandSpec, ctx: RunContext, chunk_size: int, skus: list[str] | None = None,
             retire_missing: bool = False) -> Plan:
    store = Store(ctx.out_uri)
    frame = pd.read_parquet(io.BytesIO(store.read(store.key_of(validated.valid_uri))))
    known = {q.sku for q in validated.quarantined + validated.skipped}
    plan = _plan_run(to_products(frame), spec, RunState.of(store).entries(spec.name, skus), chunk_size, only=skus, known=known,
                     retire_missing=retire_missing)
    logger = get_run_logger()
    logger.info("%d products in %d chunks; %d skipped", plan.products, len(plan.chunks), len(plan.skipped))
    if plan.unknown_skus:
        logger.warning("%d requested SKUs are not in the catalog: %s", len(plan.unknown_skus), ", ".join(plan.unknown_skus))
    if plan.absent:
        logger.warning("%d products with live images are not in the catalog%s: %s", len(plan.absent),
                       " (retired)" if retire_missing else " (kept live; retire_missing takes them down)", ", ".join(plan.absent[:20]))
    return plan


@task(name="generate", task_run_name="generate-chunk-{chunk.index}", **RETRIES)
def generate_chunk(chunk: Chunk, spec: BrandSpec, ctx: RunContext) -> list[Output]:
    engines = build_engines(spec, ctx.ai_fallback)
    store = Store(ctx.out_uri)
    with _attempt(store) as attempt:
        if "diffusers" in engines:  # AI work holds a slot of the shared accelerator limit
            with concurrency(spec.diffusion.concurrency_limit, occupy=1, strict=True):
                outputs = _generate_chunk(chunk, spec, spec_channels(spec), ctx, store, engines)
        else:
            outputs = _generate_chunk(chunk, spec, spec_channels(spec), ctx, store, engines)
    outputs = attempt.charge(outputs)
    logger = get_run_logger()
    for o in outputs:
        if o.state == "failed":
            logger.warning("%s/%s failed: %s", o.sku, o.name, o.error)
    return outputs


@task(name="quality-check", task_run_name="quality-check-{chunk_index}", **RETRIES)
def quality_check_chunk(outputs: list[Output], spec: BrandSpec, ctx: RunContext, chunk_index: int) -> list[Output]:
    store = Store(ctx.out_uri)
    with _attempt(store) as attempt:
        checked = attempt.charge(check_chunk(outputs, spec, spec_channels(spec), store))
    logger = get_run_logger()
    for o in checked:
        if o.qc == "failed":
            logger.warning("%s/%s failed quality: %s", o.sku, o.name, "; ".join(o.qc_reasons))
    return checked


@task(name="publish", task_run_name="publish-{chunk_index}", **RETRIES)
def publish_chunk(outputs: list[Output], spec: BrandSpec, ctx: RunContext, chunk_index: int) -> list[Output]:
    """Publish the chunk and commit its rows to the run state (a state that cannot be written fails the
    chunk, which is retried: what went live is then found live and recorded)."""
    store = Store(ctx.out_uri)
    with _attempt(store) as attempt:
        published = _publish_chunk(outputs, store, RunState.of(store), spec.name, ctx.run_id, lock_generation=ctx.lock_generation)
    return attempt.charge(published)


@task(name="retire", **RETRIES)
def retire_photos(names: list[str], spec: BrandSpec, ctx: RunContext) -> tuple[list[dict], list[str]]:
    """Take down the live photos the catalog no longer has (deleted, then their run-state rows removed)."""
    store = Store(ctx.out_uri)
    retired, problems = _retire(names, store, RunState.of(store), spec.name, ctx.run_id, lock_generation=ctx.lock_generation)
    logger = get_run_logger()
    for line in problems:
        logger.warning("retire: %s", line)
    return retired_rows(retired), problems


@task(name="export-manifest", **RETRIES)
def export_manifest(approved: list[Output], spec: BrandSpec, ctx: RunContext, skus: list[str] | None = None) -> str:
    """Record operator-approved outputs (published after their chunk), then the consumers' export: the whole
    manifest (Parquet + JSON Lines) after a catalog run, this run's changed rows after a SKU-scoped one."""
    store = Store(ctx.out_uri)
    state = RunState.of(store)
    state.record(spec.name, approved, ctx.run_id)
    uri = state.write_changes(store, spec.name, ctx.run_id) if skus is not None else state.export(store, spec.name)
    get_run_logger().info("manifest export %s", uri)
    return uri


@task(name="notify", task_run_name="notify-{chunk_index}")
def notify_published(outputs: list[Output], spec: BrandSpec, ctx: RunContext, webhooks: WebhookConfig, chunk_index: int) -> list[Delivery]:
    """``image.published`` webhooks for the products this chunk wrote. Runs after publish, never raises
    for a receiver (its failures are returned for the report), so publication is never held up."""
    deliveries = Notifier(webhooks).deliver_all(product_events(outputs, spec.name, ctx.run_id))
    failed = [d for d in deliveries if not d.ok]
    if failed:
        get_run_logger().warning("%d of %d webhook deliveries failed; first: %s to %s: %s", len(failed),
                                 len(deliveries), failed[0].type, failed[0].subscriber, failed[0].error)
    return deliveries


@task(name="invalidate-cdn", **RETRIES)
def invalidate_cdn(outputs: list[Output], spec: BrandSpec, ctx: RunContext, retired: list[dict] | None = None) -> str | None:
    """One CloudFront invalidation for every object this run wrote or retired (when a distribution is configured)."""
    config = CdnConfig.from_env()
    if config is None:
        return None
    store = Store(ctx.out_uri)
    keys = [store.key_of(o.uri) for o in outputs if o.state == "live" and o.uri]
    keys += [store.key_of(r["uri"]) for r in retired or [] if r.get("uri")]
    inv = invalidate(keys, spec.name, ctx.run_id, config)
    if inv:
        get_run_logger().info("CloudFront %s: invalidation %s for %d objects", config.distribution_id, inv, len(keys))
    return inv


@task(name="approve-reviewed", **RETRIES)
def approve_reviewed(outputs: list[Output], approved: list[str], spec: BrandSpec, ctx: RunContext) -> list[Output]:
    """Publish the flagged outputs of the SKUs an operator approved; the rest stay in review."""
    store = Store(ctx.out_uri)
    channels = {ch.name: ch for ch in spec_channels(spec)}
    wanted = set(approved)
    done = [approve_output(o, store, output_key(spec, o.sku, channels[o.channel], o.variant, o.photo)) if o.sku in wanted else o
            for o in outputs]
    get_run_logger().info("operator approved %d flagged outputs of %d SKUs", sum(o.sku in wanted and o.state == "live"
                                                                               for o in done), len(wanted))
    return done
