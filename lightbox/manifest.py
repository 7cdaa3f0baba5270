"""The manifest: one JSON document per brand beside its outputs, keyed ``sku/channel``.

It records, per published image: sku, channel, uri, sha256, input fingerprint, qc status, engine,
seed, timings, the run that wrote it and when. Written atomically (temp + rename, or one PUT), re-read
and merged just before writing so a concurrent run's entries are not dropped.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

from lightbox.records import Output
from lightbox.storage import Store

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
# kept per image for catalog-level checks (consistency, near-duplicates) across runs
SUMMARY_METRICS = ("fill_longest", "border_mean", "clipped", "phash", "sharpness", "fidelity", "upscale")


def manifest_key(brand: str) -> str:
    return f"{brand}/manifest.json"


def load_manifest(store: Store, brand: str) -> dict[str, dict[str, Any]]:
    try:
        doc = json.loads(store.read(manifest_key(brand)))
    except FileNotFoundError:
        return {}
    return doc.get("entries", {})


def entry_for(o: Output, run_id: str, now: str) -> dict[str, Any]:
    return {
        "sku": o.sku,
        "channel": o.channel,
        "category": o.category,
        "variant": o.variant,
        "uri": o.uri,
        "sha256": o.sha256,
        "bytes": o.bytes,
        "width": o.width,
        "height": o.height,
        "fingerprint": o.fingerprint,
        "qc": o.qc,
        "qc_reasons": o.qc_reasons,
        "engine": o.engine,
        "engine_version": o.engine_version,
        "seed": o.seed,
        "alt_text": o.alt_text,
        "metrics": {k: o.metrics[k] for k in SUMMARY_METRICS if k in o.metrics},
        "ai_generated": o.ai_generated,
        "generation": o.generation,
        "cutout": {"method": o.metrics["cutout_method"], "reason": o.metrics.get("cutout_reason", "")}
        if "cutout_method" in o.metrics else None,
        "timings_ms": o.timings_ms,
        "run_id": run_id,
        "published_at": now,
    }


def journal_key(brand: str, run_id: str, chunk: int | str) -> str:
    return f"{brand}/_runs/{run_id}/journal/{chunk}.json"


def write_journal(store: Store, brand: str, run_id: str, chunk: int | str, outputs: list[Output]) -> None:
    """Record what a chunk made live the moment the chunk is published: a run that dies (or fails past its
    storage budget) before its manifest commit leaves these, and the next run of the brand merges them."""
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    entries = {f"{o.sku}/{o.name}": entry_for(o, run_id, now) for o in outputs if o.published == "written"}
    if entries:
        store.write_atomic(journal_key(brand, run_id, chunk), json.dumps(entries).encode())


def recover_journals(store: Store, brand: str, current_run: str) -> int:
    """Merge into the manifest the journals of earlier runs that never committed (killed, failed): an entry is
    taken when its live object holds exactly the journal's bytes (hash checked) and the manifest does not
    already say so. Journals are removed once merged. Call it holding the brand lock. Returns entries merged."""
    runs = [r for r in store.children(f"{brand}/_runs") if r != current_run]
    journals = [(r, k) for r in runs for k in store.list(f"{brand}/_runs/{r}/journal") if k.endswith(".json")]
    if not journals:
        return 0
    entries = load_manifest(store, brand)
    merged = 0
    for _, key in sorted(journals):
        try:
            recorded = json.loads(store.read(key))
        except (FileNotFoundError, ValueError):
            continue
        for name, entry in recorded.items():
            if entries.get(name, {}).get("sha256") == entry["sha256"]:
                continue
            live = store.key_of(entry["uri"]) if entry.get("uri") else None
            if live and store.size(live) == entry.get("bytes") and store.sha256(live) == entry["sha256"]:
                entries[name] = entry
                merged += 1
    if merged:
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        doc = {"version": MANIFEST_VERSION, "brand": brand, "updated_at": now, "entries": dict(sorted(entries.items()))}
        store.write_atomic(manifest_key(brand), json.dumps(doc, indent=1).encode())
    for _, key in journals:
        store.delete(key)
    log.info("%s: merged %d entries from the journals of %d uncommitted runs", brand, merged, len({r for r, _ in journals}))
    return merged


def commit_manifest(store: Store, brand: str, outputs: list[Output], run_id: str) -> dict[str, dict[str, Any]]:
    """Merge this run's published outputs into the manifest. Unchanged outputs keep their entries."""
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    entries = load_manifest(store, brand)
    changed = 0
    for o in outputs:
        if o.published == "written" or (o.published == "unchanged" and o.status == "rendered"):
            entries[f"{o.sku}/{o.name}"] = entry_for(o, run_id, now)
            changed += 1
    doc = {"version": MANIFEST_VERSION, "brand": brand, "updated_at": now, "entries": dict(sorted(entries.items()))}
    if changed or not store.exists(manifest_key(brand)):
        store.write_atomic(manifest_key(brand), json.dumps(doc, indent=1).encode())
    store.delete_prefix(f"{brand}/_runs/{run_id}/journal")  # committed: the journal has done its job
    log.info("manifest %s: %d entries, %d updated", store.uri(manifest_key(brand)), len(entries), changed)
    return entries
