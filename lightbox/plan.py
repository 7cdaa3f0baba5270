"""Plan stage: which products render, in what order, in which chunks, with which seed."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from lightbox.records import Chunk, Product, QuarantinedRow, Recorded, WorkItem, seed_for
from lightbox.specs.loader import spec_channels
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
    retire: list[str] = field(default_factory=list)  # run-state names (sku/output) of photos the catalog dropped
    absent: list[str] = field(default_factory=list)  # SKUs live in the run state that the catalog has no row of

    @property
    def products(self) -> int:
        return len({item.product.sku for c in self.chunks for item in c.items})

    @property
    def photos(self) -> int:
        return sum(len(c.items) for c in self.chunks)


def photos_of(product: Product, spec: BrandSpec) -> int:
    """How many of the product's photos are rendered: all of them, up to the largest gallery of the spec's
    channels (each channel takes its own share, :meth:`BrandSpec.gallery_size`); 1 for a product with none
    (rendered from its data alone, or failed with the reason)."""
    most = max(spec.gallery_size(ch) for ch in spec_channels(spec))
    return max(1, min(len(product.images), most))


def retired(products: list[Product], spec: BrandSpec, manifest: dict[str, dict[str, Any]]) -> list[str]:
    """The run-state names of the live photos of ``products`` that the catalog no longer has: a photo
    position past the product's photos now (a photo removed, or a gallery cap lowered). Entries of products
    not in ``products`` and of channels the spec no longer lists are left alone."""
    caps = {ch.name: spec.gallery_size(ch) for ch in spec_channels(spec)}
    wanted = {p.sku: len(p.images) for p in products}
    out = []
    for key, entry in manifest.items():
        sku, photo, channel = entry.get("sku"), int(entry.get("photo") or 1), entry.get("channel")
        if photo == 1 or sku not in wanted or channel not in caps:
            continue
        if photo > min(wanted[sku], caps[channel]):
            out.append(key)
    return sorted(out)


def absent(products: list[Product], known: set[str], manifest: dict[str, dict[str, Any]]) -> list[str]:
    """The SKUs with live images that the catalog has no row of at all (a product deleted from the shop): not
    its products, nor ``known`` (rows quarantined or skipped this time - an invalid edit never takes a product
    down)."""
    have = {p.sku for p in products} | known
    return sorted({e.get("sku") or k.partition("/")[0] for k, e in manifest.items()} - have)


def _shared_groups(products: list[Product]) -> list[list[Product]]:
    """``products`` in order, those that share a photo (variants of one product) gathered into one group at the
    place of its first member, so one chunk fetches and cuts a shared photo once (up to a chunk's size)."""
    parent = list(range(len(products)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[str, int] = {}
    for i, p in enumerate(products):
        for ref in p.images:
            j = first.setdefault(ref, i)
            if j != i:
                parent[find(i)] = find(j)
    groups: dict[int, list[Product]] = {}
    for i, p in enumerate(products):
        groups.setdefault(find(i), []).append(p)
    return list(groups.values())  # dicts keep insertion order: the group of the earliest product first


def plan_run(
    products: list[Product], spec: BrandSpec, manifest: dict[str, dict[str, Any]], chunk_size: int,
    only: list[str] | None = None, known: set[str] | None = None, max_chunks: int = MAX_CHUNKS,
    retire_missing: bool = False,
) -> Plan:
    """Hero products are skipped; the rest go highest priority first, then by SKU, in chunks of
    ``chunk_size`` products - larger when that would make more than ``max_chunks`` chunks (a big catalog gets
    bigger chunks, not thousands of task runs). Each product becomes one work item per photo rendered
    (:func:`photos_of`); a product's photos, and products sharing a photo, stay in one chunk.

    ``only``: limit the run to these SKUs (a catalog-update event). SKUs in ``only`` that are neither
    products nor in ``known`` (quarantined or skipped rows) are returned as ``unknown_skus``.

    The products live in ``manifest`` that the catalog no longer has are named (``absent``; in a run limited to
    ``only``, those of its SKUs: ``manifest`` then holds their rows only); with ``retire_missing`` their images are
    retired too (else they stay live, and the run says so).
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
    if len(todo) > chunk_size * max_chunks:
        wanted = chunk_size
        chunk_size = -(-len(todo) // max_chunks)
        log.info("%d products: chunks of %d instead of %d, to stay within %d chunks", len(todo), chunk_size, wanted, max_chunks)
    chunks: list[Chunk] = []
    current: list[Product] = []
    for group in _shared_groups(todo):
        # a group larger than a chunk (a placeholder photo many rows share) is split: chunks keep their size
        for part in (group[i:i + chunk_size] for i in range(0, len(group), chunk_size)):
            if current and len(current) + len(part) > chunk_size:
                chunks.append(_chunk(len(chunks), current, spec, previous, recorded))
                current = []
            current.extend(part)
    if current:
        chunks.append(_chunk(len(chunks), current, spec, previous, recorded))
    gone = absent(products, known or set(), manifest)
    retire = retired(todo, spec, manifest)
    if retire_missing and gone:
        dropped = set(gone)
        retire = sorted({*retire, *(k for k, e in manifest.items() if (e.get("sku") or k.partition("/")[0]) in dropped)})
    plan = Plan(chunks=chunks, skipped=skipped, unknown_skus=unknown, retire=retire, absent=gone)
    log.info("planned %d products (%d photos) in %d chunks of <= %d; %d heroes skipped; %d photos to retire", plan.products,
             plan.photos, len(chunks), chunk_size, len(skipped), len(plan.retire))
    return plan


def _chunk(index: int, products: list[Product], spec: BrandSpec, previous: dict[str, dict[str, str]],
           recorded: dict[str, dict[str, Recorded]]) -> Chunk:
    return Chunk(index=index, items=[
        WorkItem(product=p, photo=k, seed=seed_for(p.sku, 0, spec.version), previous=previous.get(p.sku, {}),
                 recorded=recorded.get(p.sku, {}))
        for p in products for k in range(1, photos_of(p, spec) + 1)])
