"""The catalog run as a plain in-process loop, stage by stage, without an orchestrator.

Used as the baseline in bench/ and by tests of the core; production runs go through
``flows/catalog_run.py``, which calls the same stage functions as Prefect tasks.
"""

from __future__ import annotations

import uuid

from lightbox.catalog.ingest import to_products
from lightbox.fetch_policy import FetchPolicy
from lightbox.engines import build_engines, prepare_ai
from lightbox.imaging.segmentation import prepare_segmentation
from lightbox.errors import ValidationThresholdError
from lightbox.generate import generate_chunk
from lightbox.plan import plan_run
from lightbox.preflight import check_catalog, rejection
from lightbox.publish import publish_chunk, retire
from lightbox.quality import check_chunk
from lightbox.records import RunContext
from lightbox.report import RunSummary, engine_note, retired_rows
from lightbox.run import Run
from lightbox.specs import load_brand_spec, spec_channels
from lightbox.state import RunState
from lightbox.storage import Store


def run_plain(
    catalog: str, brand: str, out: str, chunk_size: int = 8, run_id: str | None = None,
    layout: str | None = None, fetch_policy: FetchPolicy | None = None,
) -> RunSummary:
    spec = load_brand_spec(brand)
    run = Run.start(spec, catalog, out, run_id=run_id or f"plain-{uuid.uuid4().hex[:8]}")
    channels = spec_channels(spec)
    store = Store(out)
    ctx = RunContext(run_id=run.run_id, brand_uri=brand, out_uri=out, ai_fallback=prepare_ai(spec),
                     cutout_fallback=prepare_segmentation(spec), fetch=(fetch_policy or FetchPolicy()).for_catalog(catalog))
    run = run.noted(engine=engine_note(spec, ctx.ai_fallback))
    engines = build_engines(spec, ctx.ai_fallback)
    result = check_catalog(catalog, spec, layout)  # read and validated as `lightbox run` and the flow do
    refused = rejection(result, spec)
    if refused:
        raise ValidationThresholdError(refused)
    run = run.validated(result.total, result.quarantined, result.warnings, result.skipped)
    state = RunState.of(store)
    state.ensure_brand(store, spec.name)
    plan = plan_run(to_products(result.valid), spec, state.entries(spec.name), chunk_size)
    run = run.planned(plan)
    outputs = []
    for chunk in plan.chunks:
        generated = generate_chunk(chunk, spec, channels, ctx, store, engines)
        checked = check_chunk(generated, spec, channels, store)
        outputs.extend(publish_chunk(checked, store, state, spec.name, ctx.run_id))
    retired, retire_failures = retire(plan.retire, store, state, spec.name, ctx.run_id)
    run = run.noted(manifest_uri=state.export(store, spec.name), retired=retired_rows(retired), retire_failures=retire_failures)
    summary = run.checked_summary(outputs, store)
    run.finish(store, summary)
    return summary
