"""A static HTML review gallery per run: every output the gate failed or warned about, with its
thumbnail, metrics and reasons, filterable by channel and by rule, plus histograms of the run's
metric distributions. One self-contained file (thumbnails inline), so it opens from disk or S3."""

from __future__ import annotations

import base64
import html
import io
import json
from typing import Any

import numpy as np
from PIL import Image

from lightbox.records import Output
from lightbox.storage import Store

PLOTTED = ("fill_longest", "sharpness", "fidelity", "upscale", "background_detail", "clipped")


def _thumb(data: bytes, size: int = 240) -> str:
    with Image.open(io.BytesIO(data)) as im:
        im = im.convert("RGB")
        im.thumbnail((size, size))
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


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
    flagged = [o for o in outputs if o.status == "rendered" and o.qc in ("failed", "warned")]
    channels = sorted({o.channel for o in flagged})
    rules = sorted({r for o in flagged for r in _rule_ids(o)})
    cards = []
    for o in flagged:
        uri = o.uri or o.staged_uri or ""
        try:
            src = _thumb(store.read(store.key_of(uri)))
        except (FileNotFoundError, ValueError):
            src = ""
        shown = {k: v for k, v in sorted(o.metrics.items()) if k not in ("phash", "product_box")}
        metrics = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(json.dumps(v))}</td></tr>" for k, v in shown.items())
        reasons = "".join(f"<li>{html.escape(r)}</li>" for r in o.qc_reasons)
        cards.append(
            f'<article class="card {o.qc}" data-channel="{html.escape(o.channel)}" data-rules="{html.escape(" ".join(_rule_ids(o)))}">'
            f'<img src="{src}" alt="{html.escape(o.sku)} {html.escape(o.channel)}" loading="lazy">'
            f'<h3>{html.escape(o.sku)} <small>{html.escape(o.name)}</small> <span class="badge">{o.qc}</span></h3>'
            f'<ul class="reasons">{reasons}</ul><details><summary>metrics</summary><table>{metrics}</table></details>'
            f'<p class="uri">{html.escape(uri)}</p></article>'
        )
    measured = [o for o in outputs if o.metrics and o.status == "rendered"]
    plots = "".join(
        _histogram(name, [float(o.metrics[name]) for o in measured if isinstance(o.metrics.get(name), (int, float)) and not isinstance(o.metrics.get(name), bool)])
        for name in PLOTTED
    )
    options_ch = "".join(f'<option value="{html.escape(c)}">{html.escape(c)}</option>' for c in channels)
    options_rule = "".join(f'<option value="{html.escape(r)}">{html.escape(r)}</option>' for r in rules)
    score = ""
    if consistency and consistency.get("score") is not None:
        score = f'<p id="consistency">Catalog consistency: <b>{consistency["score"]:.3f}</b></p>'
    empty = "" if flagged else '<p id="empty">Nothing to review: every output passed.</p>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 24px; color: #222; }}
#cards {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 14px; }}
.card {{ border: 1px solid #ddd; border-radius: 8px; padding: 10px; background: #fff; }}
.card.failed {{ border-color: #d33; }} .card.warned {{ border-color: #e0a000; }}
.card img {{ width: 100%; background: repeating-conic-gradient(#eee 0 25%, #fff 0 50%) 0 0/16px 16px; }}
.badge {{ font-size: 11px; padding: 1px 6px; border-radius: 8px; background: #eee; }}
.reasons {{ color: #a00; padding-left: 18px; }} .uri {{ font-size: 11px; color: #777; word-break: break-all; }}
.plots {{ display: flex; flex-wrap: wrap; gap: 12px; }} figure {{ margin: 0; }}
</style></head><body>
<h1>{html.escape(title)}</h1>{score}
<p><span id="count">{len(flagged)}</span> of {len(flagged)} flagged outputs shown ({sum(o.qc == "failed" for o in flagged)} failed, {sum(o.qc == "warned" for o in flagged)} warned).</p>
<label>Channel <select id="channel"><option value="">all</option>{options_ch}</select></label>
<label>Rule <select id="rule"><option value="">all</option>{options_rule}</select></label>
{empty}<section id="cards">{"".join(cards)}</section>
<h2>Metric distributions (this run, {len(measured)} outputs)</h2><section class="plots">{plots}</section>
<script>
function applyFilters() {{
  const ch = document.getElementById('channel').value, rule = document.getElementById('rule').value;
  let shown = 0;
  for (const card of document.querySelectorAll('.card')) {{
    const ok = (!ch || card.dataset.channel === ch) && (!rule || card.dataset.rules.split(' ').includes(rule));
    card.style.display = ok ? '' : 'none';
    if (ok) shown++;
  }}
  document.getElementById('count').textContent = shown;
}}
document.getElementById('channel').addEventListener('change', applyFilters);
document.getElementById('rule').addEventListener('change', applyFilters);
</script></body></html>
"""
