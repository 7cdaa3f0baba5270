"""Report stage: counts, tables and a markdown summary of one run, and the run summary JSON."""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, Field

from lightbox import safe_text
from lightbox.layout import BrandLayout
from lightbox.records import Output, QuarantinedRow
from lightbox.storage import Store

log = logging.getLogger(__name__)


class RunSummary(BaseModel):
    run_id: str
    brand: str
    spec_version: int
    catalog: str
    out: str
    ingested: int
    invalid: int
    skipped: int
    products: int
    generated: int
    unchanged: int
    passed: int
    failed: int = Field(description="render_failed + qc_failed")
    published: int
    already_live: int = Field(0, description="of the published, outputs re-rendered to the bytes already live (an interrupted "
                                             "attempt or a lost record had written them): counted, not written again")
    to_review: int
    wall_s: float
    images_per_s: float
    invalid_share: float
    failed_share: float = Field(description="share of the run's outputs (rendered, or unchanged and live) that failed quality "
                                            "checks (the alarm's measure): an incremental rerun that renders only what failed last "
                                            "time is measured against the catalog it checks, not against those few")
    render_failed: int = Field(0, description="outputs that could not be rendered (unreadable source, refused cut-out...)")
    render_failed_share: float = Field(0.0, description="share of attempted outputs that could not be rendered")
    qc_failed: int = Field(0, description="rendered outputs that failed quality checks")
    warned: int = Field(0, description="outputs that passed with warnings (published, listed in the review gallery)")
    stopped: str | None = Field(None, description="why the run stopped before rendering (invalid catalog), else None")
    manifest_uri: str
    summary_uri: str
    engine: str = "studio"
    consistency: dict[str, Any] | None = None
    consistency_previous: float | None = None
    review_uri: str | None = None
    alarm: bool = False
    alert: str | None = None  # "sent" or "failed: ..." when an alert block is configured
    quarantine: list[QuarantinedRow]
    skipped_rows: list[QuarantinedRow]
    warnings: list[QuarantinedRow]
    failures: list[dict[str, Any]]
    published_images: list[dict[str, Any]] = Field(default_factory=list, description="sku, channel, uri, sha256 written")
    flow_run_id: str | None = None
    runner: str | None = Field(None, description="where the tasks ran: the thread pool and its size, or the Dask scheduler and its workers")
    skus_requested: list[str] | None = Field(None, description="the run was limited to these SKUs (catalog update)")
    unknown_skus: list[str] = Field(default_factory=list, description="requested SKUs the catalog does not have")
    not_in_catalog: list[str] = Field(default_factory=list, description="SKUs with live images that this (whole) catalog "
                                      "has no row of: retired with --retire-missing, else still live")
    webhooks_sent: int = 0
    webhook_failures: list[dict[str, Any]] = Field(default_factory=list)
    cdn_invalidation: str | None = None
    cutouts: dict[str, Any] = Field(default_factory=dict, description="products cut per method, refused, unsure; one reason per SKU")
    storage_retries: int = Field(0, description="transient storage failures (an outage) waited out during the run")
    storage_waited_s: float = Field(0.0, description="seconds spent waiting them out")
    storage_waited_outputs: int = Field(0, description="outputs whose storage work waited")
    retired: list[dict[str, Any]] = Field(default_factory=list, description="live photos taken down because the catalog "
                                          "no longer has them (sku, channel, photo, uri)")
    retire_failures: list[str] = Field(default_factory=list, description="photos to retire that could not be deleted (still live)")

    @property
    def still_live_absent(self) -> list[str]:
        """The products this catalog no longer has whose images were not retired (still live)."""
        retired = {r.get("sku") for r in self.retired}
        return [sku for sku in self.not_in_catalog if sku not in retired]

    def storage_line(self) -> str | None:
        """'storage: ...' when the run waited out transient storage failures, else None."""
        if not self.storage_retries:
            return None
        n, k = self.storage_retries, self.storage_waited_outputs
        return (f"storage: waited out {n} transient failure{'s' if n != 1 else ''} ({self.storage_waited_s:.1f} s of "
                f"retries, summed over parallel tasks) affecting {k} output{'s' if k != 1 else ''}; nothing was lost")

    @property
    def quarantine_uri(self) -> str:
        """quarantine.csv beside summary.json."""
        return self.summary_uri.rsplit("/", 1)[0] + "/quarantine.csv"

    def table(self) -> list[dict[str, Any]]:
        keys = ["ingested", "invalid", "skipped", "products", "generated", "unchanged", "passed", "warned", "render_failed",
                "qc_failed", "published", "to_review", "wall_s", "images_per_s", "failed_share", "alarm"]
        score = (self.consistency or {}).get("score")
        return [{"metric": k, "value": getattr(self, k)} for k in keys] + [{"metric": "consistency", "value": score}]

    def _consistency_lines(self) -> list[str]:
        c = self.consistency or {}
        if c.get("score") is None:
            return ["- catalog consistency: not enough images yet"]
        delta = ""
        if self.consistency_previous is not None:
            delta = f" ({c['score'] - self.consistency_previous:+.3f} since the previous run)"
        lines = [f"- **catalog consistency {c['score']:.3f}**{delta} (1.0 = every image backed, framed and lit alike)"]
        for ch, v in c["channels"].items():
            if v.get("score") is None:  # a channel with fewer than two live images has nothing to compare
                lines.append(f"  - {ch}: not scored ({v['images']} live image{'' if v['images'] == 1 else 's'})")
                continue
            parts = ", ".join(f"{k} {p['score']:.2f} (spread {p['spread']})" for k, p in v["parts"].items())
            lines.append(f"  - {ch}: {v['score']:.3f} over {v['images']} images - {parts}")
        if c.get("near_duplicates"):
            lines.append(f"  - near-duplicates: {len(c['near_duplicates'])} pairs (see the summary JSON)")
        return lines

    def markdown(self) -> str:
        lines = [
            f"# Catalog run `{self.run_id}` - {self.brand} (spec v{self.spec_version})",
            "",
            *([f"**STOPPED before rendering**: {_md(self.stopped)}", ""] if self.stopped else []),
            *([f"**QUALITY ALARM**: {self.failed_share:.0%} of the run's outputs failed quality checks "
               f"(alert: {self.alert or 'no alert block configured'})", ""] if self.alarm else []),
            f"Catalog {_md(self.catalog)} -> {_md(self.out)}",
            "",
            f"- **{self.ingested}** rows ingested, **{self.invalid}** quarantined ({self.invalid_share:.1%}), "
            f"**{self.skipped}** skipped (hero)",
            f"- **{self.generated}** images generated, **{self.unchanged}** unchanged since the last run",
            f"- **{self.render_failed}** could not be rendered ({self.render_failed_share:.1%} of those attempted)",
            f"- **{self.passed}** passed quality checks ({self.warned} with warnings), **{self.qc_failed}** failed "
            f"({self.failed_share:.1%}); **{self.to_review}** sent to review",
            f"- **{self.published}** published in {self.wall_s:.1f} s ({self.images_per_s:.2f} images/s)",
            *([f"- **{len(self.retired)}** images retired (photos the catalog no longer has or the gallery cap leaves out): "
               + _md(", ".join(f"{r['sku']}/{r['channel']}" + (f"-{r['photo']}" if int(r.get("photo") or 1) > 1 else "")
                               for r in self.retired[:20])) + (" ..." if len(self.retired) > 20 else "")]
              if self.retired else []),
            *([f"- **{len(self.retire_failures)}** could not be retired (still live): " + _md("; ".join(self.retire_failures[:5]))]
              if self.retire_failures else []),
            f"- engine: {self.engine}",
            *(["- cut-out: " + ", ".join(f"{n} {k}" for k, n in self.cutouts["counts"].items())] if self.cutouts.get("counts") else []),
            *([f"- **{self.storage_line()}**"] if self.storage_line() else []),
            *self._consistency_lines(),
            f"- review gallery: `{self.review_uri}`" if self.review_uri else "- review gallery: none",
            f"- manifest: `{self.manifest_uri}`",
        ]
        if self.skus_requested is not None:
            lines.append(f"- limited to {len(self.skus_requested)} requested SKUs"
                         + (f"; unknown to the catalog: {_md(', '.join(self.unknown_skus))}" if self.unknown_skus else ""))
        if self.not_in_catalog:
            lines.append(f"- {len(self.not_in_catalog)} products with live images are not in this catalog: "
                         f"{_md(', '.join(self.not_in_catalog[:20]))}{' ...' if len(self.not_in_catalog) > 20 else ''}"
                         + (" (still live; `--retire-missing` takes them down)" if self.still_live_absent else ""))
        if self.webhooks_sent or self.webhook_failures:
            lines.append(f"- webhooks: {self.webhooks_sent} delivered, {len(self.webhook_failures)} failed")
        if self.cdn_invalidation:
            lines.append(f"- CDN invalidation: `{self.cdn_invalidation}`")
        if self.webhook_failures:
            lines += ["", "## Webhook failures", "", "| subscriber | event | sku | attempts | error |", "|---|---|---|---|---|"]
            for f in self.webhook_failures[:50]:
                lines.append(f"| {_md(f['subscriber'])} | {f['type']} | {_md(f.get('sku') or '')} | {f['attempts']} | "
                             f"{_md(f.get('error') or '')} |")
        if self.failures:
            lines += ["", "## Failed outputs", "", "| sku | channel | reason |", "|---|---|---|"]
            for f in self.failures[:50]:
                lines.append(f"| {_md(f['sku'])} | {_md(f['channel'])} | {_md(f['reason'])} |")
            if len(self.failures) > 50:
                lines.append(f"| ... | | {len(self.failures) - 50} more in the summary JSON |")
        if self.quarantine:
            lines += ["", "## Quarantined rows", "", "| row | sku | column | reason |", "|---|---|---|---|"]
            for q in self.quarantine[:50]:
                lines.append(f"| {q.row} | {_md(q.sku)} | {_md(q.column)} | {_md(q.reason)} |")
        if self.skipped_rows:
            lines += ["", "## Skipped", ""] + [
                f"- row {q.row} {_md(q.sku)}{f' ({_md(q.column)})' if q.column else ''}: {_md(q.reason)}" for q in self.skipped_rows
            ]
        if self.warnings:
            lines += ["", "## Data-quality warnings", "", "| row | sku | column | warning |", "|---|---|---|---|"]
            for q in self.warnings[:50]:
                lines.append(f"| {q.row} | {_md(q.sku)} | {_md(q.column)} | {_md(q.reason)} |")
        return "\n".join(lines) + "\n"


def _md(text: object) -> str:
    return safe_text.markdown(text)


def catalog_checks(store: Store, brand: str, run_id: str, outputs: list[Output]) -> tuple[dict[str, Any], float | None, str]:
    """Consistency of the live catalog (kept incrementally by the run state, compared with the previous
    run's score) and this run's review gallery. Returns (consistency, previous score, gallery URI)."""
    from lightbox.quality.gallery import build_gallery
    from lightbox.state import RunState

    current = RunState.of(store).consistency(brand)
    try:
        previous = json.loads(store.read(BrandLayout(brand).consistency)).get("score")
    except FileNotFoundError:
        previous = None
    doc = json.dumps({**current, "run_id": run_id, "previous_score": previous}, indent=1).encode()
    store.write_atomic(run_key(brand, run_id, "consistency.json"), doc)
    store.write_atomic(BrandLayout(brand).consistency, doc)
    reviewed = [o for o in outputs if o.state == "review"]
    if reviewed:
        from lightbox.state import entry_for

        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        lines = [json.dumps(entry_for(o, run_id, now) | {"state": o.state}, sort_keys=True) for o in reviewed]
        store.write_atomic(BrandLayout(brand).review_records(run_id), ("\n".join(lines) + "\n").encode())
    page = build_gallery(outputs, store, f"Lightbox review - {brand} - run {run_id}", current)
    key = run_key(brand, run_id, "review.html")
    store.write_atomic(key, page.encode("utf-8"))
    return current, previous, store.uri(key)


def run_key(brand: str, run_id: str, name: str) -> str:
    return BrandLayout(brand).run(run_id, name)


def failures_of(outputs: list[Output]) -> list[dict[str, Any]]:
    rows = []
    for o in outputs:
        if o.state == "failed":
            rows.append({"row": o.row, "sku": o.sku, "channel": o.name, "stage": "generate", "reason": o.error or ""})
        elif o.qc == "failed":
            rows.append({"row": o.row, "sku": o.sku, "channel": o.name, "stage": "quality",
                         "reason": "; ".join(o.qc_reasons), "uri": o.uri})
    return rows


_URL = re.compile(r"\b(https?|s3a?)://([^/\s:'\"]+)[^\s:'\"]*")


def failure_lines(failures: list[dict[str, Any]], top: int = 10) -> list[str]:
    """The run's failed products for a terminal, grouped by cause: products whose photos failed the same way on the
    same host are one line naming the host and the products ("failed 15 products (45 outputs, render): source image
    not fetched: https://img.example.com/...: cannot resolve ..."), not one repeated line each."""
    per_product: dict[tuple[str, str], list[str]] = {}  # (sku, stage) -> reason of each failed output
    for f in failures:
        per_product.setdefault((f["sku"], "render" if f["stage"] == "generate" else "quality"), []).append(
            f"{f['channel']}: {f['reason']}")
    groups: dict[tuple[str, str], list[tuple[str, int]]] = {}  # (stage, cause) -> [(sku, outputs)]
    for (sku, stage), reasons in per_product.items():
        same = len({r.split(": ", 1)[1] for r in reasons}) == 1
        cause = reasons[0].split(": ", 1)[1] if same else reasons[0]
        groups.setdefault((stage, _URL.sub(r"\1://\2/...", cause) if same else cause), []).append((sku, len(reasons)))
    lines = []
    for (stage, cause), products in list(groups.items())[:top]:
        n = sum(k for _, k in products)
        outputs = f"{n} output{'s' if n != 1 else ''}, {stage}"
        if len(products) == 1:
            sku = products[0][0]
            lines.append(f"failed {sku} ({outputs}): {_original(failures, sku, cause)}")
        else:
            skus = ", ".join(sku for sku, _ in products[:5]) + (f", ... ({len(products) - 5} more)" if len(products) > 5 else "")
            lines.append(f"failed {len(products)} product{'s' if len(products) != 1 else ''} ({outputs}): {cause} - {skus}")
    if len(groups) > top:
        lines.append(f"... {len(groups) - top} more causes of failure in the summary")
    return lines


def _original(failures: list[dict[str, Any]], sku: str, cause: str) -> str:
    """A single product's reason as it was (its full URL), not the host-only form used to group."""
    return next((f["reason"] for f in failures if f["sku"] == sku and _URL.sub(r"\1://\2/...", f["reason"]) == cause), cause)


def retired_rows(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a summary lists of each retired photo."""
    return [{"sku": e.get("sku"), "channel": e.get("channel"), "photo": e.get("photo") or 1, "uri": e.get("uri")} for e in entries]


def cutout_summary(outputs: list[Output]) -> dict[str, Any]:
    """Per photo cut this run (keyed by SKU for the main photo, ``SKU#N`` for its N-th): which method cut it
    and why, or why it was refused; counts per outcome."""
    per_sku: dict[str, dict[str, str]] = {}
    for o in outputs:
        key = o.sku if o.photo == 1 else f"{o.sku}#{o.photo}"
        if key in per_sku:
            continue
        if "cutout_method" in o.metrics:
            unsure = o.metrics.get("cutout_confident") is False
            per_sku[key] = {"method": o.metrics["cutout_method"] + (" unsure (its outputs to review)" if unsure else ""),
                            "reason": o.metrics.get("cutout_reason", "")}
        elif o.state == "failed" and (o.error or "").startswith("cut-out refused"):
            per_sku[key] = {"method": "refused", "reason": o.error or ""}
    counts: dict[str, int] = {}
    for v in per_sku.values():
        counts[v["method"]] = counts.get(v["method"], 0) + 1
    return {"counts": counts, "products": per_sku}


def engine_note(spec, ai_fallback: str | None) -> str:  # BrandSpec
    """One line for the report: which engines rendered this run, and any fallback."""
    from lightbox.engines import uses_ai

    if not uses_ai(spec):
        return "studio"
    if ai_fallback:
        return f"studio (AI fallback: {ai_fallback})"
    d = spec.diffusion
    return f"diffusers {d.model}@{d.revision or 'default'} ({d.steps} steps, batch {d.batch_size}) + studio for locked backgrounds"


QUARANTINE_COLUMNS = ["row", "sku", "status", "column", "reason"]


def quarantine_csv(summary: RunSummary) -> bytes:
    """Every row that was not rendered as it is, one line each: ``status`` is invalid (quarantined),
    skipped (not a product by design: hero, grouped, archived...) or warning (rendered, with a data warning)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(QUARANTINE_COLUMNS)
    rows = [("invalid", q) for q in summary.quarantine] + [("skipped", q) for q in summary.skipped_rows]
    rows += [("warning", q) for q in summary.warnings]
    for status, q in sorted(rows, key=lambda r: r[1].row):
        w.writerow([safe_text.csv_cell(v) for v in (q.row, q.sku, status, q.column, q.reason)])
    return buf.getvalue().encode()


def job_key(flow_run_id: str) -> str:
    return f"_jobs/{flow_run_id}.json"


def write_summary(store: Store, summary: RunSummary) -> str:
    """summary.json and quarantine.csv under the run's folder; latest-run.json beside the manifest."""
    body = summary.model_dump_json(indent=1).encode()
    store.write_atomic(run_key(summary.brand, summary.run_id, "summary.json"), body)
    store.write_atomic(run_key(summary.brand, summary.run_id, "quarantine.csv"), quarantine_csv(summary))
    store.write_atomic(BrandLayout(summary.brand).latest_run, json.dumps({"run_id": summary.run_id, "summary": summary.summary_uri}).encode())
    if summary.flow_run_id:  # the job API finds a run's summary by its flow run id
        store.write_atomic(job_key(summary.flow_run_id), body)
    return summary.summary_uri
