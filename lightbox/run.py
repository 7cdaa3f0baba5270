"""One catalog run's bookkeeping: its identity, its folder's files, its staging, what its stages reported, and
its summary. The flow, the plain loop (``lightbox/pipeline.py``) and the command line's shortcuts
(``lightbox/preflight.py``) all keep a run's books through a :class:`Run`; nothing else spells a run's id, its
folder or its counts.

A Run is a small, frozen record (no pixels, no store, no model): it travels between Prefect tasks as a
reference does. Each stage's result is taken in by a method that returns the updated Run
(:meth:`Run.validated`, :meth:`Run.planned`, :meth:`Run.noted`); at the end :meth:`Run.summary` counts the
outputs and :meth:`Run.finish` writes the summary files and sweeps the run's staging.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

import io
import re

import pandas as pd

from lightbox.errors import LightboxError
from lightbox.layout import BrandLayout
from lightbox.records import Output, QuarantinedRow, Validated
from lightbox.report import RunSummary, catalog_checks, cutout_summary, failures_of, write_summary
from lightbox.storage import Store

Clock = Callable[[], float]
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}")
HANDED_OVER = "validated.json"


def new_run_id(suffix: str | None = None, now: datetime | None = None) -> str:
    """A run id: UTC time, then 8 characters of ``suffix`` (the flow run's id) or random hex."""
    now = now or datetime.now(timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{(suffix or uuid.uuid4().hex)[:8]}"


class Run(BaseModel):
    """One run of a catalog for a brand, as its stages report it (see the module's docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    brand: str
    spec_version: int
    catalog: str
    out_uri: str
    started: float = Field(description="when the run started, in seconds of its clock (wall time is measured from it)")
    max_failed_share: float = Field(1.0, description="the spec's quality.max_failed_share: over it, the quality alarm")
    engine: str = Field("studio", description="which engines render this run (lightbox.report.engine_note)")
    # what the stages reported
    ingested: int = 0
    quarantine: list[QuarantinedRow] = Field(default_factory=list)
    warnings: list[QuarantinedRow] = Field(default_factory=list)
    skipped: list[QuarantinedRow] = Field(default_factory=list)
    products: int = 0
    skus_requested: list[str] | None = None
    unknown_skus: list[str] = Field(default_factory=list)
    not_in_catalog: list[str] = Field(default_factory=list)
    runner: str | None = None
    manifest_uri: str | None = None
    cdn_invalidation: str | None = None
    retired: list[dict[str, Any]] = Field(default_factory=list)
    retire_failures: list[str] = Field(default_factory=list)
    flow_run_id: str | None = None

    @classmethod
    def start(cls, spec: Any, catalog: str, out_uri: str, *, run_id: str | None = None, skus: list[str] | None = None,
              clock: Clock = time.time) -> Run:
        """A new run of ``catalog`` for ``spec`` (a BrandSpec) writing under ``out_uri``."""
        return cls(run_id=run_id or new_run_id(), brand=spec.name, spec_version=spec.version, catalog=catalog,
                   out_uri=out_uri, started=clock(), max_failed_share=spec.quality.max_failed_share, skus_requested=skus)

    # -- what the stages report ------------------------------------------------------------------------
    def noted(self, **changes: Any) -> Run:
        """This run with ``changes`` (field names of Run), validated."""
        return Run.model_validate({**self.model_dump(), **changes})

    def validated(self, ingested: int, quarantine: list[QuarantinedRow], warnings: list[QuarantinedRow],
                  skipped: list[QuarantinedRow]) -> Run:
        """The validate stage's counts: rows read, and those quarantined, warned about or skipped by design."""
        return self.noted(ingested=ingested, quarantine=quarantine, warnings=warnings, skipped=skipped)

    def planned(self, plan: Any) -> Run:  # lightbox.plan.Plan
        """The plan's counts: products planned, rows it skipped, requested SKUs the catalog does not have."""
        return self.noted(products=plan.products, skipped=[*self.skipped, *plan.skipped], unknown_skus=plan.unknown_skus,
                          not_in_catalog=plan.absent)

    # -- its folder --------------------------------------------------------------------------------------
    @property
    def layout(self) -> BrandLayout:
        return BrandLayout(self.brand)

    def key(self, name: str) -> str:
        """The key of one of the run's own files (``summary.json``, ``valid.parquet``...)."""
        return self.layout.run(self.run_id, name)

    @property
    def staging(self) -> str:
        return self.layout.staging(self.run_id)

    def write_frame(self, store: Store, name: str, frame: pd.DataFrame) -> str:
        """A table into the run's folder as Parquet (``catalog.parquet``, ``valid.parquet``); returns its URI."""
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        store.write_atomic(self.key(name), buf.getvalue())
        return store.uri(self.key(name))

    def keep_validated(self, store: Store, valid: pd.DataFrame, ingested: int, quarantined: list[QuarantinedRow],
                       warnings: list[QuarantinedRow], skipped: list[QuarantinedRow], rejected: str | None) -> Validated:
        """The validate stage's result kept in the run's folder (valid.parquet), as the record the next stages read."""
        return Validated(run_id=self.run_id, valid_uri=self.write_frame(store, "valid.parquet", valid), ingested=ingested,
                         quarantined=quarantined, warnings=warnings, skipped=skipped, rejected=rejected)

    def hand_over(self, store: Store, validated: Validated) -> str:
        """A catalog validated before the flow (``lightbox run``'s preflight) handed to it: ``validated.json`` in
        the run's folder, whose URI is the flow's ``checked`` parameter (the flow then reads and validates nothing
        again). Returns that URI."""
        store.write_atomic(self.key(HANDED_OVER), validated.model_dump_json().encode())
        return store.uri(self.key(HANDED_OVER))

    @staticmethod
    def handed_over(store: Store, brand: str, uri: str) -> Validated:
        """The validation a caller handed over at ``uri``: only a ``validated.json`` in one of the brand's run
        folders under this output root, whose valid rows are in that same folder, is taken (LightboxError
        otherwise, naming the parameter)."""
        layout = BrandLayout(brand)
        prefix = store.uri(layout.runs) + "/"
        run_id = uri.removeprefix(prefix).removesuffix("/" + HANDED_OVER)
        if not uri.startswith(prefix) or not _RUN_ID.fullmatch(run_id) or uri != store.uri(layout.run(run_id, HANDED_OVER)):
            raise LightboxError(f"parameter checked: {uri!r} is not a {HANDED_OVER} in a run folder of {brand} under {store.root_uri}")
        try:
            validated = Validated.model_validate_json(store.read(layout.run(run_id, HANDED_OVER)))
        except FileNotFoundError:
            raise LightboxError(f"parameter checked: {uri} does not exist") from None
        except ValueError as e:
            raise LightboxError(f"parameter checked: {uri} is not a validation record ({type(e).__name__})") from None
        if validated.run_id != run_id or validated.valid_uri != store.uri(layout.run(run_id, "valid.parquet")):
            raise LightboxError(f"parameter checked: {uri} names another run's files")
        return validated

    # -- the end -------------------------------------------------------------------------------------------
    def summary(self, outputs: list[Output], store: Store, *, consistency: dict[str, Any] | None = None,
                consistency_previous: float | None = None, review_uri: str | None = None, stopped: str | None = None,
                clock: Clock = time.time) -> RunSummary:
        """The run's counts. Two failure causes are kept apart: outputs that could not be rendered (their share is
        ``render_failed_share``) and rendered outputs that failed quality checks (``failed_share``, which alone
        raises the quality alarm)."""
        wall_s = max(clock() - self.started, 0.0)
        generated = sum(o.made for o in outputs)
        unchanged = sum(o.state == "unchanged" for o in outputs)
        render_failed = sum(o.state == "failed" for o in outputs)
        qc_failed = sum(o.qc == "failed" for o in outputs)
        attempted = generated + render_failed
        live = [o for o in outputs if o.live]  # written, or re-rendered to the bytes already live: both are this run's
        checked = generated + unchanged
        failed_share = round(qc_failed / checked, 4) if checked else 0.0
        return RunSummary(
            run_id=self.run_id, brand=self.brand, spec_version=self.spec_version, catalog=self.catalog, out=store.root_uri,
            ingested=self.ingested, invalid=len(self.quarantine), skipped=len(self.skipped), products=self.products,
            generated=generated, unchanged=unchanged, passed=sum(o.qc in ("passed", "warned") for o in outputs),
            failed=render_failed + qc_failed, published=len(live), render_failed=render_failed, qc_failed=qc_failed,
            warned=sum(o.qc == "warned" for o in outputs),
            render_failed_share=round(render_failed / attempted, 4) if attempted else 0.0, stopped=stopped,
            to_review=sum(o.state == "review" for o in outputs), wall_s=round(wall_s, 2),
            images_per_s=round(generated / wall_s, 3) if wall_s > 0 else 0.0,
            invalid_share=round(len(self.quarantine) / self.ingested, 4) if self.ingested else 0.0,
            failed_share=failed_share, alarm=failed_share > self.max_failed_share,
            consistency=consistency, consistency_previous=consistency_previous, review_uri=review_uri,
            manifest_uri=self.manifest_uri or store.uri(self.layout.exports[1]), engine=self.engine,
            summary_uri=store.uri(self.key("summary.json")),
            quarantine=self.quarantine, skipped_rows=self.skipped, warnings=self.warnings, failures=failures_of(outputs),
            already_live=sum(o.state == "already_live" for o in live),
            published_images=[{"sku": o.sku, "channel": o.name, "uri": o.uri, "sha256": o.sha256, "qc": o.qc} for o in live],
            cutouts=cutout_summary(outputs),
            storage_retries=sum(o.storage_retries for o in outputs) + store.outage_retries,
            storage_waited_s=round(sum(o.storage_waited_s for o in outputs) + store.outage_waited_s, 1),
            storage_waited_outputs=sum(o.storage_retries > 0 for o in outputs),
            flow_run_id=self.flow_run_id, runner=self.runner, skus_requested=self.skus_requested,
            unknown_skus=self.unknown_skus, not_in_catalog=self.not_in_catalog, cdn_invalidation=self.cdn_invalidation, retired=self.retired,
            retire_failures=self.retire_failures,
        )

    def checked_summary(self, outputs: list[Output], store: Store, clock: Clock = time.time) -> RunSummary:
        """:meth:`summary` after the catalog checks (consistency of the live catalog, this run's review gallery)."""
        consistency, previous, review_uri = catalog_checks(store, self.brand, self.run_id, outputs)
        return self.summary(outputs, store, consistency=consistency, consistency_previous=previous, review_uri=review_uri,
                            clock=clock)

    def finish(self, store: Store, summary: RunSummary) -> str:
        """Write the run's summary files (summary.json, quarantine.csv, latest-run.json) and sweep its staging;
        returns the summary's URI."""
        uri = write_summary(store, summary)
        store.delete_prefix(self.staging)
        return uri

    def stop(self, store: Store, reason: str, clock: Clock = time.time) -> RunSummary:
        """The report of a run that stopped before rendering (an unreadable or refused catalog): summary.json,
        quarantine.csv, latest-run.json. Nothing else is written and the run state is not touched."""
        summary = self.summary([], store, stopped=reason, clock=clock)
        write_summary(store, summary)
        return summary
