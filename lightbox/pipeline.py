"""The catalog run as a plain in-process loop, without an orchestrator: the stages of
:func:`lightbox.composition.compose`, run chunk after chunk in this process.

Used as the baseline in bench/ and by tests of the core; production runs go through
``flows/catalog_run.py``, which composes the same stages as Prefect tasks.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator

import pandas as pd

from lightbox.catalog.ingest import to_products
from lightbox.composition import compose
from lightbox.engines import build_engines, prepare_ai
from lightbox.errors import ValidationThresholdError
from lightbox.fetch_policy import FetchPolicy
from lightbox.generate import generate_chunk
from lightbox.imaging.segmentation import prepare_segmentation
from lightbox.plan import Plan, plan_run
from lightbox.preflight import check_catalog, rejection
from lightbox.publish import publish_chunk, retire
from lightbox.quality import check_chunk
from lightbox.records import Chunk, Output, RunContext
from lightbox.report import RunSummary, engine_note, retired_rows
from lightbox.run import Run
from lightbox.specs import BrandSpec, load_brand_spec, spec_channels
from lightbox.state import RunState
from lightbox.storage import Store


def run_plain(
    catalog: str, brand: str, out: str, chunk_size: int = 8, run_id: str | None = None,
    layout: str | None = None, fetch_policy: FetchPolicy | None = None, retire_missing: bool = False,
) -> RunSummary:
    """Render ``catalog`` for the brand spec ``brand`` into the output root ``out`` and publish what passes; the
    run's summary. A catalog over the spec's invalid-row limit raises :class:`ValidationThresholdError`.
    ``retire_missing``: take down the live images of products the catalog no longer has."""
    spec = load_brand_spec(brand)
    run = Run.start(spec, catalog, out, run_id=run_id or f"plain-{uuid.uuid4().hex[:8]}")
    ctx = RunContext(run_id=run.run_id, brand_uri=brand, out_uri=out, ai_fallback=prepare_ai(spec),
                     cutout_fallback=prepare_segmentation(spec), fetch=(fetch_policy or FetchPolicy()).for_catalog(catalog))
    return compose(run.noted(engine=engine_note(spec, ctx.ai_fallback)), InProcess(spec, ctx, chunk_size, layout, retire_missing))


class InProcess:
    """The stages in this process. Chunks are lazy: each is generated, checked and published before the next
    one is generated, so a failure leaves the earlier chunks published and recorded."""

    def __init__(self, spec: BrandSpec, ctx: RunContext, chunk_size: int, layout: str | None, retire_missing: bool = False) -> None:
        self.spec, self.ctx, self.chunk_size, self.layout, self.retire_missing = spec, ctx, chunk_size, layout, retire_missing
        self.channels = spec_channels(spec)
        self.store = Store(ctx.out_uri)
        self.engines = build_engines(spec, ctx.ai_fallback)
        self.valid = pd.DataFrame()
        self.known: set[str] = set()  # SKUs of rows quarantined or skipped: in the catalog, not rendered
        self._state: RunState | None = None  # opened once the catalog is accepted: a refused one writes no state

    def validate(self, run: Run) -> tuple[Run, str | None]:
        result = check_catalog(run.catalog, self.spec, self.layout)  # read and validated as `lightbox run` and the flow do
        self.valid = result.valid
        self.known = {q.sku for q in result.quarantined + result.skipped}
        return run.validated(result.total, result.quarantined, result.warnings, result.skipped), rejection(result, self.spec)

    def stop(self, run: Run, reason: str) -> RunSummary:
        raise ValidationThresholdError(reason)

    @property
    def state(self) -> RunState:
        if self._state is None:
            self._state = RunState.of(self.store)
        return self._state

    def plan(self, run: Run) -> Plan:
        self.state.ensure_brand(self.store, self.spec.name)
        return plan_run(to_products(self.valid), self.spec, self.state.entries(self.spec.name), self.chunk_size,
                        known=self.known, retire_missing=self.retire_missing)

    def generate(self, chunks: list[Chunk]) -> Iterator[list[Output]]:
        return (generate_chunk(c, self.spec, self.channels, self.ctx, self.store, self.engines) for c in chunks)

    def check(self, generated: Iterable[list[Output]]) -> Iterator[list[Output]]:
        return (check_chunk(outputs, self.spec, self.channels, self.store) for outputs in generated)

    def publish(self, checked: Iterable[list[Output]]) -> Iterator[list[Output]]:
        return (publish_chunk(outputs, self.store, self.state, self.spec.name, self.ctx.run_id) for outputs in checked)

    def collect(self, chunks: list[Chunk], generated: Iterable[list[Output]], checked: Iterable[list[Output]],
                published: Iterable[list[Output]]) -> list[Output]:
        return [o for outputs in published for o in outputs]

    def retire(self, run: Run, plan: Plan) -> Run:
        retired, failures = retire(plan.retire, self.store, self.state, self.spec.name, self.ctx.run_id)
        return run.noted(retired=retired_rows(retired), retire_failures=failures)

    def report(self, run: Run, plan: Plan, outputs: list[Output]) -> RunSummary:
        run = run.noted(manifest_uri=self.state.export(self.store, self.spec.name))
        summary = run.checked_summary(outputs, self.store)
        run.finish(self.store, summary)
        return summary
