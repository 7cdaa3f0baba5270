"""The manifest: one JSON document per brand beside its outputs, keyed ``sku/channel``.

It records, per published image: sku, channel, uri, sha256, input fingerprint, qc status, engine,
seed, timings, the run that wrote it and when. Written atomically (temp + rename, or one PUT), re-read
and merged just before writing so a concurrent run's entries are not dropped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lightbox.config import lightbox_home
from lightbox.errors import StorageError
from lightbox.records import Output, Recorded
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
        "etag": o.etag,
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


def live_matches(store: Store, key: str, recorded: Recorded | None) -> bool:
    """Whether the live object is the one the manifest vouches for. Existence alone is not enough: a run
    killed mid-publish leaves objects the manifest does not describe. Same size (one HEAD), then on local
    disk the same SHA-256 (a read); on an object store the same ETag as recorded just after the write (any
    later write changes it), or, when none was recorded, the same SHA-256 (a GET)."""
    if recorded is None:
        return False
    stamp = store.stamp(key)
    if stamp is None or stamp[0] != recorded.bytes:
        return False
    if not store.local and recorded.etag and stamp[1]:
        return stamp[1] == recorded.etag
    return store.sha256(key) == recorded.sha256


def journal_key(brand: str, run_id: str, chunk: int | str) -> str:
    return f"{brand}/_runs/{run_id}/journal/{chunk}.json"


def spool_dir(store: Store, brand: str) -> Path:
    """Where this machine keeps journals the storage could not take: ``$LIGHTBOX_HOME/spool/<root>/<brand>``
    (the root as a hash, so two outputs never mix)."""
    root = hashlib.sha256(store.uri("").rstrip("/").encode()).hexdigest()[:16]  # absolute on local disk
    return lightbox_home() / "spool" / root / brand


def write_journal(store: Store, brand: str, run_id: str, chunk: int | str, outputs: list[Output]) -> None:
    """Record what a chunk made live the moment the chunk is published: a run that dies (or fails past its
    storage budget) before its manifest commit leaves these, and the next run of the brand merges them.
    When the storage itself is down past its budget the journal goes to this machine's spool instead, and
    the next run here uploads it (another machine's next run re-hashes what it finds, so nothing is
    trusted unchecked either way)."""
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    entries = {f"{o.sku}/{o.name}": entry_for(o, run_id, now) for o in outputs if o.published == "written"}
    if not entries:
        return
    body = json.dumps(entries).encode()
    try:
        store.write_atomic(journal_key(brand, run_id, chunk), body)
    except (StorageError, OSError) as e:
        spool = spool_dir(store, brand) / run_id
        spool.mkdir(parents=True, exist_ok=True)
        tmp = spool / f".{chunk}.json.tmp"
        tmp.write_bytes(body)
        os.replace(tmp, spool / f"{chunk}.json")
        log.error("%s: the journal of chunk %s could not be written (%s); kept %d entries in %s for the next run",
                  brand, chunk, type(e).__name__, len(entries), spool)


def _unspool(store: Store, brand: str, current_run: str) -> int:
    """Upload the journals this machine spooled while the storage was down; returns how many."""
    base, moved = spool_dir(store, brand), 0
    for path in sorted(base.glob("*/*.json")) if base.is_dir() else []:
        run_id = path.parent.name
        if run_id == current_run:
            continue
        store.write_atomic(journal_key(brand, run_id, path.stem), path.read_bytes())
        path.unlink()
        moved += 1
    return moved


def recover_journals(store: Store, brand: str, current_run: str) -> int:
    """Merge into the manifest the journals of earlier runs that never committed (killed, failed; spooled
    ones first uploaded): an entry is taken when its live object holds exactly the journal's bytes and the
    manifest does not already say so. Journals are removed once merged. Call it holding the brand lock.
    Returns entries merged."""
    _unspool(store, brand, current_run)
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
            if live and live_matches(store, live, Recorded.of(entry)):
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
