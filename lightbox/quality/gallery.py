"""A static HTML review gallery per run: every output of the run, in three states - failed to render (with
the reason, no image), to review (the gate failed it) and live (a contact sheet of what was published, warned
ones first) - with thumbnails, metrics and reasons, filterable by state, channel and rule, plus histograms of
the run's metric distributions. One self-contained file (thumbnails inline), so it opens from disk or S3.
Live thumbnails are small, and at most ``LIVE_MAX`` of them are drawn (the page says how many were left out)."""

from __future__ import annotations

import base64
import html
import io
import json
from typing import Any
from urllib.parse import quote

import numpy as np
from PIL import Image

from lightbox.records import Output
from lightbox.storage import Store

PLOTTED = ("fill_longest", "sharpness", "fidelity", "upscale", "background_detail", "clipped")
LIVE_MAX = 600  # live outputs drawn on the contact sheet (each a ~5 KB inline thumbnail)
STATES = ("failed", "review", "live")


_SHOWN = {"failed": "failed", "review": "review", "live": "live", "already_live": "live"}


def _state(o: Output) -> str | None:
    """failed (could not be rendered), review (the gate failed it), live (rendered this run and live: written, or
    the same bytes already live); None for an unchanged output (live from an earlier run, nothing new to show)."""
    return _SHOWN.get(o.state)


def _thumb(data: bytes, size: int = 240) -> str:
    """An inline thumbnail; a transparent output stays transparent (PNG, over the card's checkerboard)."""
    with Image.open(io.BytesIO(data)) as im:
        alpha = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
        im = im.convert("RGBA" if alpha else "RGB")
        im.thumbnail((size, size))
        buf = io.BytesIO()
        if alpha:
            im.save(buf, "PNG", optimize=True)
        else:
            im.save(buf, "JPEG", quality=80)
    return f"data:image/{'png' if alpha else 'jpeg'};base64," + base64.b64encode(buf.getvalue()).decode()


def _source_url(ref: str) -> str | None:
    """A browser's URL for a source photo reference: http(s) as given, a local path as file:// (the gallery opened
    from disk); None for what a browser cannot open (s3://)."""
    if ref.startswith(("https://", "http://", "file://")):
        return ref
    if ref.startswith("/"):
        return "file://" + quote(ref)
    return None


def _source_view(o: Output) -> str:
    """The source photo beside an output to review, with the rectangle that was cut out of it drawn over it:
    whether the cut is the right object, and whole, shows at a glance. The browser loads the photo from where
    the catalog has it; nothing is copied."""
    url = _source_url(o.source)
    if url is None:
        return ""
    box = ""
    placement = o.metrics.get("placement") or {}
    (x0, y0, x1, y1), size = placement.get("source_box") or (0, 0, 0, 0), placement.get("source_size")
    if size and size[0] > 0 and size[1] > 0 and x1 > x0 and y1 > y0:
        w, h = size
        box = (f'<span class="cutbox" style="left:{100 * x0 / w:.2f}%;top:{100 * y0 / h:.2f}%;'
               f'width:{100 * (x1 - x0) / w:.2f}%;height:{100 * (y1 - y0) / h:.2f}%"></span>')
    return (f'<figure class="source"><span class="frame"><img src="{html.escape(url)}" alt="source photo of '
            f'{html.escape(o.sku)}" loading="lazy">{box}</span>'
            f'<figcaption>source photo{" - the box is what was cut out" if box else ""}</figcaption></figure>')


def _rule_ids(o: Output) -> list[str]:
    ids = []
    for r in o.qc_reasons:
        body = r.split("]", 1)[1].strip() if r.startswith("[") else r
        ids.append(body.split(":", 1)[0])
    return ids


def _histogram(name: str, values: list[float], bins: int = 20) -> str:
    """An inline SVG histogram: no plotting library, no network."""
    if not values:
        return ""
    counts, edges = np.histogram(values, bins=bins)
    w, h, pad = 320, 120, 18
    peak = max(int(counts.max()), 1)
    bw = (w - 2 * pad) / bins
    bars = "".join(
        f'<rect x="{pad + i * bw:.1f}" y="{h - pad - c / peak * (h - 2 * pad):.1f}" width="{bw - 1:.1f}" '
        f'height="{c / peak * (h - 2 * pad):.1f}" fill="#4a7bd0"><title>{edges[i]:.3g}-{edges[i + 1]:.3g}: {c}</title></rect>'
        for i, c in enumerate(counts)
    )
    return (
        f'<figure class="plot" data-metric="{name}"><figcaption>{name} (n={len(values)})</figcaption>'
        f'<svg width="{w}" height="{h}" role="img" aria-label="histogram of {name}">{bars}'
        f'<text x="{pad}" y="{h - 4}" font-size="10">{edges[0]:.3g}</text>'
        f'<text x="{w - pad}" y="{h - 4}" font-size="10" text-anchor="end">{edges[-1]:.3g}</text></svg></figure>'
    )


def build_gallery(outputs: list[Output], store: Store, title: str, consistency: dict[str, Any] | None = None) -> str:
    order = {"failed": 0, "review": 1, "live": 2}
    shown_outputs = sorted((o for o in outputs if _state(o)), key=lambda o: (order[_state(o)], o.qc != "warned", o.sku, o.name))
    live = [o for o in shown_outputs if _state(o) == "live"]
    left_out = max(0, len(live) - LIVE_MAX)
    if left_out:
        keep = set(map(id, live[:LIVE_MAX]))
        shown_outputs = [o for o in shown_outputs if _state(o) != "live" or id(o) in keep]
    counts = {st: sum(_state(o) == st for o in outputs) for st in STATES}
    unchanged = sum(o.state == "unchanged" for o in outputs)
    channels = sorted({o.channel for o in shown_outputs})
    rules = sorted({r for o in shown_outputs for r in _rule_ids(o)})
    cards = []
    for o in shown_outputs:
        state = _state(o)
        uri = o.uri or o.staged_uri or ""
        src = ""
        if state != "failed":
            try:
                src = _thumb(store.read(store.key_of(uri)), 240 if state == "review" or o.qc == "warned" else 120)
            except (FileNotFoundError, ValueError):
                src = ""
        shown = {k: v for k, v in sorted(o.metrics.items()) if k not in ("phash", "product_box")}
        metrics = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(json.dumps(v))}</td></tr>" for k, v in shown.items())
        reasons = "".join(f"<li>{html.escape(r)}</li>" for r in ([o.error or "could not be rendered"] if state == "failed" else o.qc_reasons))
        image = (f'<img src="{src}" alt="{html.escape(o.sku)} {html.escape(o.channel)}" loading="lazy">' if src
                 else '<div class="noimage">no image</div>')
        badge = {"failed": "failed to render", "review": "to review",
                 "live": "live" + {"warned": " (warned)", "failed": " (approved)"}.get(o.qc, "")}[state]
        cards.append(
            f'<article class="card state-{state} qc-{o.qc or "none"}" data-state="{state}" data-channel="{html.escape(o.channel)}" '
            f'data-rules="{html.escape(" ".join(_rule_ids(o)))}">{image}{_source_view(o) if state != "live" else ""}'
            f'<h3>{html.escape(o.sku)} <small>{html.escape(o.name)}</small> <span class="badge">{badge}</span></h3>'
            f'<ul class="reasons">{reasons}</ul>'
            + (f'<details><summary>metrics</summary><table>{metrics}</table></details>' if metrics else "")
            + f'<p class="uri">{html.escape(uri)}</p></article>'
        )
    measured = [o for o in outputs if o.metrics and o.made]
    plots = "".join(
        _histogram(name, [float(o.metrics[name]) for o in measured if isinstance(o.metrics.get(name), (int, float)) and not isinstance(o.metrics.get(name), bool)])
        for name in PLOTTED
    )
    options_ch = "".join(f'<option value="{html.escape(c)}">{html.escape(c)}</option>' for c in channels)
    options_rule = "".join(f'<option value="{html.escape(r)}">{html.escape(r)}</option>' for r in rules)
    score = ""
    if consistency and consistency.get("score") is not None:
        score = f'<p id="consistency">Catalog consistency: <b>{consistency["score"]:.3f}</b></p>'
    empty = "" if shown_outputs else '<p id="empty">Nothing rendered this run.</p>'
    note = (f" {unchanged} outputs were live already (unchanged, not shown)." if unchanged else "") + (
        f" {left_out} more live outputs are not drawn (the first {LIVE_MAX} are)." if left_out else "")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 24px; color: #222; }}
#cards {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 14px; }}
.card {{ border: 1px solid #ddd; border-radius: 8px; padding: 10px; background: #fff; }}
.card.state-failed {{ border-color: #777; background: #f6f6f6; }} .card.state-review {{ border-color: #d33; }}
.card.qc-warned {{ border-color: #e0a000; }} .noimage {{ height: 120px; display: grid; place-items: center; color: #777; }}
.card img {{ width: 100%; background: repeating-conic-gradient(#eee 0 25%, #fff 0 50%) 0 0/16px 16px; }}
.badge {{ font-size: 11px; padding: 1px 6px; border-radius: 8px; background: #eee; }}
.reasons {{ color: #a00; padding-left: 18px; }} .uri {{ font-size: 11px; color: #777; word-break: break-all; }}
.plots {{ display: flex; flex-wrap: wrap; gap: 12px; }} figure {{ margin: 0; }}
.source {{ margin-top: 6px; }} .source .frame {{ position: relative; display: block; overflow: hidden; }}
.source img {{ display: block; background: none; }} .source figcaption {{ font-size: 11px; color: #777; }}
.cutbox {{ position: absolute; outline: 2px solid #d33; pointer-events: none; }}
</style></head><body>
<h1>{html.escape(title)}</h1>{score}
<p><span id="count">{len(shown_outputs)}</span> of {len(shown_outputs)} outputs shown: {counts["failed"]} failed to render, {counts["review"]} to review, {counts["live"]} live ({sum(o.qc == "warned" for o in live)} warned).{note}</p>
<label>State <select id="state"><option value="">all</option><option value="failed">failed to render</option><option value="review">to review</option><option value="live">live</option></select></label>
<label>Channel <select id="channel"><option value="">all</option>{options_ch}</select></label>
<label>Rule <select id="rule"><option value="">all</option>{options_rule}</select></label>
{empty}<section id="cards">{"".join(cards)}</section>
<h2>Metric distributions (this run, {len(measured)} outputs)</h2><section class="plots">{plots}</section>
<script>
function applyFilters() {{
  const ch = document.getElementById('channel').value, rule = document.getElementById('rule').value;
  const state = document.getElementById('state').value;
  let shown = 0;
  for (const card of document.querySelectorAll('.card')) {{
    const ok = (!state || card.dataset.state === state) && (!ch || card.dataset.channel === ch)
      && (!rule || card.dataset.rules.split(' ').includes(rule));
    card.style.display = ok ? '' : 'none';
    if (ok) shown++;
  }}
  document.getElementById('count').textContent = shown;
}}
document.getElementById('state').addEventListener('change', applyFilters);
document.getElementById('channel').addEventListener('change', applyFilters);
document.getElementById('rule').addEventListener('change', applyFilters);
</script></body></html>
"""
