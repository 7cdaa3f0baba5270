"""What can be known about a run before any server starts or any pixel is rendered.

- :func:`check_catalog`: the catalog read (any supported layout) and validated against the brand spec;
- :func:`grouped_reasons`: the reasons of many rows grouped by cause, most frequent first
  ("15 rows: category 'shirts' is not in the brand spec");
- :func:`rejection`: the one-line reason a catalog is refused (too many invalid rows), else None;
- :func:`unchanged_run`: the summary of a run with nothing to render (no flow needed).

``lightbox validate`` and the start of ``lightbox run`` use these without Prefect; the flow's validate
task uses the same :func:`rejection`, so a deployment run refuses the same catalogs with the same words.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING

from lightbox.catalog.ingest import only_skus, read_catalog
from lightbox.catalog.validate import ValidationResult, local_file, validate_catalog
from lightbox.composition import WouldRender, compose
from lightbox.fetch_policy import FetchPolicy
from lightbox.plan import Plan
from lightbox.records import Chunk, Output, QuarantinedRow
from lightbox.report import RunSummary, write_summary
from lightbox.run import Run
from lightbox.specs.models import BrandSpec
from lightbox.storage import Store

if TYPE_CHECKING:
    from lightbox.state import RunState


def check_catalog(catalog: str, spec: BrandSpec, layout: str | None = None, skus: list[str] | None = None) -> ValidationResult:
    """Read and validate (only the rows of ``skus`` when given: a catalog-update event). Raises CatalogError
    when the catalog as a whole cannot be read."""
    frame = read_catalog(catalog, layout=None if layout == "auto" else layout)
    return validate_catalog(only_skus(frame, skus), spec, exists=local_file)


def check_models(spec: BrandSpec, diffusion: bool = True) -> list[str]:
    """Load the spec's segmentation models (and, with ``diffusion``, its AI pipelines) as the run does, so a model
    that cannot load fails ``validate`` and ``run`` before any server starts (LightboxError naming the model and where
    Lightbox looked). Returns what this run does without a model whose ``fallback`` allows it."""
    from lightbox.engines import prepare_ai
    from lightbox.imaging.segmentation import prepare_segmentation

    notes = [prepare_segmentation(spec)]
    if diffusion:
        notes.append(prepare_ai(spec))
    return [n for n in notes if n]


def rejection(result: ValidationResult, spec: BrandSpec) -> str | None:
    """Why the catalog is refused as a whole (its invalid share is over the spec's limit), else None."""
    limit = spec.quality.max_invalid_share
    if result.total and result.invalid_share > limit:
        return (f"{len(result.quarantined)} of {result.total} catalog rows are invalid ({result.invalid_share:.0%}), "
                f"over the brand spec's quality.max_invalid_share of {limit:.0%}")
    return None


_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_HOLE = "\x00"


def grouped_reasons(rows: list[QuarantinedRow], shown_values: int = 6) -> list[tuple[int, str]]:
    """(rows, reason) per cause, most frequent first. Reasons that differ only in their quoted values are
    one cause: "category '…' is not in the brand spec - 'tops' 5, 'shirts' 3" (values that are the same in
    every row of the cause stay in the text)."""
    groups: dict[str, list[list[str]]] = {}
    rows_of: dict[str, set[int]] = {}  # a row with two problems of one cause counts once under it
    for q in rows:
        for reason in q.causes or [q.reason]:  # a row with several reasons counts under each
            key = _QUOTED.sub(_HOLE, reason)
            groups.setdefault(key, []).append(_QUOTED.findall(reason))
            rows_of.setdefault(key, set()).add(q.row)
    out = []
    for key, values in groups.items():
        columns = list(zip(*values, strict=True))  # one key, one count of quoted values
        varying = [i for i, col in enumerate(columns) if len(set(col)) > 1]
        parts = key.split(_HOLE)
        text = parts[0] + "".join(("'…'" if i in varying else columns[i][0]) + part for i, part in enumerate(parts[1:]))
        if varying:
            counts = Counter(" ".join(v[i] for i in varying) for v in values).most_common()
            text += " - " + ", ".join(f"{v} {n}" for v, n in counts[:shown_values])
            if len(counts) > shown_values:
                text += f", ... ({len(counts) - shown_values} more)"
        out.append((len(rows_of[key]), text))
    return sorted(out, key=lambda nt: (-nt[0], nt[1]))


def reason_lines(rows: list[QuarantinedRow], top: int = 5) -> list[str]:
    """At most ``top`` lines "N rows: reason", then "... and N more reasons"."""
    groups = grouped_reasons(rows)
    lines = [f"{n} row{'s' if n != 1 else ''}: {reason}" for n, reason in groups[:top]]
    if len(groups) > top:
        lines.append(f"... and {len(groups) - top} more reasons (see quarantine.csv)")
    return lines


def unchanged_run(run: Run, brand_uri: str, spec: BrandSpec, store: Store, checked: ValidationResult, policy: FetchPolicy,
                  chunk_size: int, retire_missing: bool = False) -> RunSummary | None:
    """When every output of the planned products is unchanged (fingerprints from the photos' bytes match the
    manifest and the objects exist), the run's summary - written, with no flow run - else None. The run's own
    composition (:func:`lightbox.composition.compose`) with stages that only compare fingerprints: it stops at
    the first output that would render. Only for studio specs (an AI engine is identified once its model loads),
    only once the run state knows the brand (a first run imports the previous state under the lock), and
    only when no earlier run left staging behind (the flow run sweeps it under the lock)."""
    from lightbox.engines import uses_ai
    from lightbox.publish import leftovers
    from lightbox.state import RunState, state_exists

    if uses_ai(spec) or not state_exists(store):  # no state yet: the flow run creates it (under the brand lock)
        return None
    state = RunState.of(store)
    if not state.knows(spec.name) or leftovers(store, spec.name):
        return None
    try:
        return compose(run, FingerprintsOnly(brand_uri, spec, store, state, checked, policy, chunk_size, retire_missing))
    except WouldRender:
        return None


class FingerprintsOnly:
    """The run's stages for a run with nothing to render: generate compares fingerprints and raises
    :class:`~lightbox.composition.WouldRender` at the first output that would render (or when a photo is to be
    retired: the flow does that under the brand lock); nothing is gated or published, the summary is written."""

    def __init__(self, brand_uri: str, spec: BrandSpec, store: Store, state: RunState, checked: ValidationResult,
                 policy: FetchPolicy, chunk_size: int, retire_missing: bool = False) -> None:
        self.brand_uri, self.spec, self.store, self.state = brand_uri, spec, store, state
        self.checked, self.policy, self.chunk_size, self.retire_missing = checked, policy, chunk_size, retire_missing
        self.run_id, self.catalog = "", ""

    def validate(self, run: Run) -> tuple[Run, str | None]:
        c = self.checked  # as the command line read and validated it
        self.run_id, self.catalog = run.run_id, run.catalog
        return run.validated(c.total, c.quarantined, c.warnings, c.skipped), rejection(c, self.spec)

    def stop(self, run: Run, reason: str) -> RunSummary | None:
        raise WouldRender(reason)  # the command line refuses such a catalog itself

    def plan(self, run: Run) -> Plan:
        from lightbox.catalog.ingest import to_products
        from lightbox.plan import plan_run

        skus = run.skus_requested
        known = {q.sku for q in self.checked.quarantined + self.checked.skipped}
        plan = plan_run(to_products(self.checked.valid), self.spec, self.state.entries(self.spec.name, skus),
                        self.chunk_size, only=skus, known=known, retire_missing=self.retire_missing)
        if plan.retire:
            raise WouldRender(f"{len(plan.retire)} photos to retire")
        return plan

    def generate(self, chunks: list[Chunk]) -> list[list[Output]]:
        from lightbox.engines import build_engines
        from lightbox.fetch import SourceFetcher
        from lightbox.generate import all_unchanged
        from lightbox.records import RunContext
        from lightbox.specs.loader import spec_channels

        ctx = RunContext(run_id=self.run_id, brand_uri=self.brand_uri, out_uri=self.store.root_uri,
                         fetch=self.policy.for_catalog(self.catalog))
        items = [item for chunk in chunks for item in chunk.items]
        outputs = all_unchanged(items, self.spec, spec_channels(self.spec), ctx, self.store,
                                build_engines(self.spec, None), SourceFetcher(ctx.fetch, ctx.run_id))
        if outputs is None:
            raise WouldRender("an output would render")
        return [outputs]

    def check(self, generated: list[list[Output]]) -> list[list[Output]]:
        return generated  # every output is unchanged: nothing to gate

    def publish(self, checked: list[list[Output]]) -> list[list[Output]]:
        return checked  # nothing to publish

    def collect(self, chunks: list[Chunk], generated: list[list[Output]], checked: list[list[Output]],
                published: list[list[Output]]) -> list[Output]:
        return [o for outputs in published for o in outputs]

    def retire(self, run: Run, plan: Plan) -> Run:
        return run  # nothing: a plan with photos to retire stopped this composition

    def report(self, run: Run, plan: Plan, outputs: list[Output]) -> RunSummary | None:
        summary = run.summary(outputs, self.store)
        write_summary(self.store, summary)
        return summary
