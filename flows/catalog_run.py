"""catalog-run: ingest -> validate -> plan -> generate (mapped over chunks) -> quality-check -> publish -> report.

The order is the one composition of the stages (lightbox/composition.py); `AsTasks` runs each stage as Prefect tasks.
"""

from __future__ import annotations

import os
import time

from prefect import flow, get_run_logger, unmapped
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import PrefectFutureList, as_completed
from prefect.context import FlowRunContext
from prefect.runtime import flow_run
from prefect.states import Failed, State

from lightbox import progress
from lightbox.engines import uses_ai
from lightbox.composition import compose
from lightbox.errors import CatalogError, LightboxError
from lightbox.generate import failed_item
from lightbox.lock import BrandLock, describe
from lightbox.plan import Plan
from lightbox.publish import live_before_failure
from lightbox.state import RunState, StateError
from lightbox.storage import Store, parse_output_root
from lightbox.fetch_policy import FetchPolicy, load_fetch_policy
from lightbox.webhooks import Delivery, WebhookConfig, load_webhooks
from lightbox.records import Chunk, Output, RunContext, Validated
from lightbox.report import RunSummary, engine_note
from lightbox.run import Run, new_run_id
from lightbox.specs import BrandSpec, spec_channels
from flows import cluster
from flows.review import operator_review
from tasks.report import artifact_key, report_run, report_stopped
from tasks.stages import (
    generate_chunk,
    export_manifest,
    ingest_catalog,
    invalidate_cdn,
    load_spec,
    notify_published,
    plan_run,
    prepare_cutout,
    prepare_engine,
    publish_chunk,
    quality_check_chunk,
    retire_photos,
    sweep_stale,
    validate_catalog,
)

DEFAULT_WORKERS = 4
QUALITY_ALARM = "QualityAlarm"  # final state name when the failed share exceeds quality.max_failed_share
INVALID_CATALOG = "InvalidCatalog"  # final state name when the catalog is refused before rendering


@flow(name="catalog-run", task_runner=cluster.task_runner(os.environ.get("LIGHTBOX_CLUSTER"), DEFAULT_WORKERS), log_prints=False)
def catalog_run(
    catalog: str,
    brand: str = "brand_specs/acme-home.yaml",
    out: str = "out",
    chunk_size: int = 8,
    layout: str | None = None,
    fetch_policy: str | None = None,
    skus: list[str] | None = None,
    webhooks: str | None = None,
    local_files: list[str] | None = None,
    checked: str | None = None,
    retire_missing: bool = False,
) -> RunSummary | State:
    """Render a catalog for one brand spec and publish what passes.

    catalog: catalog URI (CSV, TSV, JSON Lines, Parquet or XML; local path, file:// or s3://)
    brand: brand spec YAML
    out: output root (a local path, file://PATH or s3://BUCKET[/PREFIX]; anything else fails the run at once)
    chunk_size: products per generate task
    layout: lightbox, shopify, woocommerce or google-merchant (default: detected from the header)
    fetch_policy: fetch policy YAML for source images (default: $LIGHTBOX_FETCH_POLICY, else https + s3)
    skus: only these SKUs (a catalog-update event); unknown ones are reported, the rest processed
    webhooks: webhook subscribers YAML (default: $LIGHTBOX_WEBHOOKS, else none)
    local_files: for catalogs from outside (the job API): local photos only inside these folders, none when
        empty (default None: a local catalog may name local files, as on the command line)
    checked: the catalog as the caller already read and validated it (``lightbox run`` hands over its preflight's
        result: validated.json in the run's folder under ``out``); the run takes that run id and skips ingest and
        validate (default None: the flow reads and validates the catalog)
    retire_missing: take down the live images of products the catalog no longer has at all (a product deleted
        from the shop; with ``skus``, those of the requested SKUs); default False: they stay live and the report
        names them.

    Tasks run on a thread pool, or on a Dask cluster named by ``LIGHTBOX_CLUSTER`` (``local:N`` or
    ``tcp://HOST:8786``: flows/cluster.py); GPU work goes to workers declaring a ``GPU`` resource.

    Runs of one brand take turns (a lease in the output storage, ``<brand>/_lock/``: lightbox/lock.py),
    so two triggers for the same catalog never write the same outputs or the manifest at once - across
    processes, machines and Prefect servers; a run that dies frees its brand when its lease runs out
    (``LIGHTBOX_LOCK_TTL_S``, default 120 s).

    Ends Completed with the RunSummary; Failed named "InvalidCatalog" when more rows are invalid than the
    spec's quality.max_invalid_share (summary.json and quarantine.csv are written, nothing is rendered);
    Failed named "QualityAlarm" when more rendered outputs failed quality checks than the spec's
    quality.max_failed_share (the report, review gallery and manifest are written first, and the spec's
    alert block is notified); Failed when more outputs could not be rendered than that share, or a
    chunk failed after its retries (after the manifest and report are written).
    """
    started = time.time()
    out = parse_output_root(out, "parameter out")  # a deployment's or an event's value: refused before any work
    spec = load_spec(brand)
    hooks = load_webhooks(webhooks or os.environ.get("LIGHTBOX_WEBHOOKS"))
    policy = load_fetch_policy(fetch_policy or os.environ.get("LIGHTBOX_FETCH_POLICY")).for_catalog(catalog, local_files)
    logger = get_run_logger()
    handed = Run.handed_over(Store(out), spec.name, checked) if checked else None
    lock = BrandLock(Store(out), spec.name, owner=str(flow_run.get_id() or "local"))
    with lock.held(on_wait=lambda h: logger.warning("waiting for the brand lock of %s, held by %s", spec.name, describe(h))):
        flow_run_id = str(flow_run.get_id()) if flow_run.get_id() else None
        run_id = handed.run_id if handed else new_run_id(flow_run_id or "local")
        run = Run.start(spec, catalog, out, run_id=run_id, skus=skus, clock=lambda: started)
        return _run(run.noted(flow_run_id=flow_run_id), spec, brand, chunk_size, layout, policy, hooks, lock, handed,
                    retire_missing)


def _run(run: Run, spec: BrandSpec, brand: str, chunk_size: int, layout: str | None, policy: FetchPolicy,
         hooks: WebhookConfig, lock: BrandLock, handed: Validated | None, retire_missing: bool = False) -> RunSummary | State:
    ai_fallback = prepare_engine(spec)
    cutout_fallback = prepare_cutout(spec)
    ctx = RunContext(run_id=run.run_id, brand_uri=brand, out_uri=run.out_uri, ai_fallback=ai_fallback,
                     cutout_fallback=cutout_fallback, fetch=policy, lock_generation=lock.generation)
    sweep_stale(spec, ctx)  # earlier runs' staging and temporary files: none of those runs is alive (we hold the lock)
    stages = AsTasks(spec, ctx, chunk_size, layout, hooks, lock, handed, skus=run.skus_requested, retire_missing=retire_missing)
    return compose(run.noted(engine=engine_note(spec, ai_fallback)), stages)


class AsTasks:
    """The run's stages (lightbox/composition.py) as Prefect tasks: the chunk stages mapped over the chunks,
    futures handed from stage to stage, so chunks overlap on the task runner."""

    def __init__(self, spec: BrandSpec, ctx: RunContext, chunk_size: int, layout: str | None, hooks: WebhookConfig,
                 lock: BrandLock, handed: Validated | None, skus: list[str] | None, retire_missing: bool = False) -> None:
        self.spec, self.ctx, self.chunk_size, self.layout, self.retire_missing = spec, ctx, chunk_size, layout, retire_missing
        self.hooks, self.lock, self.handed, self.skus = hooks, lock, handed, skus
        self.validated: Validated | None = handed
        self.unreadable = False
        self.ran_on = ""
        self.notified: list = []  # webhook futures
        self.approved: list[Output] = []
        self.chunk_errors: list[str] = []
        self.indexes: list[int] = []

    # 1.-2. Ingest and validate
    def validate(self, run: Run) -> tuple[Run, str | None]:
        if self.handed is not None:  # done by the caller (lightbox run's preflight): not read and validated again
            get_run_logger().info("catalog as validated before the run: %d rows, %d invalid, %d skipped",
                                  self.handed.ingested, len(self.handed.quarantined), len(self.handed.skipped))
        else:
            ingested = ingest_catalog(run, self.layout, return_state=True)
            if ingested.is_failed() and isinstance(unreadable := ingested.result(raise_on_failure=False), CatalogError):
                self.unreadable = True  # reported like a refused catalog
                return run, str(unreadable)
            self.validated = validate_catalog(ingested.result(), self.spec, run)
        v = self.validated
        assert v is not None
        return run.validated(v.ingested, v.quarantined, v.warnings, v.skipped), v.rejected

    def stop(self, run: Run, reason: str) -> State:
        summary = report_stopped(run, reason)
        return Failed(name=INVALID_CATALOG, message=reason if self.unreadable else f"{reason}; quarantine report: {summary.quarantine_uri}")

    # 3. Plan
    def plan(self, run: Run) -> Plan:
        assert self.validated is not None
        return plan_run(self.validated, self.spec, self.ctx, self.chunk_size, self.skus, self.retire_missing)

    # 4. Generate (mapped over chunks; the task runner bounds concurrency; GPU work on GPU workers)
    def generate(self, chunks: list[Chunk]) -> PrefectFutureList:
        runner = FlowRunContext.get().task_runner
        spec, ctx = self.spec, self.ctx
        gpu_work = (uses_ai(spec) and ctx.ai_fallback is None) or bool(spec.segmentation_models() and ctx.cutout_fallback is None)
        with cluster.on_gpu(runner, gpu_work) as pinned:
            if pinned:
                get_run_logger().info("generate: pinned to Dask workers declaring a %s resource", cluster.GPU_RESOURCE)
            generated = generate_chunk.map(chunks, spec=unmapped(spec), ctx=unmapped(ctx))
        self.ran_on = cluster.describe(runner)  # after the first submission: a Dask runner connects to its scheduler then
        self.indexes = [c.index for c in chunks]
        return generated

    # 5. Quality check
    def check(self, generated: PrefectFutureList) -> PrefectFutureList:
        return quality_check_chunk.map(generated, spec=unmapped(self.spec), ctx=unmapped(self.ctx), chunk_index=self.indexes)

    # 6. Publish (then tell subscribers, per chunk, without holding publication up)
    def publish(self, checked: PrefectFutureList) -> PrefectFutureList:
        published = publish_chunk.map(checked, spec=unmapped(self.spec), ctx=unmapped(self.ctx), chunk_index=self.indexes)
        if self.hooks.subscribers:
            self.notified = list(notify_published.map(published, spec=unmapped(self.spec), ctx=unmapped(self.ctx),
                                                      webhooks=unmapped(self.hooks), chunk_index=self.indexes))
        return published

    def collect(self, chunks: list[Chunk], generated: PrefectFutureList, checked: PrefectFutureList,
                published: PrefectFutureList) -> list[Output]:
        outputs, self.chunk_errors = _collect(generated, checked, published, chunks, self.spec, self.ctx)
        reviewed = operator_review(outputs, self.spec, self.ctx)  # only when the spec asks for it and something is flagged
        self.approved = [o for o, was in zip(reviewed, outputs, strict=True) if was.state == "review" and o.state == "live"]
        if self.approved and self.hooks.subscribers:
            self.notified.append(notify_published.submit(self.approved, self.spec, self.ctx, self.hooks, chunk_index=-1))
        return reviewed

    def retire(self, run: Run, plan: Plan) -> Run:
        self.lock.ensure_held()  # a run whose lease ran out (it hung) must not write the export over the next run's
        retired, problems = retire_photos(plan.retire, self.spec, self.ctx) if plan.retire else ([], [])  # photos the catalog dropped
        return run.noted(retired=retired, retire_failures=problems)

    # 7. Report
    def report(self, run: Run, plan: Plan, outputs: list[Output]) -> RunSummary | State:
        spec, ctx = self.spec, self.ctx
        manifest_uri = export_manifest(self.approved, spec, ctx, self.skus)
        cdn = invalidate_cdn(outputs, spec, ctx, run.retired, return_state=True)
        run = run.noted(manifest_uri=manifest_uri, runner=self.ran_on,
                        cdn_invalidation=cdn.result() if cdn.is_completed() else f"failed: {cdn.message}")
        summary = report_run(outputs, spec, run, deliveries=_deliveries(self.notified), webhooks=self.hooks)
        if self.chunk_errors:
            return Failed(message=f"{len(self.chunk_errors)} of {len(plan.chunks)} chunks failed after retries; first: {self.chunk_errors[0]}")
        limit = spec.quality.max_failed_share
        if summary.render_failed_share > limit:
            first = next(f for f in summary.failures if f["stage"] == "generate")
            return Failed(message=(f"{summary.render_failed} outputs could not be rendered ({summary.render_failed_share:.0%}, "
                                   f"over the spec's quality.max_failed_share of {limit:.0%}); first: {first['sku']}: {first['reason']}"))
        if summary.alarm:  # a distinct final state operators can filter and automate on
            return Failed(
                name=QUALITY_ALARM,
                message=(f"{summary.failed_share:.0%} of the run's outputs failed quality checks (limit {limit:.0%}); "
                         f"published {summary.published}, to review {summary.to_review}: {summary.review_uri}"),
            )
        return summary


def _deliveries(notified) -> list[Delivery]:  # webhook futures
    out: list[Delivery] = []
    for fut in notified:
        fut.wait()
        if fut.state.is_completed():
            out.extend(fut.result())
    return out


def _first_failure(stages: dict) -> tuple[str, dict[str, float]]:  # stage name -> future
    """The earliest stage of a chunk that failed, and its error (later stages only say 'not ready'); and the
    storage outages the chunk waited out on the way: those its completed stages charged to its outputs, and
    those the failed stage's attempts waited (on its last error: tasks/_policy.py's StorageAttempt)."""
    retries, waited, last_done = 0, 0.0, None
    for name, fut in stages.items():
        if fut.state.is_completed():
            last_done = fut.state.result(raise_on_failure=False)
            continue
        if fut.state.is_failed():
            exc = fut.state.result(raise_on_failure=False)
            if isinstance(last_done, list):  # a stage's outputs carry the waits of the stages before it
                retries += sum(o.storage_retries for o in last_done)
                waited += sum(o.storage_waited_s for o in last_done)
            n, s = getattr(exc, "storage_waits", (0, 0.0))
            waits = {"storage_retries": retries + n, "storage_waited_s": round(waited + s, 2)} if retries + n else {}
            return (f"{name} failed: {type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else f"{name} failed"), waits
    return "did not complete", {}


def _collect(generated, checked, published, chunks: list[Chunk], spec, ctx: RunContext) -> tuple[list[Output], list[str]]:
    """Wait for the publish futures, updating the progress artifact and any local listener.

    A chunk that still fails after its retries does not stop the others: its products become failed
    outputs naming the error - except the outputs it made live before failing, which the run state recorded
    and which count as published - and the run fails after the manifest and report are written.
    """
    total = sum(len(c.items) for c in chunks)
    artifact_id = create_progress_artifact(0.0, key=artifact_key("catalog-run", "progress"), description="products done")
    progress.report(0, total)
    chunk_of = {fut.task_run_id: i for i, fut in enumerate(published)}
    done = 0
    outputs: list[Output] = []
    errors: list[str] = []
    for fut in as_completed(list(published)):
        i = chunk_of[fut.task_run_id]
        chunk = chunks[i]
        try:
            outputs.extend(fut.result())
        except Exception:  # recorded per product and re-raised after the report
            stages = {"generate": generated[i], "quality-check": checked[i], "publish": published[i]}
            why, waits = _first_failure(stages)
            reason = f"chunk {chunk.index}: {why}"
            errors.append(reason)
            failed = [o for item in chunk.items for o in failed_item(item, spec, spec_channels(spec), ctx, reason)]
            if failed:  # what the chunk waited out before it failed is counted in the run's report
                failed[0] = failed[0].charged(waits)
            try:
                entries = RunState.of(Store(ctx.out_uri)).entries(spec.name, skus={o.sku for o in failed})
            except (StateError, LightboxError) as e:  # the state is what failed: the outputs stay failed, the report says why
                get_run_logger().warning("chunk %d: what went live before it failed is unknown: %s", chunk.index, e)
                entries = {}
            outputs.extend(live_before_failure(failed, entries, ctx.run_id))
        done += len(chunk.items)
        update_progress_artifact(artifact_id, 100.0 * done / total if total else 100.0)
        progress.report(done, total)
    return sorted(outputs, key=lambda o: (o.sku, o.channel)), errors
