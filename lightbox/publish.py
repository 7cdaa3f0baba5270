"""Publish stage: move QC-passed outputs from staging to the live layout, failed ones to review.

Idempotent: an object already holding the same bytes is not written again (checked by size, then by
hashing the live object on disk, or on an object store by the ETag the state recorded after the write).
Atomic: see :class:`lightbox.storage.Store`. Recorded: each chunk commits what it made live to the run state
(:mod:`lightbox.state`) before its task returns, failing part-way included.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from typing import Any

from lightbox.layout import BrandLayout
from lightbox.lock import LockLost, superseded
from lightbox.records import LifecycleError, Output, Recorded
from lightbox.state import RunState, live_matches
from lightbox.storage import Store

log = logging.getLogger(__name__)


def review_key(brand: str, run_id: str, sku: str, channel_file: str) -> str:
    return BrandLayout(brand).review(run_id, sku, channel_file)


def publish_output(o: Output, store: Store, brand: str, run_id: str, entries: dict[str, dict[str, Any]]) -> Output:
    """A checked output goes live (or is found live already), or to review when its verdict failed; unchanged
    and failed outputs pass through. An output that was never gated is a defect and raises (never published)."""
    if o.state in ("unchanged", "failed"):
        return o
    if o.state != "checked":
        raise LifecycleError(f"{o.sku}/{o.name}: an output that is {o.state} is not published (only a checked one is)")
    mark = store.tally()
    staged = store.key_of(o.staged_uri or "")
    if o.qc == "failed":
        dest = review_key(brand, run_id, o.sku, staged.rsplit("/", 1)[-1])
        store.copy_atomic(staged, dest)
        return o.to("review", uri=store.uri(dest)).charged(store.waited_since(mark))
    final = store.key_of(o.uri or "")
    entry = entries.get(f"{o.sku}/{o.name}", {})
    recorded = Recorded.of(entry) if entry.get("sha256") == o.sha256 else None
    same = recorded is not None and live_matches(store, final, recorded)
    if not same and (recorded is None or not store.local):  # no record, or an ETag that changed: hash what is live
        same = live_matches(store, final, Recorded(bytes=o.bytes, sha256=o.sha256 or ""))
    if same:
        etag = (entry.get("etag") if recorded else None) or _etag(store, final)
        return o.to("already_live", etag=etag).charged(store.waited_since(mark))
    store.copy_atomic(staged, final)
    return o.to("live", etag=_etag(store, final)).charged(store.waited_since(mark))


def live_before_failure(failed: list[Output], entries: dict[str, dict[str, Any]], run_id: str) -> list[Output]:
    """The outputs of a chunk that failed after its retries, as the run state saw them: one this run made live
    (and recorded) before the chunk failed is counted published with its entry's URI and checksum, not failed -
    a report of "60 published, 12 failed" with 62 live does not add up."""
    out = []
    for o in failed:
        e = entries.get(f"{o.sku}/{o.name}")
        if e and e.get("run_id") == run_id:
            o = o.to("live", error=None, uri=e.get("uri"), sha256=e.get("sha256"), etag=e.get("etag"),
                     bytes=e.get("bytes") or 0, fingerprint=e.get("fingerprint") or "", qc=e.get("qc") or "passed",
                     qc_reasons=e.get("qc_reasons") or [], metrics=e.get("metrics") or {},
                     alt_text=e.get("alt_text") or "", width=e.get("width") or 0, height=e.get("height") or 0)
        out.append(o)
    return out


def _etag(store: Store, key: str) -> str | None:
    """The object's ETag now (object stores; None on local disk), recorded so later runs can vouch for it."""
    return None if store.local else (store.stamp(key) or (0, None))[1]


APPROVED = "approved by an operator despite failing quality checks"


def approve_output(o: Output, store: Store, live_key: str) -> Output:
    """Publish an output an operator approved from the review prefix (atomic, like any publish)."""
    if o.state != "review":
        return o
    store.copy_atomic(store.key_of(o.uri or ""), live_key)
    return o.to("live", uri=store.uri(live_key), etag=_etag(store, live_key), qc_reasons=[*o.qc_reasons, APPROVED])


def publish_chunk(outputs: list[Output], store: Store, state: RunState, brand: str, run_id: str,
                  lock_generation: int | None = None) -> list[Output]:
    """Publish a chunk's outputs, then commit what went live to the run state (one transaction, before the
    task returns; a chunk failing part-way records what it did publish). With the run's ``lock_generation``,
    every publish is fenced: once another run took the brand over (this one hung past its lease) nothing
    more is written and :class:`LockLost` is raised."""
    entries = state.entries(brand, {o.sku for o in outputs if o.state == "checked"})
    done: list[Output] = []
    try:
        for o in outputs:
            if lock_generation is not None and o.state == "checked" and superseded(store, brand, lock_generation):
                raise LockLost(f"brand {brand}: run {run_id} lost the brand lock (its lease ran out and another run took "
                               f"it); stopped before publishing {o.sku}/{o.name}")
            done.append(publish_output(o, store, brand, run_id, entries))
    finally:  # failing part-way (storage gone past its budget): what did go live is recorded all the same
        state.record(brand, done, run_id)
    log.info(
        "published %d, unchanged %d, to review %d",
        sum(o.state == "live" for o in done),
        sum(o.state in ("already_live", "unchanged") for o in done),
        sum(o.state == "review" for o in done),
    )
    return done


def retire(names: list[str], store: Store, state: RunState, brand: str, run_id: str,
           lock_generation: int | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """Take the live photos ``names`` (run-state names, ``sku/output``) out of the live set: each object is
    deleted, and only once it is gone is its run-state row removed (a crash in between leaves the row,
    and the next run retires it again; never a live object the manifest does not list). Fenced by the lock
    like a publish. Returns (the entries retired, one line per photo that could not be retired)."""
    entries = state.entries(brand, {n.split("/", 1)[0] for n in names})
    gone: list[str] = []
    problems: list[str] = []
    for name in names:
        entry = entries.get(name)
        if entry is None:
            continue
        if lock_generation is not None and superseded(store, brand, lock_generation):
            raise LockLost(f"brand {brand}: run {run_id} lost the brand lock; stopped before retiring {name}")
        key = store.key_of(entry["uri"]) if entry.get("uri") else None
        if key is not None:
            store.delete(key)
            if store.exists(key):
                problems.append(f"{name}: could not delete {entry['uri']}; it stays live and listed")
                continue
        gone.append(name)
    retired = state.remove(brand, gone)
    if retired:
        log.info("%s: retired %d photos the catalog no longer has", brand, len(retired))
    return retired, problems


def leftovers(store: Store, brand: str) -> bool:
    """Whether earlier runs of the brand left staging behind for :func:`sweep_stale`."""
    return any("/staging/" in k for k in store.list(BrandLayout(brand).runs))


def sweep_stale(store: Store, brand: str, current_run: str, retention_s: float | None = None) -> dict[str, int]:
    """At the start of a run that holds the brand lock (so no other run of the brand is alive): remove
    the staging folders of earlier runs (killed or crashed ones never removed theirs) older than ``retention_s``
    (``$LIGHTBOX_STAGING_RETENTION_S``, default 0: all of them), and stale local temporary files. Review
    folders are kept until an operator decides. Returns what was removed."""
    retention = float(os.environ.get("LIGHTBOX_STAGING_RETENTION_S") or 0) if retention_s is None else retention_s
    now = datetime.now(timezone.utc)
    swept = 0
    layout = BrandLayout(brand)
    for run in store.children(layout.runs):
        if run == current_run:
            continue
        try:
            started = datetime.strptime(run[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        except ValueError:
            started = None  # a run id of another shape (plain loop): age unknown, swept when retention is 0
        if started is not None and (now - started).total_seconds() < retention:
            continue
        if store.children(layout.staging(run)):
            store.delete_prefix(layout.staging(run))
            swept += 1
    temps = store.sweep_temp()
    if swept or temps:
        log.info("%s: swept the staging of %d earlier runs and %d stale temporary files", brand, swept, temps)
    return {"staging": swept, "temp_files": temps}
