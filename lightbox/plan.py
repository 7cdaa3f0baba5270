"""Plan stage: which products render, in what order, in which chunks, with which seed."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from lightbox.records import Chunk, Product, QuarantinedRow, Recorded, WorkItem, seed_for
from lightbox.specs.models import BrandSpec

log = logging.getLogger(__name__)

HERO_REASON = "hero: traditional photography"
# a flow run keeps to a few hundred task runs (generate, quality-check, publish per chunk): past ~1,000 task
# runs per flow run the Prefect server was measured to lose records (../shared/PREFECT_NOTES.md)
MAX_CHUNKS = 120


@dataclass
class Plan:
    chunks: list[Chunk]
    skipped: list[QuarantinedRow]
    unknown_skus: list[str] = field(default_factory=list)

    @property
    def products(self) -> int:
        return sum(len(c.items) for c in self.chunks)


def plan_run(
    products: list[Product], spec: BrandSpec, manifest: dict[str, dict[str, Any]], chunk_size: int,
    only: list[str] | None = None, known: set[str] | None = None, max_chunks: int = MAX_CHUNKS,
) -> Plan:
    """Hero products are skipped; the rest go highest priority first, then by SKU, in chunks of
    ``chunk_size`` - larger when that would make more than ``max_chunks`` chunks (a big catalog gets bigger
    chunks, not thousands of task runs).

    ``only``: limit the run to these SKUs (a catalog-update event). SKUs in ``only`` that are neither
    products nor in ``known`` (quarantined or skipped rows) are returned as ``unknown_skus``.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    unknown: list[str] = []
    if only is not None:
        wanted = set(only)
        unknown = sorted(wanted - {p.sku for p in products} - (known or set()))
        products = [p for p in products if p.sku in wanted]
    skipped = [QuarantinedRow(row=p.row, sku=p.sku, reason=HERO_REASON) for p in products if p.hero]
    todo = sorted((p for p in products if not p.hero), key=lambda p: (-p.priority, p.sku))
    previous: dict[str, dict[str, str]] = {}
    recorded: dict[str, dict[str, Recorded]] = {}
    for key, entry in manifest.items():  # "sku/output-name" -> entry
        sku, _, name = key.partition("/")
        if entry.get("fingerprint"):
            previous.setdefault(sku, {})[name] = entry["fingerprint"]
            if (rec := Recorded.of(entry)) is not None:
                recorded.setdefault(sku, {})[name] = rec
    items = [WorkItem(product=p, seed=seed_for(p.sku, 0, spec.version), previous=previous.get(p.sku, {}),
                      recorded=recorded.get(p.sku, {})) for p in todo]
    if len(items) > chunk_size * max_chunks:
        wanted = chunk_size
        chunk_size = -(-len(items) // max_chunks)
        log.info("%d products: chunks of %d instead of %d, to stay within %d chunks", len(items), chunk_size, wanted, max_chunks)
    chunks = [Chunk(index=i // chunk_size, items=items[i : i + chunk_size]) for i in range(0, len(items), chunk_size)]
    log.info("planned %d products in %d chunks of <= %d; %d heroes skipped", len(items), len(chunks), chunk_size, len(skipped))
    return Plan(chunks=chunks, skipped=skipped, unknown_skus=unknown)
